"""Facts about the 29 task files of the paper's public repository (data only; used by tasks.py).

Source: joebaumann/llmhacking at commit 3f662887b97915476ce6ad92e0673a6b14a8c0c1 (MIT licence),
``data/all_data_processed/<name>.csv`` and, per study, ``data/<study>/config*.yaml`` (description,
ground-truth annotators, prompt sources) and ``data/<study>/load_data_and_prompts.py`` (prompts,
answer mappings, the groupings the authors' hypotheses use). Everything here was read from those
files; the prompt texts are quoted as the authors wrote them (they are facts of the study: the text
sent to the model) and each names its source.

``chars`` is the published file's length in Unicode code points (the repository's file viewer
count); ``columns`` its header; ``id_pattern`` the form of every id; ``rows`` the data rows where
known here (the 9 files mirrored in ``shared/data``; ``None`` for the others, whose first
16,000 characters were read).
"""

from __future__ import annotations

COMMIT = "3f662887b97915476ce6ad92e0673a6b14a8c0c1"
REPO = "joebaumann/llmhacking"
RAW_URL = "https://raw.githubusercontent.com/joebaumann/llmhacking/{commit}/data/all_data_processed/{name}.csv"

_GILARDI = ("Gilardi, Alizadeh & Kubli (2023), ChatGPT outperforms crowd workers for text-annotation "
            "tasks, PNAS 120(30) [gilardi2023pnas]")
_GILARDI_SRC = "data/gilardi_et_al_pnas/load_data_and_prompts.py"

# --- the authors' prompt texts for the Gilardi et al. tasks (quoted from _GILARDI_SRC) -----------
#
# The loader builds each prompt from shared parts; they are kept as parts here and joined exactly as
# the loader joins them. Each "[original]" prompt there exists as system + user messages and as one
# user message ("(no system prompt)"): the registry holds the one-message form (one string, the text
# the loader sends), whose system + user twin has the same words split over two turns. The few-shot
# forms (multi-turn chats with worked examples) are not registered (a registry prompt is one string).

# Gilardi2023.__init__: gilardi_content_moderation_prompt_code (Gilardi et al.'s code, task template)
_CM_CODE = (
    "In this job, you will be shown a sample of Tweets collected from the social media platform Twitter. Your task "
    "will be to determine if the Tweets have to do with “content” moderation” or not. \n “Content moderation” refers "
    "to the practice of screening and monitoring content posted by users on social media sites to determine if the "
    "content should be published or not, based on specific rules and guidelines. \n Every time someone posts "
    "something on a platform like Facebook or Twitter, that piece of content goes through a review process "
    "(‘content moderation’) to ensure that it is not illegal, hateful or inappropriate and that it complies with "
    "the rules of the site. When that is not the case, that piece of content can be removed, flagged, labelled as "
    "or ‘disputed’. \n Deciding what should be allowed on social media is not always easy. For example, many sites "
    "ban child pornography and terrorist content as it is illegal. However, things are less clear when it comes to "
    "content about the safety of vaccines or politics, for example. Even when people agree that some content should "
    "be blocked, they do not always agree about the best way to do so, about how effective it is and who should do "
    "it (the government or private companies, human moderators or artificial intelligence)."
)
# gilardi_content_moderation_prompt_paper (Gilardi et al. 2023, Appendix A)
_CM_PAPER = (
    "For this task, you will be asked to annotate a sample of tweets about content moderation. Before describing "
    "the task, we explain what we mean by “content moderation”.\n“Content moderation” refers to the practice of "
    "screening and monitoring content posted by users on social media sites to determine if the content should be "
    "published or not, based on specific rules and guidelines. Every time someone posts something on a platform "
    "like Facebook or Twitter, that piece of content goes through a review process (“content moderation”) to "
    "ensure that it is not illegal, hateful or inappropriate and that it complies with the rules of the site. When "
    "that is not the case, that piece of content can be removed, flagged, labeled as or ‘disputed.’\nDeciding what "
    "should be allowed on social media is not always easy. For example, many sites ban child pornography and "
    "terrorist content as it is illegal. However, things are less clear when it comes to content about the safety "
    "of vaccines or politics, for example. Even when people agree that some content should be blocked, they do not "
    "always agree about the best way to do so, how effective it is, and who should do it (the government or "
    "private companies, human moderators, or artificial intelligence)."
)
# gilardi_political_content_prompt_paper (Appendix B)
_POL_PAPER = (
    "For this task, you will be asked to annotate a sample of tweets to determine if they include political content "
    "or not. For the purposes of this task, tweets are “relevant” if they include political content, and "
    "“irrelevant” if they do not. Before describing the task, we explain what we mean by “political content”. "
    "“Political content” refers to any tweets that pertain to politics or government policies at the local, "
    "national, or international level. This can include tweets that discuss political figures, events, or issues, "
    "as well as tweets that use political language or hashtags. To determine if tweets include political content "
    "or not, consider several factors, such as the use of political keywords or hashtags, the mention of political "
    "figures or events, the inclusion of links to news articles or other political sources, and the overall tone "
    "and sentiment of the tweet, which may indicate whether it is conveying a political message or viewpoint."
)
_CM_2024 = ("“Content moderation” refers to the practice of screening and monitoring content posted by users on "
            "social media sites to determine if the content should be published or not, based on specific rules and "
            "guidelines.")
_POL_2024 = ("“Political content” refers to a text that pertains to politics or government policies at the local, "
             "national, or international level. This can include political figures, events, or issues, as well as "
             "text that uses political language or hashtags. ")

# -- relevance (content moderation): content_moderation_relevance_specific_prompt_code / _paper
_REL_CODE = _CM_CODE + (
    "\n For each tweet in the sample: Carefully read the text of the Tweet, paying close attention to details. "
    "Classify the Tweet as either irrelevant (0) or relevant (1). \n Tweets should be coded as relevant when they "
    "directly relate to content moderation. This includes Tweets that discuss social media platforms’ content "
    "moderation rules and practices, and Tweets that discuss governments’ regulation of online content moderation. "
    "This also includes Tweets that discuss mild forms of content moderation, like flagging Tweets and Tweets when "
    "they indirectly relate to content moderation.\n Tweets should be coded as irrelevant if they do not refer to "
    "content moderation or if they are themselves examples of moderated content. This would include, for example, "
    "a Tweet by Donald Trump that Twitter has labelled as ‘disputed’, a Tweet claiming that something is false, or "
    "a Tweet containing sensitive content. just label 'relevant' or 'irrelevant' without any more explanation "
)
_REL_PAPER = _CM_PAPER + (
    "\nFor each tweet in the sample, follow these instructions:\n1. Carefully read the text of the tweet, paying "
    "close attention to details.\n2. Classify the tweet as either relevant (1) or irrelevant (0)\nTweets should be "
    "coded as RELEVANT when they directly relate to content moderation, as defined above. This includes tweets that "
    "discuss: social media platforms’ content moderation rules and practices, governments’ regulation of online "
    "content moderation, and/or mild forms of content moderation like flagging. Tweets should be coded as "
    "IRRELEVANT if they do not refer to content moderation, as defined above, or if they are themselves examples "
    "of moderated content. This would include, for example, a Tweet by Donald Trump that Twitter has labeled as "
    "“disputed”, a tweet claiming that something is false, or a tweet containing sensitive content. Such tweets "
    "might be subject to content moderation, but are not discussing content moderation. Therefore, they should be "
    "coded as irrelevant for our purposes."
)
_REL_ASK = "Here's the tweet I picked, please label it as 'Relevant' or 'Irrelevant' by answering with one word:\n{text}"
_REL_CODE_1 = _REL_CODE + " h" + _REL_ASK[1:]  # the loader's user turn starts " here's" for the code form
_REL_PAPER_1 = _REL_PAPER + " " + _REL_ASK
# relevance_specific_prompt_code_2024_zero (tweets 2023 and news: "Text is ..."), system + "\n\n" + user
_REL_2024_TEXT = _CM_2024 + (
    "\n\nI will ask you to classify a tweet as relevant or irrelevant to the content moderation:\n\nA: Text is "
    "RELEVANT if it includes: social media platforms’ content moderation rules and practices, censorship, "
    "governments’ regulation of online content moderation, and/or mild forms of content moderation like flagging, "
    "shadowbanning, or account suspension.\n\nB: Text is IRRELEVANT if they do not refer to content moderation, as "
    "defined above. This would include, for example, a tweet by Trump that Twitter has labeled his tweet as "
    "“disputed”, or a tweet claiming that something is false."
    "\n\nNow, is the following tweet RELEVANT or IRRELEVANT to content moderation?\n\n{text}"
)
# Tweets 2020-2021 (Gilardi2023_Data1Task1_Tweets_2020_2021): relevance_specific_prompt_code_2024_zero is one
# string there (with "banned" and "banning"); the loader indexes it [0] and [1], which sends its first two
# characters, so the full string is registered as the evident intent.
_REL_2024_TWEET = (
    "“Content moderation” refers to the practice of screening and monitoring content posted by users on social "
    "media sites to determine if the content should be banned or not, based on specific rules and guidelines.\n\nI "
    "will ask you to classify a tweet as relevant or irrelevant to the content moderation:\n\nA: Tweet is RELEVANT "
    "if it includes: social media platforms’ content moderation rules and practices, censorship, governments’ "
    "regulation of online content moderation, and/or mild forms of content moderation like banning, flagging, "
    "shadowbanning, or account suspension.\n\nB: Tweet is IRRELEVANT if they do not refer to content moderation, "
    "as defined above. This would include, for example, a tweet by Trump that Twitter has labeled his tweet as "
    "“disputed”, or a tweet claiming that something is false.\n\nNow, is the following tweet RELEVANT or IRRELEVANT "
    "to content moderation?\n\n{text}"
)
# -- relevance (political content, Congress tweets 2017-2022): Appendix D and the 2024 form
_REL17_PAPER_1 = _POL_PAPER + (
    "\nFor each tweet in the sample, follow these instructions:\n1. Carefully read the text of the tweet, paying "
    "close attention to details.\n2. Classify the tweet as either relevant (1) or irrelevant (0)\nTweets should be "
    "coded as RELEVANT if they include POLITICAL CONTENT, as defined above. Tweets should be coded as IRRELEVANT if "
    "they do NOT include POLITICAL CONTENT, as defined above."
) + " " + _REL_ASK
_REL17_2024 = _POL_2024 + (
    "\n\nI will ask you to classify a tweet as relevant or irrelevant to the political content:\n\nA: Text is "
    "RELEVANT if it uses political keywords or hashtags, mentions political figures or events, discusses policy "
    "issues such as immigration, abortion, foreign policy, health care, tax, or police shootings, or includes a "
    "link to well-known news outlets or other political sources such as think tanks, political pundits or "
    "journalists, the White House, or the US Congress.\n\nB: Text is IRRELEVANT if it does not fit the criteria "
    "above\n\n\nNow, is the following tweet RELEVANT or IRRELEVANT to political content?\n\n{text}"
)

# -- Frames I (problem / solution / neutral): Appendix E part, its user turn, and the 2024 form
_FRAME_PS = (
    "\nContent moderation can be seen from two different perspectives:\n• Content moderation can be seen as a "
    "PROBLEM; for example, as a restriction of free speech\n• Content moderation can be seen as a SOLUTION; for "
    "example, as a protection from harmful speech\nFor each tweet in the sample, follow these instructions:\n1. "
    "Carefully read the text of the tweet, paying close attention to details.\n2. Classify the tweet as describing "
    "content moderation as a problem, as a solution, or neither.\nTweets should be classified as describing content "
    "moderation as a PROBLEM if they emphasize negative effects of content moderation, such as restrictions to free "
    "speech, or the biases that can emerge from decisions regarding what users are allowed to post.\nTweets should "
    "be classified as describing content moderation as a SOLUTION if they emphasize positive effects of content "
    "moderation, such as protecting users from various kinds of harmful content, including hate speech, "
    "misinformation, illegal adult content, or spam.\nTweets should be classified as describing content moderation "
    "as NEUTRAL if they do not emphasize possible negative or positive effects of content moderation, for example "
    "if they simply report on the content moderation activity of social media platforms without linking them to "
    "potential advantages or disadvantages for users or stakeholders."
)
_FRAME_ASK = ("Here's the tweet I picked, please label it as 'Problem', 'Solution', or 'Neutral' by answering with "
              "one word:\n{text}")
_FRAME_CODE_1 = _CM_CODE + _FRAME_PS + "\n" + _FRAME_ASK
_FRAME_PAPER_1 = _CM_PAPER + _FRAME_PS + "\n" + _FRAME_ASK


def _frame_2024(subject: str) -> str:
    """frame_specific_prompt_code_2024_zero, system + "\\n\\n" + user; subject "Tweet" (tweets 2020-2021)
    or "Text" (tweets 2023, news)."""
    return (_CM_2024 + "\n\nI will ask you to classify a tweet as describing content moderation as a problem, as a "
            f"solution, or neither:\n\nA: {subject} describes content moderation as a PROBLEM if they emphasize "
            "negative effects of it, such as restrictions to free speech, censorship, or the biases that can emerge "
            f"from decisions regarding what users are allowed to post.\n\nB: {subject} describes content moderation "
            "as a SOLUTION if they emphasize positive effects of it, such as protecting users from harmful content "
            f"such as hate speech, misinformation, illegal adult content, or spam. \n\nC: {subject} describes content "
            "moderation as NEUTRAL if they do not emphasize negative or positive effects of content moderation. For "
            "example if they simply report on the content moderation activity of social media platforms without "
            "linking them to potential advantages or disadvantages for users or stakeholders.\n\nNow, is the "
            "following tweet describing content moderation as a PROBLEM, as a SOLUTION, or NEUTRAL?\n\n{{text}}"
            ).replace("{{text}}", "{text}")


# -- Frames II (policy frames): Appendix F (tweets 2020-2021) / G (Congress tweets), user turn, 2024 form
_FRAMES2_LIST = (
    "The topics are defined as follows:\n• ECONOMY: The costs, benefits, or monetary/financial implications of the "
    "issue (to an individual, family, community, or to the economy as a whole).\n• Capacity and resources: The lack "
    "of or availability of physical, geographical, spatial, human, and financial resources, or the capacity of "
    "existing systems and resources to implement or carry out policy goals.\n• MORALITY: Any perspective—or policy "
    "objective or action (including proposed action)that is compelled by religious doctrine or interpretation, "
    "duty, honor, righteousness or any other sense of ethics or social responsibility.\n• FAIRNESS AND EQUALITY: "
    "Equality or inequality with which laws, punishment, rewards, and resources are applied or distributed among "
    "individuals or groups. Also the balance between the rights or interests of one individual or group compared to "
    "another individual or group.\n• CONSTITUTIONALITY AND JURISPRUDENCE: The constraints imposed on or freedoms "
    "granted to individuals, government, and corporations via the Constitution, Bill of Rights and other "
    "amendments, or judicial interpretation. This deals specifically with the authority of government to regulate, "
    "and the authority of individuals/corporations to act independently of government.\n• POLICY PRESCRIPTION AND "
    "EVALUATION: Particular policies proposed for addressing an identified problem, and figuring out if certain "
    "policies will work, or if existing policies are effective.\n• LAW AND ORDER, CRIME AND JUSTICE: Specific "
    "policies in practice and their enforcement, incentives, and implications. Includes stories about enforcement "
    "and interpretation of laws by individuals and law enforcement, breaking laws, loopholes, fines, sentencing and "
    "punishment. Increases or reductions in crime.\n• SECURITY AND DEFENSE: Security, threats to security, and "
    "protection of one’s person, family, in-group, nation, etc. Generally an action or a call to action that can be "
    "taken to protect the welfare of a person, group, nation sometimes from a not yet manifested threat.\n• HEALTH "
    "AND SAFETY: Health care access and effectiveness, illness, disease, sanitation, obesity, mental health effects, "
    "prevention of or perpetuation of gun violence, infrastructure and building safety.\n• QUALITY OF LIFE: The "
    "effects of a policy on individuals’ wealth, mobility, access to resources, happiness, social structures, ease "
    "of day-to-day routines, quality of community life, etc.\n• CULTURAL IDENTITY: The social norms, trends, values "
    "and customs constituting culture(s), as they relate to a specific policy issue.\n• PUBLIC OPINION: References "
    "to general social attitudes, polling and demographic information, as well as implied or actual consequences of "
    "diverging from or “getting ahead of” public opinion or polls.\n• POLITICAL: Any political considerations "
    "surrounding an issue. Issue actions or efforts or stances that are political, such as partisan filibusters, "
    "lobbyist involvement, bipartisan efforts, deal-making and vote trading, appealing to one’s base, mentions of "
    "political maneuvering. Explicit statements that a policy issue is good or bad for a particular political "
    "party.\n• EXTERNAL REGULATION AND REPUTATION: The United States’ external relations with another nation; the "
    "external relations of one state with another; or relations between groups. This includes trade agreements and "
    "outcomes, comparisons of policy outcomes or desired policy outcomes.\n• OTHER: Any topic that does not fit "
    "into the above categories."
)
_FRAMES2_HEAD = (", as described above, can be linked to various other topics, such as health, crime, or "
                 "equality.\nFor each tweet in the sample, follow these instructions:\n1. Carefully read the text of "
                 "the tweet, paying close attention to details.\n2. Classify the tweet into one of the topics defined "
                 "below.\n")
_FRAMES2_ASK = (
    "Here's the tweet I picked, please label it as 'Economy', 'Capacity and resources', 'Morality', 'Fairness and "
    "Equality', 'Constitutionality and Jurisprudence', 'Policy Prescription and Evaluation', 'Law and Order, Crime "
    "and Justice', 'Security and Defense', 'Health and Safety', 'Quality of Life', 'Cultural Identity', 'Public "
    "Opinion', 'Political', 'External Regulation and Reputation', or 'Other' by answering with one word:\n{text}"
)
# Appendix F ends in a line break, Appendix G does not; each is then joined to the user turn by "\n"
_FRAMES2_PAPER_1 = _CM_PAPER + "Content moderation" + _FRAMES2_HEAD + _FRAMES2_LIST + "\n" + "\n" + _FRAMES2_ASK
_FRAMES2_17_PAPER_1 = _POL_PAPER + "Political content" + _FRAMES2_HEAD + _FRAMES2_LIST + "\n" + _FRAMES2_ASK
_FRAMES2_2024_LIST = (
    "\n\nI will ask you to classify a tweet as one of the frames defined below:\n\nECONOMY: The costs, benefits, or "
    "monetary/financial implications of the issue (to an individual, family, community, or to the economy as a "
    "whole).\nMORALITY: Any perspective—or policy objective or action (including proposed action)that is compelled "
    "by religious doctrine or interpretation, duty, honor, righteousness or any other sense of ethics or social "
    "responsibility.\nFAIRNESS AND EQUALITY: Equality or inequality with which laws, punishment, rewards, and "
    "resources are applied or distributed among individuals or groups. Also the balance between the rights or "
    "interests of one individual or group compared to another individual or group.\nPOLICY PRESCRIPTION AND "
    "EVALUATION: Particular policies proposed for addressing an identified problem, and figuring out if certain "
    "policies will work, or if existing policies are effective.\nLAW AND ORDER, CRIME AND JUSTICE: Specific "
    "policies in practice and their enforcement, incentives, and implications. Includes stories about enforcement "
    "and interpretation of laws by individuals and law enforcement, breaking laws, loopholes, fines, sentencing and "
    "punishment. Increases or reductions in crime.\nSECURITY AND DEFENSE: Security, threats to security, and "
    "protection of one’s person, family, in-group, nation, etc. Generally an action or a call to action that can be "
    "taken to protect the welfare of a person, group, nation sometimes from a not yet manifested threat.\nHEALTH AND "
    "SAFETY: Health care access and effectiveness, illness, disease, sanitation, obesity, mental health effects, "
    "prevention of or perpetuation of gun violence, infrastructure and building safety.\nQUALITY OF LIFE: The "
    "effects of a policy on individuals’ wealth, mobility, access to resources, happiness, social structures, ease "
    "of day-to-day routines, quality of community life, etc.\nPOLITICAL: Any political considerations surrounding "
    "an issue. Issue actions or efforts or stances that are political, such as partisan filibusters, lobbyist "
    "involvement, bipartisan efforts, deal-making and vote trading, appealing to one's base, mentions of political "
    "maneuvering. Explicit statements that a policy issue is good or bad for a particular political party.\n"
    "EXTERNAL REGULATION AND REPUTATION: The United States’ external relations with another nation; the external "
    "relations of one state with another; or relations between groups. This includes trade agreements and "
    "outcomes, comparisons of policy outcomes or desired policy outcomes.\nOTHER: Any topic that does not fit into "
    "the above categories."
)
_FRAMES2_2024_ASK = (
    " frames best fit the following tweet? Answer with only the option below that is most accurate and nothing "
    "else.\n\nA: ECONOMY \nB: MORALITY\nC: FAIRNESS AND EQUALITY\nD: POLICY PRESCRIPTION AND EVALUATION \nE: LAW AND "
    "ORDER, CRIME AND JUSTICE\nF: SECURITY AND DEFENSE\nG: HEALTH AND SAFETY\nH: QUALITY OF LIFE\nI: POLITICAL\nJ: "
    "EXTERNAL REGULATION AND REPUTATION\nK: OTHER\n\n{text}"
)
_FRAMES2_2024 = _CM_2024 + _FRAMES2_2024_LIST + "\n\nNow, which of the bellow" + _FRAMES2_2024_ASK
_FRAMES2_17_2024 = _POL_2024 + _FRAMES2_2024_LIST + "\n\nNow, which of the above" + _FRAMES2_2024_ASK

# -- stance towards Section 230: Appendix H part, its user turn, the 2024 form
_STANCE_PS = (
    "\nIn the context of content moderation, Section 230 is a law in the United States that protects websites and "
    "other online platforms from being held legally responsible for the content posted by their users. This means "
    "that if someone posts something illegal or harmful on a website, the website itself cannot be sued for "
    "allowing it to be posted. However, websites can still choose to moderate content and remove anything that "
    "violates their own policies.\nFor each tweet in the sample, follow these instructions:\n1. Carefully read the "
    "text of the tweet, paying close attention to details.\n2. Classify the tweet as having a positive stance "
    "towards Section 230, a negative stance, or a neutral stance."
)
_STANCE_ASK = ("Here's the tweet I picked, please label it as 'Positive', 'Negative', or 'Neutral' by answering with "
               "one word:\n{text}")
_STANCE_2024 = _CM_2024 + " " + _STANCE_PS[1:].split("\nFor each")[0] + (
    "\n\nI will ask you to classify a tweet as 'IN FAVOR OF', 'AGAINST', or 'NEUTRAL' about Section 230:\n\nA: "
    "“IN FAVOR  OF” expresses approval for Section 230 and/or advocates keeping Section 230\nB: “AGAINST” expresses "
    "disapproval towards Section 230 and/or advocates repealing Section 230\nC: “NEUTRAL” discusses Section 230 "
    "without expressing approval or disapproval towards it\n\nNow, is the following tweet IN FAVOR OF, AGAINST, or "
    "NEUTRAL about Section 230?\n\n{text}"
)

# -- topic: Appendix I part (joined to Appendix A without a separator, as in the loader), user turn, 2024
_TOPIC_PS = (
    "Tweets about content moderation may also discuss other related topics, such as:\n1. Section 230, which is a law "
    "in the United States that protects\nwebsites and other online platforms from being held legally responsible "
    "for the content posted by their users (SECTION 230).\n2. The decision by many social media platforms, such as "
    "Twitter and Facebook, to suspend Donald Trump’s account (TRUMP BAN).\n3. Requests directed to Twitter’s "
    "support account or help center (TWITTER SUPPORT).\n4. Social media platforms’ policies and practices, such as "
    "community guidelines or terms of service (PLATFORM POLICIES).\n5. Complaints about platform’s policy and "
    "practices in deplatforming and content moderation or suggestions to suspend particular accounts, or "
    "complaints about accounts being suspended or reported (COMPLAINTS).\n6. If a text is not about the SECTION "
    "230, COMPLAINTS, TRUMP BAN, TWITTER SUPPORT, and PLATFORM POLICIES, then it should be classified in OTHER "
    "class (OTHER).\nFor each tweet in the sample, follow these instructions:\n1. Carefully read the text of the "
    "tweet, paying close attention to details.\n2. Please classify the following text according to topic (defined "
    "by function of the text, author’s purpose and form of the text). You can choose from the following classes: "
    "SECTION 230, TRUMP BAN, COMPLAINTS, TWITTER SUPPORT, PLATFORM POLICIES, and OTHER"
)
_TOPIC_ASK = ("Here's the tweet I picked, please label it as 'Section 230', 'Trump Ban', 'Complaints', 'Twitter "
              "Support', 'Platform Policies', and 'Other' by answering with one word:\n{text}")
_TOPIC_2024 = _CM_2024 + (
    "\n\nI will ask you to classify a tweet as of the topics described below:\n\nA: Section 230, which is a law in "
    "the United States that protects websites and other online platforms from being held legally responsible for "
    "the content posted by their users (SECTION 230). \nB: Trump ban, the decision by many social media platforms, "
    "such as Twitter and Facebook, to suspend Donald Trump’s account.\nC: Twitter Support, requests directed to "
    "Twitter’s support account or help center.\nD: Platform Policies, which is social media platforms’ policies and "
    "practices, such as community guidelines or terms of service.\nE: Complaint, which is general or personal "
    "complaints about platform’s policy and practices in deplatforming and content moderation or suggestions to "
    "suspend particular accounts, or complaints about accounts being suspended or reported.\nF: Other, if a text is "
    "not about the SECTION 230, COMPLAINTS, TRUMP BAN, TWITTER SUPPORT, and PLATFORM POLICIES, then it should be "
    "classified in OTHER class.\n\nNow, is the following tweet about SECTION 230, TRUMP BAN, COMPLAINTS, TWITTER "
    "SUPPORT, PLATFORM POLICIES, or OTHER?\n\n{text}"
)

# Stance towards "Climate change/global warming is a serious concern" (data/stance_climate/
# load_data_and_prompts.py): two originals (adapted by the authors from Gligoric et al. 2025, Table 2,
# and from Luo et al. 2020, Appendix D) and three published paraphrases of the first.
_CLIMATE_ORIG_SHORT = (
    "A statement can agree, be neutral, or disagree with the statement: \"Climate change/global warming is a "
    "serious concern\". Classify the following statement into one of the three categories. Output either A, "
    "B, or C. Output a letter only.\nA) Agree\nB) Neutral\nC) Disagree\nStatement: {text}\nAnswer:"
)
_CLIMATE_ORIG_DETAILED = (
    "Target opinion: Climate change/global warming is a serious concern.\n\nSENTENCE: {text}\n\nA. AGREES "
    "(the writer probably agrees with the target opinion)\nThis could be for any of reasons shown below:\n- "
    "the writer mentions explicit support for the target\n- the writer mentions support for something/someone "
    "aligned with the target\n- the writer mentions opposition to something/someone opposing the target\n\n"
    "B. DISAGREES (the writer probably disagrees with the target opinion)\nThis could be for any of the "
    "following:\n- the writer mentions explicit opposition to the target\n- the writer mentions opposition to "
    "someone/something aligned with the target\n- the writer mentions support for someone/something opposing "
    "the target\n\nC. NEUTRAL (it is unclear whether or not the writer supports the target opinion)\nThe "
    "writer could be either in support of or against the target; the sentence does not reveal the writer's "
    "stance.\n\nYour task is to annotate the SENTENCE for agreeing (A), disagreeing (B), or being neutral (C) "
    "with respect to the target opinion. Output either A, B, or C. Output a letter only."
)
_CLIMATE_PARA = (
    "Decide whether the following statement agrees with, is neutral toward, or disagrees with the claim: "
    "\"Climate change/global warming is a serious concern.\" Reply using only the corresponding letter code."
    "\nA) Agree\nB) Neutral\nC) Disagree\nStatement: {text}\nAnswer:",
    "Assess the stance of the sentence below toward the claim: \"Climate change/global warming is a serious "
    "concern.\" Reply with only one letter from the options provided.\nA) Agree\nB) Neutral\nC) Disagree\n\n"
    "Sentence: {text}\nAnswer:",
    "Consider the claim: \"Climate change/global warming is a serious concern.\" Decide whether the statement "
    "below (A) agrees with, (B) is neutral toward, or (C) disagrees with this claim, and respond using only "
    "the corresponding letter.\nA) Agree\nB) Neutral\nC) Disagree\nStatement: {text}\nAnswer:",
)


# Prompts of some studies whose files are not mirrored, quoted from each study's load_data_and_prompts.py
# (the one-message prompts; few-shot chats are not registered).
_HUMOR_ORIG = ("Joke: {text}\n\nConstraint: Is the above joke humorous to most of the people? You must pick "
               "between \"True\" or \"False\" You cannot use any other words except for \"True\" or \"False\".")
_TOPIC_ORIG = "Does the following text relate to the economy? (True/False)\n\ntext: {text}\n\nlabel:"
# data/topic/load_data_and_prompts.py: its other one-message prompts (the letter form and the published
# paraphrase of the original); the two few-shot chats are not registered.
_TOPIC_LETTERS = ("Does the following text relate to the economy?\nA: True\nB: False\n\nAnswer only 'A' or 'B'.\n\n"
                  "text: {text}\n\nAnswer:")
_TOPIC_PARA = ('Determine whether the following text concerns the economy. Reply only with "True" or "False".\n\n'
               "text: {text}\n\nlabel:")
_POLITE_ORIG = ("Is the following text polite? Output either A or B. Output a letter only.\nA) Polite\nB) Impolite\n"
                "Text: {text}\nAnswer:")
# data/politeness/load_data_and_prompts.py: the two originals shared by both politeness tasks (after Gligoric
# et al. and Ziems et al.; the second keeps the space after its question mark), then each task's three
# published paraphrases. All ask for A (Polite) / B (Impolite).
_POLITE_ZIEMS = ("{text}\n\nBased on formal workplace social norms, which of the following best describes the above "
                 "conversation? \nA: Polite\nB: Impolite\n\nConstraint: Answer with only the option above that is "
                 "most accurate and nothing else.")
_POLITE_WIKI = (
    "Determine if the text below is polite. Reply with a single letter only.\nA: Polite\nB: Impolite\n\nText: "
    "{text}\n\nRespond with A or B:",
    "{text}\n\nAccording to standard professional etiquette, select the option that best categorizes the "
    "conversation:\nA: Polite\nB: Impolite\n\nReply with only the corresponding letter (A or B) and no additional "
    "text.",
    "Decide if the text below is polite or impolite. Respond with a single letter (A or B) only.\nA) Polite\nB) "
    "Impolite\nText: {text}\nAnswer:",
)
_POLITE_STACK = (
    "Assess whether the following text is courteous. Reply with a single letter—A or B—and nothing else.\nA) "
    "Polite\nB) Impolite\nText: {text}\nAnswer:",
    "{text}\n\nAccording to formal workplace etiquette, select the option that best characterizes the conversation "
    "above:\nA: Polite\nB: Impolite\n\nRespond with only the single letter (A or B) that most accurately applies.",
    "Please determine whether the text below is polite. Respond with a single letter only: A or B.  \nA) Polite  "
    "\nB) Impolite  \n\nText: {text}  \nAnswer:",
)


def _polite(paraphrases: tuple[str, ...]) -> dict:
    prompts = (("authors_original_gligoric", _POLITE_ORIG, _A), ("authors_original_ziems", _POLITE_ZIEMS, _A)) + tuple(
        (f"authors_paraphrase_{i}", t, _A) for i, t in enumerate(paraphrases))
    return dict(prompts=prompts, answers={p[0]: {"A": "polite", "B": "impolite"} for p in prompts},
                prompt_note="The two originals and this task's three paraphrases of "
                            "data/politeness/load_data_and_prompts.py, quoted.")


# data/humor/load_data_and_prompts.py: its five one-message prompts (original, letter form, three paraphrases).
_HUMOR_PROMPTS = (
    ("authors_original", _HUMOR_ORIG),
    ("authors_zero_shot_letters", "Joke: {text}\n\nIs the above joke humorous to most of the people? You must pick "
     "between one of these two options:\nA: True\nB: False\n\nConstraint: Answer only 'A' or 'B'."),
    ("authors_paraphrase_0", "Joke: {text}\n\nTask: Decide if most people would find this joke funny.\nRespond "
     "exclusively with \"True\" for yes or \"False\" for no—no additional words."),
    ("authors_paraphrase_1", "Joke: {text}\n\nWould most people find this joke funny? Choose exactly one of the "
     "following:\nA: True\nB: False\n\nImportant: reply with only 'A' or 'B'."),
    ("authors_paraphrase_2", "Joke: {text}\n\nTask: Determine whether the majority of people would find the joke "
     "above humorous.\nRespond with exactly one word—either \"True\" or \"False\"—and provide no additional text."),
)
# data/misinfo/load_data_and_prompts.py: its prompt (after Ziems et al.; the loader's triple-quoted string keeps
# the 24 spaces of indentation before its second line) and its four published paraphrases; all ask for A / B.
_MISINFO_PROMPTS = (
    ("authors_zero_shot_ziems", "News headline: {text}\n" + " " * 24 + "Which of the following describes the "
     "above news headline?\nA: Misinformation\nB: Trustworthy\n\nConstraint: Answer with only the option above "
     "that is most accurate and nothing else."),
    ("authors_paraphrase_0", "News headline: {text}\n\nSelect the label that best fits the headline:\nA: "
     "Misinformation\nB: Trustworthy\n\nReply with only the chosen letter (A or B) and nothing else."),
    ("authors_paraphrase_1", "Headline to assess: {text}\nPlease select the label that best fits this headline:\nA: "
     "Misinformation\nB: Trustworthy\n\nInstruction: Respond with only the single letter (A or B) that "
     "corresponds to your selection."),
    ("authors_paraphrase_2", "Headline: {text}\nSelect the label that best categorizes this headline:\nA: "
     "Misinformation\nB: Trustworthy\n\nRespond with only the single letter (A or B) that applies."),
    ("authors_paraphrase_3", "News headline: {text}\nPlease select the label that best fits the headline:\nA: "
     "Misinformation\nB: Trustworthy\n\nReply with ONLY the single letter (A or B) that corresponds to your "
     "choice."),
)


_A = "authors"
_H = "hackrisk"  # made with hackrisk's own tools (not the authors'), named as such

#: hackrisk's paraphrases for the tasks with fewer than 3 published one-string prompts: each rewords the
#: authors' 2024 zero-shot form (every definition and option kept), was written for hackrisk and is accepted by
#: the checks of hackrisk.annotate.task.paraphrase ({text} kept, no placeholder added, every class name and
#: answer key the original mentions kept, not a copy; tests/test_tasks.py replays them through it). Stored
#: here, never generated at run time. The embedded SmolLM2-135M-Instruct, asked through paraphrase() for these
#: templates, answered only "{text}" (topic_tweets: 8 of 8 tries rejected), so it could not make them.
_HK_CM = ("Content moderation means the screening and monitoring of what users post on social media sites, to "
          "decide under specific rules and guidelines whether that content should be published.")
_HK_FRAMES2 = (
    "\n\nAssign the tweet below to one of the frames defined here:\n\nECONOMY: what the issue costs or brings in, "
    "or its monetary and financial consequences (for a person, a family, a community or the economy as a whole)."
    "\nMORALITY: a perspective, policy objective or action (proposed actions included) driven by religious "
    "doctrine or its interpretation, by duty, honor or righteousness, or by any other sense of ethics or social "
    "responsibility.\nFAIRNESS AND EQUALITY: how equally or unequally laws, punishments, rewards and resources are "
    "applied to or shared among individuals or groups; also how the rights or interests of one individual or "
    "group are balanced against those of another.\nPOLICY PRESCRIPTION AND EVALUATION: specific policies put "
    "forward to address a known problem, and judgments of whether particular policies would work or whether "
    "existing ones are effective.\nLAW AND ORDER, CRIME AND JUSTICE: policies as practiced and how they are "
    "enforced, with their incentives and consequences; covers stories about the enforcement and interpretation of "
    "laws by individuals and by law enforcement, law breaking, loopholes, fines, sentencing and punishment, and "
    "rises or falls in crime.\nSECURITY AND DEFENSE: security, threats to it, and the protection of a person, "
    "family, in-group, nation and so on; usually an action, or a call for action, to protect the welfare of a "
    "person, group or nation, sometimes against a threat that has not yet materialized.\nHEALTH AND SAFETY: "
    "access to health care and its effectiveness, illness, disease, sanitation, obesity, effects on mental "
    "health, the prevention or perpetuation of gun violence, and the safety of infrastructure and buildings."
    "\nQUALITY OF LIFE: how a policy affects people’s wealth, mobility, access to resources, happiness, social "
    "structures, the ease of daily routines, the quality of community life, and the like.\nPOLITICAL: any "
    "political consideration around an issue: actions, efforts or stances that are political, such as partisan "
    "filibusters, the involvement of lobbyists, bipartisan efforts, deal-making and vote trading, appeals to "
    "one's base, or mentions of political maneuvering; also explicit claims that a policy issue is good or bad for "
    "a particular political party.\nEXTERNAL REGULATION AND REPUTATION: the external relations of the United "
    "States with another nation, of one state with another, or between groups; includes trade agreements and "
    "their outcomes, and comparisons of actual or desired policy outcomes.\nOTHER: any topic that fits none of "
    "the categories above.\n\nWhich of the frames above fits the following tweet best? Reply with just the single "
    "most accurate option from the list below and nothing more.\n\nA: ECONOMY\nB: MORALITY\nC: FAIRNESS AND "
    "EQUALITY\nD: POLICY PRESCRIPTION AND EVALUATION\nE: LAW AND ORDER, CRIME AND JUSTICE\nF: SECURITY AND DEFENSE"
    "\nG: HEALTH AND SAFETY\nH: QUALITY OF LIFE\nI: POLITICAL\nJ: EXTERNAL REGULATION AND REPUTATION\nK: OTHER\n\n"
    "{text}"
)
_HK_PARAPHRASES: dict[str, tuple[str, ...]] = {
    "topic_tweets": (_HK_CM + (
        "\n\nAssign the tweet below to one of these topics:\n\nA: Section 230, the United States law that shields "
        "websites and other online platforms from legal responsibility for what their users post (SECTION 230)."
        "\nB: Trump ban, the suspension of Donald Trump’s account by many social media platforms, such as Twitter "
        "and Facebook.\nC: Twitter Support, requests addressed to Twitter’s support account or help center.\nD: "
        "Platform Policies, the policies and practices of social media platforms, such as community guidelines or "
        "terms of service.\nE: Complaint, general or personal complaints about a platform’s policies and practices "
        "in deplatforming and content moderation, suggestions that particular accounts be suspended, or complaints "
        "about accounts being suspended or reported.\nF: Other, any text that is not about SECTION 230, "
        "COMPLAINTS, TRUMP BAN, TWITTER SUPPORT or PLATFORM POLICIES belongs to the OTHER class.\n\nWhich topic is "
        "the following tweet about: SECTION 230, TRUMP BAN, COMPLAINTS, TWITTER SUPPORT, PLATFORM POLICIES, or "
        "OTHER?\n\n{text}"),),
    "framesII_tweets": (_HK_CM + _HK_FRAMES2,),
    "framesII_tweets17": ("Political content means text about politics or government policies at the local, national "
                          "or international level. It can involve political figures, events or issues, or use "
                          "political language or hashtags." + _HK_FRAMES2,),
}

_REL_CM = (("authors_2023_code", _REL_CODE_1, _A), ("authors_2023_paper", _REL_PAPER_1, _A),
           ("authors_2024_zero_shot", _REL_2024_TEXT, _A))
_FRAME_2023 = (("authors_2023_code", _FRAME_CODE_1, _A), ("authors_2023_paper", _FRAME_PAPER_1, _A))
_AB = {"A": "relevant", "B": "irrelevant"}
_01 = {"1": "relevant", "0": "irrelevant"}
_ABC_FRAME = {"A": "problem", "B": "solution", "C": "neutral"}
_REL_ANSWERS = {"authors_2023_code": _01, "authors_2023_paper": _01, "authors_2024_zero_shot": _AB}
_FRAME_ANSWERS = {"authors_2024_zero_shot": _ABC_FRAME}
_FRAMES2_ANSWERS = {"authors_2024_zero_shot": dict(zip("ABCDEFGHIJK", (
    "economic", "morality", "fairness", "policy", "law", "security", "health", "quality", "political", "external",
    "other")))}
_STANCE_ANSWERS = {"authors_2023_code": {"positive": "in favor of", "negative": "against", "neutral": "neutral"},
                   "authors_2023_paper": {"positive": "in favor of", "negative": "against", "neutral": "neutral"},
                   "authors_2024_zero_shot": {"A": "in favor of", "B": "against", "C": "neutral"}}
_TOPIC_ANSWERS = {"authors_2024_zero_shot": dict(zip("ABCDEF", (
    "section 230", "trump ban", "twitter support", "platform policies", "complaint", "other")))}


def _gilardi_note(forms: str, extra: str = "") -> str:
    return (f"The authors' prompts quoted from {_GILARDI_SRC} ({forms}), each in its one-message '(no system "
            "prompt)' form, i.e. the loader's system and user turns joined as the loader joins them; the same "
            "words as two turns and the few-shot chats are not registered. The authors' answer mappings (letters, "
            "0/1, positive/negative) are in `answers`; hackrisk's score mode scores the class names. "
            "No paraphrases are published for these tasks (the authors paraphrase only tasks with fewer than 5 "
            "prompts)." + extra)


_NOTE_3 = _gilardi_note("Gilardi et al.'s 2023 code wording, their 2023 paper wording, their 2024 zero-shot form")
_NOTE_2 = _gilardi_note(
    "the 2023 paper wording and the 2024 zero-shot form; the loader has no 2023 code wording for this task",
    " Fewer than 3 one-string prompts are published, so 'hackrisk_paraphrase_0' (origin 'hackrisk') rewords "
    "the 2024 zero-shot form: written for hackrisk, accepted by the checks of hackrisk.annotate.task.paraphrase "
    "(the embedded SmolLM2-135M-Instruct could not paraphrase these templates).")


def _two(paper: str, zero: str, name: str) -> tuple[tuple[str, str, str], ...]:
    """The authors' two one-string prompts of a task, then hackrisk's stored paraphrases of the second."""
    return (("authors_2023_paper", paper, _A), ("authors_2024_zero_shot", zero, _A)) + tuple(
        (f"hackrisk_paraphrase_{i}", t, _H) for i, t in enumerate(_HK_PARAPHRASES.get(name, ())))


def _gilardi(name, classes, covariates, chars, columns, rows, description, prompts, note, **kw):
    return dict(name=name, study="gilardi_et_al_pnas", citation=_GILARDI, description=description,
                classes=classes, classes_complete=True, covariates=covariates, hypothesis_covariates=(),
                chars=chars, columns=columns, rows=rows, prompts=prompts, prompt_note=note, **kw)


_TWEET23_COLS = ("id", "ground_truth", "text", "user_id", "screen_name", "status_id", "created_at",
                 "relevant_fabio", "relevant_paula", "problem_frame_fabio", "problem_frame_paula",
                 "solution_frame_fabio", "solution_frame_paula")
_TOPIC_COLS = ("id", "ground_truth", "text", "status_id", "Date", "relevant", "problem_frame", "solution_frame",
               "topic_name_fabio", "topic_name_second_fabio", "frame_name_primary_fabio",
               "frame_name_secondary_fabio", "topic_name_paula", "topic_name_secondary_paula",
               "frame_name_primary_paula", "frame_name_secondary_paula", "mturk_annotation", "WorkerId")
_MANIFESTO_UK_COLS = ("id", "sentenceid", "text", "party", "year", "ground_truth", "original_annotations")
_POLITE_SCORES = tuple(f"Score{i}" for i in range(1, 6)) + tuple(f"TurkId{i}" for i in range(1, 6)) + tuple(
    f"Score{i}_normalized" for i in range(1, 6)) + tuple(f"Score{i}_binarized" for i in range(1, 6))
_FEATURES = tuple(f"Feature_{i}" for i in range(1, 22))

#: One entry per file of data/all_data_processed (29), in the repository's alphabetical order.
TASKS: list[dict] = [
    dict(name="emotion", study="emotion", citation="Demszky et al. (2020), GoEmotions [demszky-etal-2020-goemotions]",
         description="Reddit comments: the emotion expressed (25 emotions plus neutral; comments on which all "
                     "annotators agree)",
         classes=("neutral", "admiration", "surprise", "gratitude", "joy", "love", "curiosity", "disapproval",
                  "approval", "disappointment", "fear", "amusement", "desire", "relief", "excitement", "sadness",
                  "realization", "anger", "nervousness", "embarrassment"),
         classes_complete=False, covariates=("subreddit", "author", "sentiment", "created_utc"),
         hypothesis_covariates=("subreddit", "author", "sentiment", "created_utc"), chars=1031599,
         columns=("id", "ground_truth", "text", "author", "subreddit", "link_id", "parent_id", "created_utc",
                  "sentiment"), rows=None),
    dict(name="factuality", study="factuality", citation="Min et al. (2023), FActScore [min-etal-2023-factscore]",
         description="Atomic facts from LLM-written biographies: supported, not supported or irrelevant",
         classes=("Irrelevant",), classes_complete=False, covariates=("topic", "model"), hypothesis_covariates=None,
         chars=10536402, columns=("id", "ground_truth", "text", "topic", "generation", "model"), rows=None),
    _gilardi("framesII_tweets", ("economic", "capacity", "morality", "fairness", "constitutionality", "policy",
                                 "law", "security", "health", "quality", "cultural", "public", "political",
                                 "external", "other"),
             ("Date",), 145358, _TOPIC_COLS, 311,
             "Tweets on content moderation (2020-2021): policy frame (Frames II)",
             _two(_FRAMES2_PAPER_1, _FRAMES2_2024, "framesII_tweets"), _NOTE_2, answers=_FRAMES2_ANSWERS),
    _gilardi("framesII_tweets17", ("economic", "capacity", "morality", "fairness", "constitutionality", "policy",
                                   "law", "security", "health", "quality", "cultural", "public", "political",
                                   "external", "other"),
             ("created_at", "screen_name"), 229407,
             ("id", "ground_truth", "text", "status_id", "user_id", "screen_name", "created_at", "relevant_paula",
              "relevant_fabio", "frame_paula", "frame_fabio", "relevance_agreement_check", "relevant_ra",
              "mturk_annotation", "WorkerId"), 569,
             "Tweets by US Congress members (2017-2018): policy frame (Frames II)",
             _two(_FRAMES2_17_PAPER_1, _FRAMES2_17_2024, "framesII_tweets17"), _NOTE_2, answers=_FRAMES2_ANSWERS),
    _gilardi("framesI_news", ("problem", "solution", "neutral"), ("pubdatetime", "publication_name"), 506552,
             ("id", "ground_truth", "text", "pubdatetime", "publication_name", "title_h1", "relevant_paula",
              "relevant_fabio", "problem_frame_paula", "problem_frame_fabio", "solution_frame_paula",
              "solution_frame_fabio", "relevance_agreement_check", "problem_solution_agreement_check",
              "problem_solution_ra", "ground_truth_fabio", "ground_truth_paula", "mturk_annotation", "WorkerId"),
             326, "News articles on content moderation (2020-2021, long texts): problem / solution / neutral",
             _FRAME_2023 + (("authors_2024_zero_shot", _frame_2024("Text"), _A),),
             _NOTE_3 + " The loader asks about 'the tweet' for the news articles too (quoted as is).",
             answers=_FRAME_ANSWERS, long_texts=True),
    _gilardi("framesI_tweets", ("problem", "solution", "neutral"), ("Date",), 223214,
             ("id", "ground_truth", "text", "status_id", "Date", "relevant_paula", "relevant_fabio",
              "problem_frame_paula", "problem_frame_fabio", "solution_frame_paula", "solution_frame_fabio",
              "ground_truth_fabio", "ground_truth_paula", "mturk_annotation", "WorkerId"), 593,
             "Tweets on content moderation (2020-2021): problem / solution / neutral (Frames I)",
             _FRAME_2023 + (("authors_2024_zero_shot", _frame_2024("Tweet"), _A),), _NOTE_3, answers=_FRAME_ANSWERS),
    _gilardi("framesI_tweets23", ("problem", "solution", "neutral"), ("created_at", "screen_name"), 58724,
             _TWEET23_COLS + ("ground_truth_fabio", "ground_truth_paula", "mturk_annotation", "WorkerId"), 150,
             "Relevant tweets (Jan 2023): problem / solution / neutral (Frames I)",
             _FRAME_2023 + (("authors_2024_zero_shot", _frame_2024("Text"), _A),), _NOTE_3, answers=_FRAME_ANSWERS),
    dict(name="hatespeech_explicit", study="hatespeech",
         citation="ElSherief et al. (2021), Latent Hatred [elsherief-etal-2021-latent]",
         description="Tweets from US hate-group accounts (2015-2017): explicit hate, implicit hate or not hate",
         classes=("explicit hate",), classes_complete=False, covariates=(), hypothesis_covariates=None,
         chars=1272244, columns=("id", "ground_truth", "text"), rows=None),
    dict(name="hatespeech_implicit", study="hatespeech",
         citation="ElSherief et al. (2021), Latent Hatred [elsherief-etal-2021-latent]",
         description="Implicit-hate tweets: white grievance, incitement, inferiority, irony, stereotypical, "
                     "threatening",
         classes=("white grievance", "incitement", "inferiority", "irony", "stereotypical", "threatening"),
         classes_complete=True, covariates=(), hypothesis_covariates=None, chars=828994,
         columns=("id", "ground_truth", "text"), rows=None),
    dict(name="hatespeech_target", study="hatespeech",
         citation="ElSherief et al. (2021), Latent Hatred [elsherief-etal-2021-latent]",
         description="Implicit-hate tweets: the targeted group (the 26 most frequent targets)",
         classes=("liberals", "no specific group", "christians", "jewish people", "minorities", "non white people",
                  "illegal immigrants", "black people", "islamic people", "white people", "asian people",
                  "muslims", "progressives", "conservatives", "people of color", "white men", "democrats",
                  "white women"),
         classes_complete=False, covariates=(), hypothesis_covariates=None, chars=999878,
         columns=("id", "ground_truth", "text", "implied_statement", "implied_statement_without_target_info"),
         rows=None),
    dict(prompts=tuple((i, t, _A) for i, t in _HUMOR_PROMPTS),
         answers={k: {"A": "True", "B": "False"} for k in ("authors_zero_shot_letters", "authors_paraphrase_1")},
         prompt_note="The five one-message prompts of data/humor/load_data_and_prompts.py, quoted.", name="humor",
         study="humor", citation="Weller & Seppi (2019), Humor detection [weller-seppi-2019-humor]",
         description="r/jokes posts: funny to many people (more than 200 upvotes)?",
         classes=("True", "False"), classes_complete=True, covariates=("date",), hypothesis_covariates=("date",),
         chars=2553937, columns=("id", "text", "ground_truth", "date"), rows=None),
    dict(name="ideology_tweets", study="ideology_tweets",
         citation="Törnberg (2024), Large language models outperform expert coders [Törnberg2024Large]",
         description="Politicians' tweets before elections: the author's party is left or right",
         classes=("left", "right"), classes_complete=False, covariates=("gender", "country", "region"),
         hypothesis_covariates=("gender", "country", "region"), chars=1229787,
         columns=("id", "text", "party", "country", "region", "from_user_realname", "ground_truth", "country_code",
                  "firstname", "gender", "genderprob"), rows=None),
    dict(name="issue_survey", file="issue_survey_REDACTED", study="issue_survey",
         citation="British Election Study (Fieldhouse et al. 2024) [fieldhouse2024british]",
         description="Open survey answers on the most important issue (49 categories)",
         classes=("Asylum", "Austerity", "COVID-economy"), classes_complete=False, covariates=(),
         hypothesis_covariates=None, chars=470123, columns=("id", "ground_truth", "original_id_and_wave"),
         rows=None, commit="086b22bdfdabec6604ea0543a563a4414a893b85", text=None,
         unavailable="the published file has its texts removed (REDACTED: ids, labels and respondent/wave "
                     "only); the answers are proprietary British Election Study data, which the authors merge "
                     "in with data/issue_survey/load_proprietary_data_and_merge_with_redacted_data.py"),
    dict(name="manifestos_econ_ideology", study="manifestos_uk",
         citation="Benoit et al. (2016), Crowd-sourced text analysis [benoit2016crowd]",
         description="UK manifesto sentences (1987-2010): economic policy left or right",
         classes=("Right", "Left"), classes_complete=False, covariates=("party", "year"), hypothesis_covariates=None,
         chars=648351, columns=_MANIFESTO_UK_COLS, rows=None),
    dict(name="manifestos_issue", study="manifestos_uk",
         citation="Benoit et al. (2016), Crowd-sourced text analysis [benoit2016crowd]",
         description="UK manifesto sentences (1987-2010): economic or social policy dimension",
         classes=("Economy",), classes_complete=False, covariates=("party", "year"), hypothesis_covariates=None,
         chars=2637668, columns=_MANIFESTO_UK_COLS, rows=None),
    dict(name="manifestos_issues_detailed", study="manifestos",
         citation="Manifesto Project (Lehmann et al. 2024) [merz2016manifesto, Lehmann2024]",
         description="Party manifesto quasi-sentences (2000-2022): 46 issue categories",
         classes=("Agriculture and Farmers",), classes_complete=False,
         covariates=("year", "countryname", "partyname", "parfam"), hypothesis_covariates=None, chars=2511267,
         columns=("id", "year", "party", "text", "ground_truth", "manifesto_id", "date", "cmp_code", "countryname",
                  "partyname", "partyabbrev", "parfam"), rows=None),
    dict(name="manifestos_social_ideology", study="manifestos_uk",
         citation="Benoit et al. (2016), Crowd-sourced text analysis [benoit2016crowd]",
         description="UK manifesto sentences (1987-2010): social policy liberal or conservative",
         classes=("Liberal", "Conservative"), classes_complete=False, covariates=("party", "year"),
         hypothesis_covariates=None, chars=536930, columns=_MANIFESTO_UK_COLS, rows=None),
    dict(prompts=tuple((i, t, _A) for i, t in _MISINFO_PROMPTS),
         answers={i: {"A": "Misinformation", "B": "Trustworthy"} for i, _ in _MISINFO_PROMPTS},
         prompt_note="The five prompts of data/misinfo/load_data_and_prompts.py, quoted.", name="misinfo",
         study="misinfo", citation="Gabriel et al. (2022), Misinfo Reaction Frames [gabriel-etal-2022-misinfo]",
         description="Headlines of fact-checked news (Covid-19, cancer, climate): misinformation or not",
         classes=("Misinformation", "Trustworthy"), classes_complete=True, covariates=("date", "source", "type"),
         hypothesis_covariates=None, chars=1390859, columns=("id", "text", "ground_truth", "date", "source", "type"),
         rows=None),
    dict(**_polite(_POLITE_STACK), name="politeness_stack", study="politeness", citation="Danescu-Niculescu-Mizil et al. (2013), "
         "Stanford politeness corpus [danescu-niculescu-mizil-etal-2013-computational]",
         description="StackExchange requests: polite or impolite (neutral omitted)",
         classes=("polite", "impolite"), classes_complete=True, covariates=("Community", "Reputation"),
         hypothesis_covariates=None, chars=2275345,
         columns=("id", "ground_truth", "text", "index", "Community", "Id", "Timestamp", "UserId", "Reputation",
                  "Upvotes", "Downvotes", "meta.Normalized Score", "meta.Annotations") + _FEATURES + _POLITE_SCORES,
         rows=None),
    dict(**_polite(_POLITE_WIKI), name="politeness_wiki", study="politeness", citation="Danescu-Niculescu-Mizil et al. (2013), "
         "Stanford politeness corpus [danescu-niculescu-mizil-etal-2013-computational]",
         description="Wikipedia editor requests: polite or impolite (neutral omitted)",
         classes=("impolite", "polite"), classes_complete=True, covariates=("is_admin",),
         hypothesis_covariates=None, chars=1157418,
         columns=("id", "ground_truth", "text", "Community", "Id", "Timestamp", "User", "is_admin", "Adminship date",
                  "meta.Normalized Score") + _FEATURES + ("Politeness",) + _POLITE_SCORES, rows=None),
    _gilardi("relevance_news", ("relevant", "irrelevant"), ("pubdatetime", "publication_name"), 2408417,
             ("id", "ground_truth", "text", "pubdatetime", "publication_name", "title_h1", "relevant_paula",
              "relevant_fabio", "relevance_agreement_check", "relevant_ra", "mturk_annotation", "WorkerId"), None,
             "News articles (2020-2021): about content moderation?", _REL_CM,
             _NOTE_3 + " The loader asks about 'the tweet' for the news articles too (quoted as is).",
             answers=_REL_ANSWERS, long_texts=True),
    _gilardi("relevance_tweets", ("relevant", "irrelevant"), ("Date",), 700648,
             ("id", "ground_truth", "text", "status_id", "Date", "relevant_paula", "relevant_fabio",
              "mturk_annotation", "WorkerId"), None,
             "Tweets (2020-2021): about content moderation?", _REL_CM[:2] + (("authors_2024_zero_shot", _REL_2024_TWEET, _A),),
             _NOTE_3 + " For this task the loader's 2024 zero-shot text is one string (with 'banned' and 'banning') "
             "that the loader indexes [0] and [1] as if it were two turns, so it sends only its first two "
             "characters; the registry holds the whole string.", answers=_REL_ANSWERS),
    _gilardi("relevance_tweets17", ("relevant", "irrelevant"), ("created_at", "screen_name"), 727446,
             ("id", "ground_truth", "text", "status_id", "user_id", "screen_name", "created_at", "relevant_paula",
              "relevant_fabio", "frame_paula", "frame_fabio", "relevance_agreement_check", "relevant_ra",
              "mturk_annotation", "WorkerId"), None,
             "Tweets by US Congress members (2017-2018): political content?",
             (("authors_2023_paper", _REL17_PAPER_1, _A), ("authors_2024_zero_shot", _REL17_2024, _A)),
             _gilardi_note("the 2023 paper wording (Appendix B and D) and the 2024 zero-shot form; no 2023 code "
                           "wording for this task"), answers=_REL_ANSWERS),
    _gilardi("relevance_tweets23", ("irrelevant", "relevant"), ("created_at", "user_id", "screen_name"), 180014,
             _TWEET23_COLS + ("mturk_annotation", "WorkerId"), 411,
             "Tweets (Jan 2023): about content moderation?", _REL_CM,
             _NOTE_3 + " Classes in hackrisk's registered order (irrelevant, relevant; the authors' mappings list "
             "relevant first), kept for compatibility with existing cubes and stored labels.", answers=_REL_ANSWERS),
    dict(name="stance_climate", study="stance_climate",
         citation="Luo, Card & Jurafsky (2020), Detecting stance in media on global warming [luo-etal-2020-detecting]",
         description="Sentences from global-warming news (2000-2020): agree / neutral / disagree that climate "
                     "change is a serious concern (8 crowd votes each)",
         classes=("agree", "neutral", "disagree"), classes_complete=True,
         covariates=("round", "batch", "agree", "neutral", "disagree", "av_rating"), hypothesis_covariates=(),
         chars=510038, columns=("id", "ground_truth", "text", "round", "batch", "sent_id") + tuple(
             f"worker_{i}" for i in range(8)) + ("disagree", "agree", "neutral", "guid", "av_rating"), rows=1793,
         prompts=(("authors_zero_shot_short", _CLIMATE_ORIG_SHORT, _A),
                  ("authors_zero_shot_detailed", _CLIMATE_ORIG_DETAILED, _A),
                  ("authors_paraphrase_0", _CLIMATE_PARA[0], _A),
                  ("authors_paraphrase_1", _CLIMATE_PARA[1], _A),
                  ("authors_paraphrase_2", _CLIMATE_PARA[2], _A)),
         prompt_note="All five prompts of data/stance_climate/load_data_and_prompts.py, quoted. They ask for a "
                     "letter (A Agree, B Neutral, C Disagree; the detailed one A Agree, B Disagree, C Neutral); "
                     "the authors map letters to classes, hackrisk's score mode scores the class names.",
         answers={"authors_zero_shot_detailed": {"A": "agree", "B": "disagree", "C": "neutral"}} | {
             k: {"A": "agree", "B": "neutral", "C": "disagree"} for k in (
                 "authors_zero_shot_short", "authors_paraphrase_0", "authors_paraphrase_1", "authors_paraphrase_2")},
         id_gaps=True),
    _gilardi("stance_tweets", ("in favor of", "against", "neutral"), ("created_at", "user_id"), 252584,
             ("id", "ground_truth", "text", "user_id", "status_id", "created_at", "paula_stance_pro",
              "fabio_stance_pro", "paula_stance_neutral", "fabio_stance_neutral", "paula_stance_contra",
              "fabio_stance_contra", "stance_check", "stance pro", "stance neutral", "stance negative",
              "sum_of_stances_fabio", "sum_of_stances_paula", "ground_truth_fabio", "ground_truth_paula",
              "mturk_annotation", "WorkerId"), 557,
             "Tweets on content moderation: stance towards Section 230 (in favor of keeping it, against, neutral)",
             (("authors_2023_code", _CM_CODE + _STANCE_PS + "\n" + _STANCE_ASK, _A),
              ("authors_2023_paper", _CM_PAPER + _STANCE_PS + "\n" + _STANCE_ASK, _A),
              ("authors_2024_zero_shot", _STANCE_2024, _A)), _NOTE_3, answers=_STANCE_ANSWERS),
    dict(name="tone", study="tone", citation="Carlson & Montgomery (2017), pairwise comparisons "
         "[carlson2017pairwise]; via Ornstein, Blasingame & Truscott (2025)",
         description="US Senate campaign ads (2008): positive, neutral or negative tone",
         classes=("positive", "neutral", "negative"), classes_complete=True, covariates=(), hypothesis_covariates=(),
         chars=552214, columns=("id", "text", "ground_truth"), rows=None),
    dict(prompts=(("authors_original", _TOPIC_ORIG, _A), ("authors_zero_shot_letters", _TOPIC_LETTERS, _A),
                  ("authors_paraphrase_0", _TOPIC_PARA, _A)),
         answers={"authors_zero_shot_letters": {"A": "True", "B": "False"}},
         prompt_note="The three one-message prompts of data/topic/load_data_and_prompts.py, quoted (the original, "
                     "its letter form, the authors' published paraphrase of the original); the two few-shot chats "
                     "are not registered.", name="topic", study="topic", citation="Egami et al. (2023), Using imperfect surrogates [egami2023using]",
         description="US congressional bills: about the economy (True) or not (False)",
         classes=("False", "True"), classes_complete=True, covariates=("senate", "democrat", "ideology"),
         hypothesis_covariates=("senate", "democrat", "ideology"), chars=2100148,
         columns=("id", "text", "label", "senate", "democrat", "ideology", "ground_truth"), rows=None),
    _gilardi("topic_tweets", ("section 230", "trump ban", "twitter support", "platform policies", "complaint",
                              "other"), ("Date",), 272120, _TOPIC_COLS, 611,
             "Tweets on content moderation: topic (Section 230, Trump ban, ...)",
             _two(_CM_PAPER + _TOPIC_PS + "\n" + _TOPIC_ASK, _TOPIC_2024, "topic_tweets"), _NOTE_2,
             answers=_TOPIC_ANSWERS),
]

#: Ids of these files start with another prefix than the file name (``<prefix>_<n>``).
ID_PREFIX = {"framesII_tweets17": "frames_tweets17", "framesI_news": "frames_news",
             "framesI_tweets": "frames_tweets", "framesI_tweets23": "frames_tweets23",
             "issue_survey": "issue_survey"}
