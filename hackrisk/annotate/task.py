"""Task specification, prompt rendering, the response parser and prompt paraphrases.

A :class:`TaskSpec` holds the label set, the answer keys the model is asked to give (the label
names themselves, letters ``A, B, ...``, numbers ``1, 2, ...`` or any list), and one or more prompt
templates. A template is either a string (the user turn) or a list of chat messages
``{"role": ..., "content": ...}`` (system / user / assistant turns, e.g. few-shot examples).
Placeholders, filled with :meth:`str.format`:

``{text}`` (required)
    The annotated text.
``{labels}``
    The label names joined by ``", "`` (``"a, b or c"`` style is left to the template).
``{keys}``
    The answer keys joined by ``", "``.
``{options}``
    One line per class, ``"<key>. <name>"`` (or just ``"<name>"`` when the keys are the names).
``{<column>}``
    Any covariate column of the items table.

Literal braces in a template are written ``{{`` and ``}}``.
"""

from __future__ import annotations

import json
import logging
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["TaskSpec", "parse_response", "ParsedReply", "parse_confidence", "ParsedConfidence",
           "CONFIDENCE_QUESTION", "PAPER_CONFIDENCE_TEMPLATE", "confidence_messages",
           "paper_confidence_messages", "paraphrase", "OUTSIDE"]

log = logging.getLogger(__name__)

OUTSIDE = -2
_STANDARD = frozenset({"text", "labels", "keys", "options"})

Message = Mapping[str, str]
Template = str | Sequence[Message]


def _fields(template: str) -> set[str]:
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as err:
        raise ValueError(f"prompt template {template[:60]!r} is not a valid format string ({err}). "
                         "Fix: write literal braces as {{ and }}.") from err
    odd = sorted(f for f in fields if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", f))
    if odd:
        raise ValueError(f"prompt template {template[:60]!r}: {{{odd[0]}}} is not a placeholder (literal braces, "
                         "e.g. a JSON example?). Fix: write literal braces as {{ and }}.")
    return fields


def _template_messages(template: Template) -> list[dict[str, str]]:
    if isinstance(template, str):
        return [{"role": "user", "content": template}]
    msgs = []
    for m in template:
        if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
            raise ValueError(f"prompt message {m!r} must be a mapping with 'role' and 'content'. "
                             "Fix: use {'role': 'user', 'content': '...{text}...'}.")
        msgs.append({"role": str(m["role"]), "content": str(m["content"])})
    return msgs


@dataclass(frozen=True)
class TaskSpec:
    """What to annotate: label set, answer keys and prompt templates.

    Parameters
    ----------
    name
        Task name (the cube's ``task`` coordinate).
    labels
        Class names; their order defines the codes 0..K-1.
    prompts
        Templates (see the module docstring) as a list (ids ``p0, p1, ...``) or ``{id: template}``.
    keys
        ``"names"`` (answer with the label name), ``"letters"`` (``A, B, ...``), ``"numbers"``
        (``1, 2, ...``) or an explicit list of K answer strings.
    system
        Optional system message put before string templates.
    max_new_tokens
        Reply length in ``generate`` mode (the paper used about 20 tokens).
    """

    name: str
    labels: Sequence[str]
    prompts: Sequence[Template] | Mapping[str, Template]
    keys: str | Sequence[str] = "names"
    system: str | None = None
    max_new_tokens: int = 20
    _prompts: dict[str, list[dict[str, str]]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        labels = [str(x) for x in self.labels]
        if len(labels) < 2:
            raise ValueError(f"TaskSpec {self.name!r}: labels {labels} need at least two classes. Fix: add classes.")
        low = [x.strip().lower() for x in labels]
        if len(set(low)) != len(low) or "" in low:
            raise ValueError(f"TaskSpec {self.name!r}: label names {labels} must be non-empty and distinct "
                             "ignoring case and surrounding spaces. Fix: rename them.")
        object.__setattr__(self, "labels", tuple(labels))
        keys = self.answer_keys
        lowk = [k.lower() for k in keys]
        if len(set(lowk)) != len(lowk) or "" in lowk:
            raise ValueError(f"TaskSpec {self.name!r}: answer keys {keys} must be distinct ignoring case. "
                             "Fix: pass other keys.")
        raw = self.prompts
        items = raw.items() if isinstance(raw, Mapping) else ((f"p{i}", t) for i, t in enumerate(raw))
        prompts: dict[str, list[dict[str, str]]] = {}
        for pid, tpl in items:
            msgs = _template_messages(tpl)
            if isinstance(tpl, str) and self.system:
                msgs = [{"role": "system", "content": self.system}, *msgs]
            n_text = sum(("text" in _fields(m["content"])) for m in msgs)
            if n_text == 0:
                raise ValueError(f"TaskSpec {self.name!r}, prompt {pid!r}: the template has no {{text}} "
                                 "placeholder. Fix: put {text} where the annotated text goes.")
            prompts[str(pid)] = msgs
        if not prompts:
            raise ValueError(f"TaskSpec {self.name!r}: no prompt templates. Fix: pass prompts=[...].")
        object.__setattr__(self, "_prompts", prompts)

    # ------------------------------------------------------------------------------------------
    @property
    def answer_keys(self) -> tuple[str, ...]:
        """The string the model should answer for each class."""
        k = len(self.labels)
        if isinstance(self.keys, str):
            if self.keys == "names":
                return tuple(self.labels)
            if self.keys == "letters":
                return tuple(string.ascii_uppercase[:k])
            if self.keys == "numbers":
                return tuple(str(i + 1) for i in range(k))
            raise ValueError(f"TaskSpec {self.name!r}: keys={self.keys!r} unknown. Fix: use 'names', "
                             "'letters', 'numbers' or a list of strings.")
        keys = tuple(str(x).strip() for x in self.keys)
        if len(keys) != k:
            raise ValueError(f"TaskSpec {self.name!r}: {len(keys)} keys for {k} labels. Fix: one key per label.")
        return keys

    @property
    def prompt_ids(self) -> list[str]:
        """Prompt ids in order."""
        return list(self._prompts)

    def messages(self, prompt: str) -> list[dict[str, str]]:
        """The chat messages (with placeholders) of prompt ``prompt``."""
        if prompt not in self._prompts:
            raise ValueError(f"TaskSpec {self.name!r} has no prompt {prompt!r}; it has {self.prompt_ids}.")
        return [dict(m) for m in self._prompts[prompt]]

    def template_string(self, prompt: str) -> str:
        """A single-string form of the template (stored as the cube's ``prompt_template``)."""
        msgs = self._prompts[prompt]
        if len(msgs) == 1 and msgs[0]["role"] == "user":
            return msgs[0]["content"]
        return json.dumps(msgs, ensure_ascii=False)

    def fields(self) -> set[str]:
        """Covariate placeholders used by any template."""
        out: set[str] = set()
        for msgs in self._prompts.values():
            for m in msgs:
                out |= _fields(m["content"])
        return out - _STANDARD

    def render(self, prompt: str, text: str, covariates: Mapping[str, Any] | None = None) -> list[dict[str, str]]:
        """Messages of ``prompt`` with ``text`` (and covariates) filled in."""
        keys = self.answer_keys
        if keys == tuple(self.labels):
            options = "\n".join(self.labels)
        else:
            options = "\n".join(f"{k}. {n}" for k, n in zip(keys, self.labels, strict=True))
        values = {"labels": ", ".join(self.labels), "keys": ", ".join(keys), "options": options,
                  **{str(k): v for k, v in (covariates or {}).items()}, "text": text}
        out = []
        for m in self.messages(prompt):
            missing = _fields(m["content"]) - set(values)
            if missing:
                raise ValueError(f"TaskSpec {self.name!r}, prompt {prompt!r}: placeholder(s) {sorted(missing)} "
                                 "have no value. Fix: add those columns to the items table.")
            out.append({"role": m["role"], "content": m["content"].format_map(values)})
        return out


# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ParsedReply:
    """Result of :func:`parse_response`: class code (-2 outside the set), the rule that decided."""

    code: int
    rule: str


_STRIP = " \t\r\n\"'`*_.:,;!?()[]{}<>-#"


def _word_pattern(word: str) -> re.Pattern[str]:
    return re.compile(r"(?<![\w])" + re.escape(word.lower()) + r"(?![\w])")


def parse_response(reply: str, spec: TaskSpec, *, conventions: str = "hackrisk") -> ParsedReply:
    """Map a free-text reply to a class code.

    Rules of ``conventions="hackrisk"`` (the default), in order (case-insensitive):

    1. ``name``: exactly one label name occurs as a whole word;
    2. ``start``: the reply starts with a label name (after quotes, markdown and punctuation);
    3. ``key``: the reply starts with an option key (``"B"``, ``"B)"``, ``"2."``);
    4. ``token``: exactly one option key occurs as a standalone token;
    5. else ``outside``: code ``-2``.

    ``conventions="paper"`` follows the authors' output mapping instead (:func:`_parse_paper`,
    ``docs/conventions.md``).

    Parameters
    ----------
    reply
        The raw model reply (kept by the caller; this function only reads it).
    spec
        The task.
    conventions
        ``"hackrisk"`` or ``"paper"``.
    """
    if conventions == "paper":
        return _parse_paper(reply, spec)
    if conventions != "hackrisk":
        raise ValueError(f"parse_response: conventions={conventions!r} unknown. Fix: use 'hackrisk' or 'paper'.")
    text = str(reply).lower()
    names = [n.lower() for n in spec.labels]
    found = {k for k, n in enumerate(names) if _word_pattern(n).search(text)}
    if len(found) == 1:
        return ParsedReply(found.pop(), "name")
    head = text.lstrip(_STRIP)
    # longest name first, so that "not relevant" wins over "not" when both are names
    for k in sorted(range(len(names)), key=lambda i: -len(names[i])):
        if head.startswith(names[k]) and not head[len(names[k]):len(names[k]) + 1].isalnum():
            return ParsedReply(k, "start")
    keys = [k.lower() for k in spec.answer_keys]
    if keys != names:
        head_orig = str(reply).lstrip(_STRIP)
        for k in sorted(range(len(keys)), key=lambda i: -len(keys[i])):
            # single-letter keys must match in their own case ("a thing" is not option "A")
            h, key = (head_orig, spec.answer_keys[k]) if len(keys[k]) == 1 else (head, keys[k])
            if h.startswith(key) and not h[len(key):len(key) + 1].isalnum():
                return ParsedReply(k, "key")
        tokens = set(re.findall(r"\w+", text))
        orig = set(re.findall(r"\w+", str(reply)))
        # single letters like "a" / "i" are common words: they count only in their own case
        hits = {k for k, key in enumerate(keys)
                if (spec.answer_keys[k] in orig if len(key) == 1 else key in tokens)}
        if len(hits) == 1:
            return ParsedReply(hits.pop(), "token")
    return ParsedReply(OUTSIDE, "outside")


def _paper_order(keys: list[str]) -> list[str]:
    """Keys ordered so that a key contained in another comes after it (the authors' order).

    Repeatedly: the keys not contained in any other remaining key (or, if none, the first
    longest one) go first, in their order. Number keys ``"10"``, ``"40"`` or ``"100"`` present:
    the order is kept as it is.
    """
    if not keys:
        return []
    if any(k in keys for k in ("100", "40", "10")):
        return list(keys)
    first = [k for k in keys if not any(k != other and k in other for other in keys)]
    if not first:
        longest = max(len(k) for k in keys)
        first = [next(k for k in keys if len(k) == longest)]
    return first + _paper_order([k for k in keys if k not in first])


def _parse_paper(reply: str, spec: TaskSpec) -> ParsedReply:
    """The authors' output mapping (``default_output_mapping`` of their data loaders), re-stated.

    The options are ``{answer key (lower-cased): label name (as written)}``; the reply is
    lower-cased and stripped. In order:

    1. ``name``: label names found at word boundaries (``\b``), one entry per option, so a name
       reached through two keys counts twice; exactly one entry decides. The *name as written* is
       searched in the *lower-cased* reply, so a capitalised name never matches here;
    2. ``start``: the first option (in :func:`_paper_order`) whose name the reply starts with;
    3. ``letter``: the reply's first character is a one-character key that is not a digit (the
       next character is not checked: ``"because"`` is option ``B``);
    4. ``key``: only when rule 1 found nothing: keys found at word boundaries; exactly one decides;
    5. else ``outside`` (the authors' ``"na"``).
    """
    mapping: dict[str, str] = {}
    for key, name in zip(spec.answer_keys, spec.labels, strict=True):
        mapping[key.lower().strip()] = name
    order = _paper_order(list(mapping))
    code = {name: i for i, name in enumerate(spec.labels)}
    text = str(reply).lower().strip()

    def at_word(word: str) -> bool:
        return re.search(r"\b" + re.escape(word) + r"\b", text) is not None

    found = [mapping[k] for k in order if at_word(mapping[k])]
    if len(found) == 1:
        return ParsedReply(code[found[0]], "name")
    for k in order:
        if text.startswith(mapping[k]):
            return ParsedReply(code[mapping[k]], "start")
    if text and text[0] in mapping and not text[0].isdigit():
        return ParsedReply(code[mapping[text[0]]], "letter")
    if not found:
        hits = [mapping[k] for k in order if at_word(k)]
        if len(hits) == 1:
            return ParsedReply(code[hits[0]], "key")
    return ParsedReply(OUTSIDE, "outside")


# ------------------------------------------------------------------------------------------------
#: the default follow-up question of verbalized confidence (``annotate(..., confidence=True)``)
CONFIDENCE_QUESTION = (
    "How confident are you that your answer is correct? Reply with one whole number from 0 to 100 "
    "(0 = a pure guess, 100 = certain) and nothing else."
)


#: the authors' separate confidence prompt (Baumann et al. 2025, repository joebaumann/llmhacking,
#: ``get_prompt_for_verbalized_confidence_elicitation``: the generic wording several of their tasks
#: use, with the sentence their runner substitutes; ``{label}`` is the label the model gave)
PAPER_CONFIDENCE_TEMPLATE = (
    "How likely is it that the following text is {label}?\n\n"
    "Output only a single number between 0 and 1, without any context or explanation.\n\n"
    "Text: {text}\n\nProbability:"
)


@dataclass(frozen=True)
class ParsedConfidence:
    """Result of :func:`parse_confidence`: ``value`` in [0, 1] or ``None``, and the rule that decided."""

    value: float | None
    rule: str


_NUMBER = re.compile(r"(-?\d+(?:\.\d+)?)\s*(%?)")
_UNIT_NUMBER = re.compile(r"(-?(?:\d+(?:\.\d+)?|\.\d+))\s*(%?)")  # 0-1 scale: ".85" is a number too
_OUT_OF_100 = re.compile(r"\s*(?:/|out of)\s*100(?![\d.])", re.IGNORECASE)
_MIXED = re.compile(r"(?<![\w-])(?=[\w-]*[A-Za-z])(?=[\w-]*\d)[\w-]+")  # GPT-4, 3rd, v2: not numbers


def parse_confidence(reply: str | None, *, scale: str = "percent") -> ParsedConfidence:
    """Read a verbalized confidence from a reply; malformed answers give ``None``.

    With ``scale="percent"`` (the default, :data:`CONFIDENCE_QUESTION`) the reply must hold
    exactly one number on the 0–100 scale, optionally followed by ``%`` or written ``N/100`` /
    ``N out of 100``; with ``scale="unit"`` (the authors' question,
    :data:`PAPER_CONFIDENCE_TEMPLATE`) exactly one number from 0 to 1 (``0.85``, ``.85``, ``1``),
    with no ``%``. Words around the number are allowed (``"Confidence: 85%"``,
    ``"Probability: 0.9"``). Nothing is guessed: a reply is rejected (``value`` None) when

    * ``none``: it holds no number (or is ``None``: the request failed);
    * ``several``: it holds more than one number (``"3 out of 5"``, ``"80-90"``, ``"85,5"``,
      ``"0.8/1"``);
    * ``range``: the number is negative or above the scale's top (100, or 1: ``"85"`` is not
      read as 0.85 on the unit scale);
    * ``percent``: (unit scale) the number carries ``%``;
    * words mixing letters and digits (``GPT-4``, ``3rd``) are not numbers;
    * ``ambiguous``: (percent scale) a decimal strictly between 0 and 1 without ``%`` (``"0.85"``
      may be a probability or 0.85 %).

    Parameters
    ----------
    reply
        The raw reply to the confidence question.
    scale
        ``"percent"`` (0–100) or ``"unit"`` (0–1).

    Returns
    -------
    ParsedConfidence
        ``value`` in [0, 1] (the number / 100 on the percent scale) and ``rule="number"``, or
        ``value=None`` and the reason.
    """
    if scale not in ("percent", "unit"):
        raise ValueError(f"parse_confidence: scale={scale!r} unknown. Fix: use 'percent' (0-100) or 'unit' (0-1).")
    if reply is None:
        return ParsedConfidence(None, "none")
    unit = scale == "unit"
    text = _MIXED.sub(" ", str(reply) if unit else _OUT_OF_100.sub("", str(reply)))
    found = [(m.group(1), m.group(2)) for m in (_UNIT_NUMBER if unit else _NUMBER).finditer(text)]
    if not found:
        return ParsedConfidence(None, "none")
    if len(found) > 1:
        return ParsedConfidence(None, "several")
    number, percent = found[0]
    value = float(number)
    if not 0.0 <= value <= (1.0 if unit else 100.0):
        return ParsedConfidence(None, "range")
    if unit:
        return ParsedConfidence(None, "percent") if percent else ParsedConfidence(value, "number")
    if 0.0 < value < 1.0 and not percent:
        return ParsedConfidence(None, "ambiguous")
    return ParsedConfidence(value / 100.0, "number")


def confidence_messages(messages: Sequence[Mapping[str, str]], reply: str,
                        question: str = CONFIDENCE_QUESTION) -> list[dict[str, str]]:
    """The annotation chat, the model's reply as the assistant turn, then the confidence question."""
    return [*(dict(m) for m in messages), {"role": "assistant", "content": str(reply)},
            {"role": "user", "content": str(question)}]


def paper_confidence_messages(text: str, label: str,
                              template: str = PAPER_CONFIDENCE_TEMPLATE) -> list[dict[str, str]]:
    """The authors' confidence request: one fresh user turn holding the text and the label given.

    Parameters
    ----------
    text
        The annotated text.
    label
        The class name the model's reply was mapped to.
    template
        A format string with ``{label}`` and ``{text}`` (default
        :data:`PAPER_CONFIDENCE_TEMPLATE`; the authors word it per task, e.g. "How likely is it
        that the following tweet is {label} to the topic of content moderation?").
    """
    return [{"role": "user", "content": template.format(label=label, text=text)}]


def check_confidence_template(template: str) -> str:
    """Validate a paper-style confidence template (``{label}`` and ``{text}``, nothing else)."""
    if not isinstance(template, str) or _fields(template) != {"label", "text"}:
        raise ValueError(f"confidence_template={template!r:.80}: needs exactly the placeholders {{label}} and "
                         "{text}. Fix: e.g. hackrisk.annotate.task.PAPER_CONFIDENCE_TEMPLATE.")
    return template


# ------------------------------------------------------------------------------------------------
_PARA_INSTRUCTION = (
    "Rewrite the following instruction in different words. Keep its meaning. Keep every "
    "placeholder in curly braces, such as {{text}}, exactly as written, and keep the answer "
    "options {keys} unchanged. Reply with the rewritten instruction only.\n\nInstruction:\n{template}"
)


def paraphrase(template: str, spec: TaskSpec, backend: Any, *, n: int = 5, temperature: float = 1.0,
               max_tries: int = 4, max_new_tokens: int = 200, rng: Any = 0) -> list[str]:
    """Ask a backend for ``n`` paraphrases of a prompt template, keeping only valid ones.

    A paraphrase is rejected when it loses a placeholder of ``template`` (``{text}`` and any
    other), adds an unknown one, is not a valid format string, loses an answer key that the
    template mentions, or duplicates the template or an earlier paraphrase.

    Parameters
    ----------
    template
        The template to paraphrase (a string with ``{text}``).
    spec
        The task (its answer keys must survive).
    backend
        Any backend with ``generate(messages_list, *, temperature, max_new_tokens, seed)``.
    n
        Number of paraphrases wanted.
    max_tries
        Rounds of ``n`` requests before giving up (returns fewer than ``n`` then, with a warning).
    rng
        Seed for the sampling.

    Returns
    -------
    list of str
        Up to ``n`` accepted paraphrases.
    """
    need = _fields(template)
    if "text" not in need:
        raise ValueError(f"paraphrase: template {template[:60]!r} has no {{text}}. Fix: add it.")
    low_t = template.lower()
    keys = [k for k in spec.answer_keys if _word_pattern(k).search(low_t)]
    names = [x for x in spec.labels if _word_pattern(x).search(low_t)]
    prompt = _PARA_INSTRUCTION.format(keys=", ".join(spec.answer_keys), template=template)
    seeds = np.random.default_rng(rng).integers(0, 2**31 - 1, size=max_tries)
    out: list[str] = []
    seen = {template.strip()}
    for t in range(max_tries):
        replies = backend.generate([[{"role": "user", "content": prompt}]] * (n - len(out)),
                                   temperature=temperature, max_new_tokens=max_new_tokens, seed=int(seeds[t]))
        for r in replies:
            cand = str(r).strip()
            try:
                got = _fields(cand)
            except ValueError:
                continue
            low = cand.lower()
            if got != need or cand in seen:
                continue
            if any(not _word_pattern(k).search(low) for k in keys + names):
                continue
            seen.add(cand)
            out.append(cand)
            if len(out) == n:
                return out
    log.warning("paraphrase: only %d of %d paraphrases passed the checks", len(out), n)
    return out
