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

# --- the authors' prompt texts (quoted; see each source) ------------------------------------------

# Relevance, "2024 zero-shot" form, which the loader copied from Gilardi et al.'s 2024 replication
# files (class Gilardi2023_Data1Task1_Tweets_2020_2021, variable relevance_specific_prompt_code_2024_zero).
_REL_2024_ZERO = (
    "“Content moderation” refers to the practice of screening and monitoring content posted by users "
    "on social media sites to determine if the content should be banned or not, based on specific rules "
    "and guidelines.\n\nI will ask you to classify a tweet as relevant or irrelevant to the content "
    "moderation:\n\nA: Tweet is RELEVANT if it includes: social media platforms’ content moderation rules "
    "and practices, censorship, governments’ regulation of online content moderation, and/or mild forms of "
    "content moderation like banning, flagging, shadowbanning, or account suspension.\n\nB: Tweet is "
    "IRRELEVANT if they do not refer to content moderation, as defined above. This would include, for "
    "example, a tweet by Trump that Twitter has labeled his tweet as “disputed”, or a tweet claiming that "
    "something is false.\n\nNow, is the following tweet RELEVANT or IRRELEVANT to content moderation?\n\n{text}"
)
# The same loader's variant "ban_prompt_rel2" (published wording, 'published' instead of 'banned').
_REL_2024_ZERO_B = (
    "“Content moderation” refers to the practice of screening and monitoring content posted by users "
    "on social media sites to determine if the content should be published or not, based on specific rules "
    "and guidelines.\n\nI will ask you to classify a tweet as relevant or irrelevant to the content "
    "moderation:\n\nA: Tweet is RELEVANT if it includes: social media platforms’ content moderation rules "
    "and practices, censorship, governments’ regulation of online content moderation, and/or mild forms of "
    "content moderation like flagging, shadowbanning, or account suspension.\n\nB: Tweet is IRRELEVANT if "
    "they do not refer to content moderation, as defined above. This would include, for example, a tweet by "
    "Trump that Twitter has labeled his tweet as “disputed”, or a tweet claiming that something is false."
    "\n\nNow, is the following tweet RELEVANT or IRRELEVANT to content moderation?\n\n{text}"
)
# Frames I, "2024 zero-shot" form (class Gilardi2023_Data1Task2_Tweets_2020_2021, variable
# frame_specific_prompt_code_2024_zero: two messages, joined here by a blank line).
_FRAME_2024_ZERO = (
    "“Content moderation” refers to the practice of screening and monitoring content posted by users "
    "on social media sites to determine if the content should be published or not, based on specific rules "
    "and guidelines.\n\nI will ask you to classify a tweet as describing content moderation as a problem, as "
    "a solution, or neither:\n\nA: Tweet describes content moderation as a PROBLEM if they emphasize negative "
    "effects of it, such as restrictions to free speech, censorship, or the biases that can emerge from "
    "decisions regarding what users are allowed to post.\n\nB: Tweet describes content moderation as a "
    "SOLUTION if they emphasize positive effects of it, such as protecting users from harmful content such as "
    "hate speech, misinformation, illegal adult content, or spam. \n\nC: Tweet describes content moderation "
    "as NEUTRAL if they do not emphasize negative or positive effects of content moderation. For example if "
    "they simply report on the content moderation activity of social media platforms without linking them "
    "to potential advantages or disadvantages for users or stakeholders."
    "\n\nNow, is the following tweet describing content moderation as a PROBLEM, as a SOLUTION, or NEUTRAL?"
    "\n\n{text}"
)
# Frames I, Gilardi et al. (2023) Appendix E instructions (frame_problem_solution_prompt) followed by
# the loader's user message (tweet_instruction_prompt).
_FRAME_PAPER = (
    "Content moderation can be seen from two different perspectives:\n• Content moderation can be seen as a "
    "PROBLEM; for example, as a restriction of free speech\n• Content moderation can be seen as a SOLUTION; "
    "for example, as a protection from harmful speech\nFor each tweet in the sample, follow these "
    "instructions:\n1. Carefully read the text of the tweet, paying close attention to details.\n2. Classify "
    "the tweet as describing content moderation as a problem, as a solution, or neither.\nTweets should be "
    "classified as describing content moderation as a PROBLEM if they emphasize negative effects of content "
    "moderation, such as restrictions to free speech, or the biases that can emerge from decisions regarding "
    "what users are allowed to post.\nTweets should be classified as describing content moderation as a "
    "SOLUTION if they emphasize positive effects of content moderation, such as protecting users from various "
    "kinds of harmful content, including hate speech, misinformation, illegal adult content, or spam.\nTweets "
    "should be classified as describing content moderation as NEUTRAL if they do not emphasize possible "
    "negative or positive effects of content moderation, for example if they simply report on the content "
    "moderation activity of social media platforms without linking them to potential advantages or "
    "disadvantages for users or stakeholders.\n\nHere's the tweet I picked, please label it as 'Problem', "
    "'Solution', or 'Neutral' by answering with one word:\n{text}"
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


# The first "[original]" prompt of some studies whose files are not mirrored (quoted from each
# study's load_data_and_prompts.py; their other prompts and paraphrases are not transcribed).
_HUMOR_ORIG = ("Joke: {text}\n\nConstraint: Is the above joke humorous to most of the people? You must pick "
               "between \"True\" or \"False\" You cannot use any other words except for \"True\" or \"False\".")
_TOPIC_ORIG = "Does the following text relate to the economy? (True/False)\n\ntext: {text}\n\nlabel:"
_POLITE_ORIG = ("Is the following text polite? Output either A or B. Output a letter only.\nA) Polite\nB) Impolite\n"
                "Text: {text}\nAnswer:")
_MISINFO_ORIG = ("Question: Does the following contain real or fake news (or information)? Answer in one word with "
                 "either Real or Fake. {text}\nAnswer: ")


def _first_original(study: str) -> str:
    return (f"The first '[original]' prompt of data/{study}/load_data_and_prompts.py, quoted; the authors' "
            "other prompts and paraphrases for this task are not transcribed here (fewer than 3 listed).")

_A = "authors"
_H = "hackrisk"  # written for hackrisk (not the authors'), named as such


def _hk(*templates: str) -> tuple[tuple[str, str, str], ...]:
    return tuple((f"hackrisk_{i}", t, _H) for i, t in enumerate(templates))


_TOPIC_HK = _hk(
    "Which topic is this tweet about: section 230, trump ban, twitter support, platform policies, complaint "
    "or other? Answer with the topic only.\n\nTweet: {text}\nTopic:",
    "Tweet: {text}\nTopic of the tweet (section 230 / trump ban / twitter support / platform policies / "
    "complaint / other):",
    "Classify the topic of the following tweet about content moderation. Options: section 230, trump ban, "
    "twitter support, platform policies, complaint, other.\n{text}\nAnswer:",
)
_STANCE_HK = _hk(
    "Section 230 protects online platforms from liability for what their users post. Is the following tweet "
    "in favor of, against, or neutral about repealing Section 230? Answer 'in favor of', 'against' or "
    "'neutral'.\n\nTweet: {text}\nStance:",
    "Tweet: {text}\nStance of the tweet towards repealing Section 230 (in favor of / against / neutral):",
    "What stance does this tweet take on repealing Section 230 of the Communications Decency Act? Reply with "
    "in favor of, against or neutral.\n{text}\nAnswer:",
)
_FRAMES2_HK = _hk(
    "Which policy frame does this tweet about content moderation use? Options: economic, capacity, morality, "
    "fairness, constitutionality, policy, law, security, health, quality, cultural, public, political, "
    "external, other. Answer with one option.\n\nTweet: {text}\nFrame:",
    "Tweet: {text}\nPolicy frame (economic, capacity, morality, fairness, constitutionality, policy, law, "
    "security, health, quality, cultural, public, political, external, other):",
    "Label the main policy frame of the following text with one word from: economic, capacity, morality, "
    "fairness, constitutionality, policy, law, security, health, quality, cultural, public, political, "
    "external, other.\n{text}\nLabel:",
)
_NEWS_FRAME_HK = _hk(
    "Does the following news article present content moderation as a problem (e.g. censorship), as a "
    "solution (e.g. protection from harmful content), or neither (neutral)? Answer problem, solution or "
    "neutral.\n\nArticle: {text}\nAnswer:",
)

_GILARDI_PROMPT_NOTE = (
    "The authors' prompts for this task are in " + _GILARDI_SRC + " (Gilardi et al.'s 2023 code and paper "
    "wordings, their 2024 zero-shot / few-shot / chain-of-thought forms, and paraphrases); they are not "
    "transcribed here. The prompts listed are written for hackrisk and named as such."
)


def _gilardi(name, classes, covariates, chars, columns, rows, description, prompts, note, **kw):
    return dict(name=name, study="gilardi_et_al_pnas", citation=_GILARDI, description=description,
                classes=classes, classes_complete=True, covariates=covariates, hypothesis_covariates=(),
                chars=chars, columns=columns, rows=rows, prompts=prompts, prompt_note=note, **kw)


_REL_PROMPTS = (("authors_2024_zero", _REL_2024_ZERO, _A), ("authors_2024_zero_published", _REL_2024_ZERO_B, _A))
_REL_NOTE = ("The authors' relevance prompts quoted from " + _GILARDI_SRC + " (2024 zero-shot form and its "
             "'published' wording); their other forms (2023 code/paper wordings, few-shot, chain-of-thought, "
             "paraphrases) are not transcribed here. Fewer than 3 are listed; no paraphrases made.")
_FRAME_PROMPTS = (("authors_2024_zero", _FRAME_2024_ZERO, _A), ("authors_paper_appendix_e", _FRAME_PAPER, _A))
_FRAME_NOTE = ("The authors' Frames I prompts quoted from " + _GILARDI_SRC + " (2024 zero-shot form; Gilardi "
               "et al. 2023 Appendix E instructions with the loader's one-word user message); the two messages "
               "of each are joined by a blank line. Other forms are not transcribed. Fewer than 3 listed.")

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
             "Tweets on content moderation (2020-2021): policy frame (Frames II)", _FRAMES2_HK, _GILARDI_PROMPT_NOTE),
    _gilardi("framesII_tweets17", ("economic", "capacity", "morality", "fairness", "constitutionality", "policy",
                                   "law", "security", "health", "quality", "cultural", "public", "political",
                                   "external", "other"),
             ("created_at", "screen_name"), 229407,
             ("id", "ground_truth", "text", "status_id", "user_id", "screen_name", "created_at", "relevant_paula",
              "relevant_fabio", "frame_paula", "frame_fabio", "relevance_agreement_check", "relevant_ra",
              "mturk_annotation", "WorkerId"), 569,
             "Tweets by US Congress members (2017-2018): policy frame (Frames II)", _FRAMES2_HK,
             _GILARDI_PROMPT_NOTE),
    _gilardi("framesI_news", ("problem", "solution", "neutral"), ("pubdatetime", "publication_name"), 506552,
             ("id", "ground_truth", "text", "pubdatetime", "publication_name", "title_h1", "relevant_paula",
              "relevant_fabio", "problem_frame_paula", "problem_frame_fabio", "solution_frame_paula",
              "solution_frame_fabio", "relevance_agreement_check", "problem_solution_agreement_check",
              "problem_solution_ra", "ground_truth_fabio", "ground_truth_paula", "mturk_annotation", "WorkerId"),
             326, "News articles on content moderation (2020-2021, long texts): problem / solution / neutral",
             _NEWS_FRAME_HK + _FRAME_PROMPTS, _GILARDI_PROMPT_NOTE + " The two 'authors_' prompts are the "
             "tweet wordings of the Frames I tweet task, quoted (the news task's own wording is not transcribed).",
             long_texts=True),
    _gilardi("framesI_tweets", ("problem", "solution", "neutral"), ("Date",), 223214,
             ("id", "ground_truth", "text", "status_id", "Date", "relevant_paula", "relevant_fabio",
              "problem_frame_paula", "problem_frame_fabio", "solution_frame_paula", "solution_frame_fabio",
              "ground_truth_fabio", "ground_truth_paula", "mturk_annotation", "WorkerId"), 593,
             "Tweets on content moderation (2020-2021): problem / solution / neutral (Frames I)",
             _FRAME_PROMPTS, _FRAME_NOTE),
    _gilardi("framesI_tweets23", ("problem", "solution", "neutral"), ("created_at", "screen_name"), 58724,
             _TWEET23_COLS + ("ground_truth_fabio", "ground_truth_paula", "mturk_annotation", "WorkerId"), 150,
             "Relevant tweets (Jan 2023): problem / solution / neutral (Frames I)", _FRAME_PROMPTS, _FRAME_NOTE),
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
    dict(prompts=(("authors_original", _HUMOR_ORIG, _A),), prompt_note=_first_original("humor"), name="humor", study="humor", citation="Weller & Seppi (2019), Humor detection [weller-seppi-2019-humor]",
         description="r/jokes posts: funny to many people (more than 200 upvotes)?",
         classes=("False",), classes_complete=False, covariates=("date",), hypothesis_covariates=("date",),
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
    dict(prompts=(("authors_original", _MISINFO_ORIG, _A),), prompt_note=_first_original("misinfo"), name="misinfo", study="misinfo", citation="Gabriel et al. (2022), Misinfo Reaction Frames "
         "[gabriel-etal-2022-misinfo]",
         description="Headlines of fact-checked news (Covid-19, cancer, climate): misinformation or not",
         classes=("Misinformation",), classes_complete=False, covariates=("date", "source", "type"),
         hypothesis_covariates=None, chars=1390859, columns=("id", "text", "ground_truth", "date", "source", "type"),
         rows=None),
    dict(prompts=(("authors_original", _POLITE_ORIG, _A),), prompt_note=_first_original("politeness"), name="politeness_stack", study="politeness", citation="Danescu-Niculescu-Mizil et al. (2013), "
         "Stanford politeness corpus [danescu-niculescu-mizil-etal-2013-computational]",
         description="StackExchange requests: polite or impolite (neutral omitted)",
         classes=("polite", "impolite"), classes_complete=True, covariates=("Community", "Reputation"),
         hypothesis_covariates=None, chars=2275345,
         columns=("id", "ground_truth", "text", "index", "Community", "Id", "Timestamp", "UserId", "Reputation",
                  "Upvotes", "Downvotes", "meta.Normalized Score", "meta.Annotations") + _FEATURES + _POLITE_SCORES,
         rows=None),
    dict(prompts=(("authors_original", _POLITE_ORIG, _A),), prompt_note=_first_original("politeness"), name="politeness_wiki", study="politeness", citation="Danescu-Niculescu-Mizil et al. (2013), "
         "Stanford politeness corpus [danescu-niculescu-mizil-etal-2013-computational]",
         description="Wikipedia editor requests: polite or impolite (neutral omitted)",
         classes=("impolite", "polite"), classes_complete=True, covariates=("is_admin",),
         hypothesis_covariates=None, chars=1157418,
         columns=("id", "ground_truth", "text", "Community", "Id", "Timestamp", "User", "is_admin", "Adminship date",
                  "meta.Normalized Score") + _FEATURES + ("Politeness",) + _POLITE_SCORES, rows=None),
    _gilardi("relevance_news", ("relevant", "irrelevant"), ("pubdatetime", "publication_name"), 2408417,
             ("id", "ground_truth", "text", "pubdatetime", "publication_name", "title_h1", "relevant_paula",
              "relevant_fabio", "relevance_agreement_check", "relevant_ra", "mturk_annotation", "WorkerId"), None,
             "News articles (2020-2021): about content moderation?", _REL_PROMPTS, _REL_NOTE, long_texts=True),
    _gilardi("relevance_tweets", ("relevant", "irrelevant"), ("Date",), 700648,
             ("id", "ground_truth", "text", "status_id", "Date", "relevant_paula", "relevant_fabio",
              "mturk_annotation", "WorkerId"), None,
             "Tweets (2020-2021): about content moderation?", _REL_PROMPTS, _REL_NOTE),
    _gilardi("relevance_tweets17", ("relevant", "irrelevant"), ("created_at", "screen_name"), 727446,
             ("id", "ground_truth", "text", "status_id", "user_id", "screen_name", "created_at", "relevant_paula",
              "relevant_fabio", "frame_paula", "frame_fabio", "relevance_agreement_check", "relevant_ra",
              "mturk_annotation", "WorkerId"), None,
             "Tweets by US Congress members (2017-2018): political content?", (), _GILARDI_PROMPT_NOTE),
    _gilardi("relevance_tweets23", ("irrelevant", "relevant"), ("created_at", "user_id", "screen_name"), 180014,
             _TWEET23_COLS + ("mturk_annotation", "WorkerId"), 411,
             "Tweets (Jan 2023): about content moderation?", _REL_PROMPTS,
             _REL_NOTE + " Classes in hackrisk's registered order (irrelevant, relevant; the authors list "
             "relevant first), kept for compatibility with existing cubes."),
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
         answers={"authors_zero_shot_short": {"A": "agree", "B": "neutral", "C": "disagree"},
                  "authors_zero_shot_detailed": {"A": "agree", "B": "disagree", "C": "neutral"}},
         id_gaps=True),
    _gilardi("stance_tweets", ("in favor of", "against", "neutral"), ("created_at", "user_id"), 252584,
             ("id", "ground_truth", "text", "user_id", "status_id", "created_at", "paula_stance_pro",
              "fabio_stance_pro", "paula_stance_neutral", "fabio_stance_neutral", "paula_stance_contra",
              "fabio_stance_contra", "stance_check", "stance pro", "stance neutral", "stance negative",
              "sum_of_stances_fabio", "sum_of_stances_paula", "ground_truth_fabio", "ground_truth_paula",
              "mturk_annotation", "WorkerId"), 557,
             "Tweets on content moderation: stance on repealing Section 230", _STANCE_HK, _GILARDI_PROMPT_NOTE),
    dict(name="tone", study="tone", citation="Carlson & Montgomery (2017), pairwise comparisons "
         "[carlson2017pairwise]; via Ornstein, Blasingame & Truscott (2025)",
         description="US Senate campaign ads (2008): positive, neutral or negative tone",
         classes=("positive", "neutral", "negative"), classes_complete=True, covariates=(), hypothesis_covariates=(),
         chars=552214, columns=("id", "text", "ground_truth"), rows=None),
    dict(prompts=(("authors_original", _TOPIC_ORIG, _A),), prompt_note=_first_original("topic"), name="topic", study="topic", citation="Egami et al. (2023), Using imperfect surrogates [egami2023using]",
         description="US congressional bills: about the economy (True) or not (False)",
         classes=("False", "True"), classes_complete=True, covariates=("senate", "democrat", "ideology"),
         hypothesis_covariates=("senate", "democrat", "ideology"), chars=2100148,
         columns=("id", "text", "label", "senate", "democrat", "ideology", "ground_truth"), rows=None),
    _gilardi("topic_tweets", ("section 230", "trump ban", "twitter support", "platform policies", "complaint",
                              "other"), ("Date",), 272120, _TOPIC_COLS, 611,
             "Tweets on content moderation: topic (Section 230, Trump ban, ...)", _TOPIC_HK, _GILARDI_PROMPT_NOTE),
]

#: Ids of these files start with another prefix than the file name (``<prefix>_<n>``).
ID_PREFIX = {"framesII_tweets17": "frames_tweets17", "framesI_news": "frames_news",
             "framesI_tweets": "frames_tweets", "framesI_tweets23": "frames_tweets23",
             "issue_survey": "issue_survey"}
