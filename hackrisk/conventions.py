"""The paper's conventions (Baumann et al. 2025) where they differ from hackrisk's own.

hackrisk's functions that follow the paper take ``conventions="hackrisk"`` (the default) or
``conventions="paper"``. Under ``"paper"`` they reproduce the decisions of the authors' public
code (repository ``joebaumann/llmhacking``, commit ``3f66288``) item by item; every difference is
listed in ``docs/conventions.md``. This module holds the pieces only the paper preset needs:

* :func:`paper_random_split` — a fresh ``numpy.random.default_rng(seed)`` handed to
  ``pandas.DataFrame.sample(frac=...)`` over the items in file order; group A is the sample
  (50 % with seed 2, 20 % and 40 % with seed 1); :func:`paper_random_order` gives the sample in
  the order pandas returns it (the order of the authors' group-1 table);
* :func:`paper_human_draw` — the human-labelled subsample of mitigation's human-only and
  substitution methods: per draw ``d`` a ``numpy.random.RandomState(42 + d)``, group sizes in
  proportion to the groups (at least 2 each), ``RandomState.choice`` of positions within each
  group's table, group 1 first;
* :func:`paper_length_split` — length in characters, group A = length at or below the median;
* :func:`paper_tokenize` / :func:`paper_keywords` — lower-cased word tokens (an approximation of
  NLTK's ``word_tokenize``, see below) without NLTK's English stop words (:func:`nltk_stopwords`,
  shipped as package data), counted as tokens (not documents): the 3 most frequent words
  overall, then per class (human labels, in order of first appearance) its 3 most frequent words
  and the 3 of its frequent words whose presence changes the class share most;
* :func:`paper_keyword_member` — membership is a case-insensitive *substring* match.

Tokenisation: NLTK's ``word_tokenize`` needs the Punkt sentence model, which cannot be downloaded
here, so :func:`paper_tokenize` applies the rules of NLTK's Treebank-style word tokenizer
(``NLTKWordTokenizer``) that decide which *alphabetic* tokens appear (only those are counted):
``: , ; @ # $ % & ? ! * ( ) [ ] { } < > "``, typographic quotes (``“ ” ‘ ’``: ``twitter’s``
gives ``twitter`` + ``s``), opening / closing single quotes and ``--`` / ``...`` are split off; a
colon or comma only when not followed by a digit; the contractions ``n't 's 'm 'd 'll 're 've``
at a word's end (``can't`` gives ``ca`` + ``n't``, as NLTK); ``cannot gonna gotta gimme lemme
wanna`` are split in two; a period is split off at the end of a word (Punkt's sentence boundary)
unless the word holds another period (``u.s.``); hyphens, slashes, inner periods and straight
apostrophes keep a token together (it is then not alphabetic and not counted, as in the
authors' code). Tokens are kept when ``str.isalpha()``. On the two public tweet tasks the
alphabetic tokens equal NLTK 3.10's (``NLTKWordTokenizer`` after an untrained Punkt split) for
most texts; the differences are Punkt's sentence boundaries.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources

import numpy as np

__all__ = [
    "CONVENTIONS",
    "PAPER_RANDOM_SPLITS",
    "PAPER_TOP_K",
    "PAPER_N_KEYWORDS",
    "PAPER_MAX_UNPARSEABLE",
    "nltk_stopwords",
    "check_conventions",
    "paper_random_split",
    "paper_random_order",
    "paper_human_draw",
    "PAPER_SAMPLE_SEED",
    "paper_length_split",
    "paper_tokenize",
    "paper_keywords",
    "paper_keyword_member",
    "paper_test_classes",
]

CONVENTIONS = ("hackrisk", "paper")
"""Presets: ``"hackrisk"`` (default) and ``"paper"`` (the authors' code, decision by decision)."""

PAPER_RANDOM_SPLITS = (("50/50", 0.5, 2), ("20/80", 0.2, 1), ("40/60", 0.4, 1))
"""(name, fraction in group A, seed of ``numpy.random.default_rng``) of the paper's random splits."""

PAPER_TOP_K = 10
"""Covariate values tested each against the rest under the paper preset (its 10 most frequent)."""

PAPER_N_KEYWORDS = 3
"""Words per keyword rule under the paper preset."""

PAPER_MAX_UNPARSEABLE = 0.01
"""Configurations with a larger share of unparseable answers (label ``-2``) are left out."""

PAPER_SAMPLE_SEED = 42
"""Seed of the human-labelled subsample: draw ``d`` uses ``numpy.random.RandomState(42 + d)``."""


def check_conventions(conventions: str, where: str) -> str:
    """Validate a ``conventions=`` argument (returns it)."""
    if conventions not in CONVENTIONS:
        raise ValueError(f"{where}: conventions={conventions!r} is not one of {CONVENTIONS}. Fix: pass "
                         "conventions='hackrisk' (default) or conventions='paper' (the authors' code).")
    return conventions


@lru_cache(maxsize=1)
def nltk_stopwords() -> frozenset[str]:
    """NLTK's English stop-word list, shipped as ``hackrisk/data/stopwords_nltk_english.txt``.

    Source: the ``stopwords`` corpus of ``nltk_data`` (file ``corpora/stopwords/english``), as
    returned by ``nltk.corpus.stopwords.words("english")``; the file header names it.
    """
    text = resources.files("hackrisk").joinpath("data", "stopwords_nltk_english.txt").read_text("utf-8")
    return frozenset(w.strip() for w in text.splitlines() if w.strip() and not w.startswith("#"))


_stopwords = nltk_stopwords


# ------------------------------------------------------------------------------------------------
# random and length splits


def paper_random_order(n: int, frac: float, seed: int) -> np.ndarray:
    """Positions (file order, 0 … n-1) of a paper random split's group A, in the sample's order.

    The authors call ``df.sample(frac=frac, random_state=numpy.random.default_rng(seed))`` on the
    task's table; pandas draws the sampled *positions*, so the same positions are sampled here by
    pandas itself, on a frame of ``n`` rows. The result keeps the order pandas returns them in,
    which is the row order of the authors' group-1 table (their human subsample picks rows of that
    table by position, :func:`paper_human_draw`).
    """
    import pandas as pd

    frame = pd.DataFrame(index=pd.RangeIndex(n))
    return frame.sample(frac=frac, random_state=np.random.default_rng(seed)).index.to_numpy()


def paper_random_split(n: int, frac: float, seed: int) -> np.ndarray:
    """Group A of a paper random split of ``n`` items in file order (int8: 1 = A, 0 = B)."""
    row = np.zeros(n, dtype=np.int8)
    row[paper_random_order(n, frac, seed)] = 1
    return row


def paper_human_draw(n1: int, n2: int, n: int, draw: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The authors' human-labelled subsample of two groups (positions within each group's table).

    Parameters
    ----------
    n1, n2
        Sizes of group 1 (hackrisk's group A) and group 2.
    n
        Budget (number of human labels).
    draw
        Repetition index ``d``; the generator is ``numpy.random.RandomState(42 + d)``.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray) or None
        Positions drawn in group 1 and in group 2, in draw order: ``k1 = max(2, int(round(n n1 /
        (n1 + n2))))``, ``k2 = max(2, n - k1)``, the larger one reduced when ``k1 + k2 > n``; then
        ``choice(n1, k1, replace=False)`` and ``choice(n2, k2, replace=False)`` from the same
        generator. ``None`` when a group is smaller than its share (the authors' code would fail).
    """
    k1 = max(2, int(np.round(n * n1 / (n1 + n2))))
    k2 = max(2, n - k1)
    if k1 + k2 > n:
        if k1 > k2:
            k1 = n - k2
        else:
            k2 = n - k1
    if not (0 <= k1 <= n1 and 0 <= k2 <= n2):
        return None
    gen = np.random.RandomState(PAPER_SAMPLE_SEED + int(draw))
    return gen.choice(n1, k1, replace=False), gen.choice(n2, k2, replace=False)


def paper_length_split(texts: Sequence[str]) -> np.ndarray:
    """Length in characters; group A (1) = at or below the median, B (0) = above."""
    n_char = np.array([len(str(t)) for t in texts], dtype=np.float64)
    if n_char.size == 0:
        return np.zeros(0, dtype=np.int8)
    return (n_char <= np.median(n_char)).astype(np.int8)


# ------------------------------------------------------------------------------------------------
# tokens and keywords

_PAD = [
    (re.compile(r"([«“‘„»”’]|`+)"), r" \1 "),  # typographic quotes (NLTK >= 3.8), backticks
    (re.compile(r"(?<=[ (\[{<])'(?!re|ve|ll|m|t|s|d|n)(?=\w)"), r" ' "),  # an opening single quote
    (re.compile(r"(?<=[^'])' "), r" ' "),  # a closing single quote
    (re.compile(r"\.{2,}"), r" \g<0> "),
    (re.compile(r"--|—"), r" \g<0> "),
    (re.compile(r"[;@#$%&?!*\[\](){}<>\"]"), r" \g<0> "),
    (re.compile(r"([:,])(?=[^\d]|$)"), r" \1 "),
]
_CONTRACTION = re.compile(r"(?<=[^' ])(n't|'s|'m|'d|'ll|'re|'ve)(?=\s)")
_SPLIT_WORDS = [re.compile(r"\b(can)(not)\b"), re.compile(r"\b(d)('ye)\b"), re.compile(r"\b(gim)(me)\b"),
                re.compile(r"\b(gon)(na)\b"), re.compile(r"\b(got)(ta)\b"), re.compile(r"\b(lem)(me)\b"),
                re.compile(r"\b(more)('n)\b"), re.compile(r"\b(wan)(na)(?=\s)"), re.compile(r" ('t)(is)\b"),
                re.compile(r" ('t)(was)\b")]


def paper_tokenize(text: str) -> list[str]:
    """Lower-cased word tokens of a text, approximating NLTK's ``word_tokenize`` (module docstring)."""
    s = " " + str(text).lower() + " "
    for pat, rep in _PAD:
        s = pat.sub(rep, s)
    for pat in _SPLIT_WORDS:
        s = pat.sub(r" \1 \2", s)
    s = _CONTRACTION.sub(r" \1", s)
    out: list[str] = []
    for tok in s.split():
        if len(tok) > 1 and tok.endswith(".") and "." not in tok[:-1]:
            out.extend((tok[:-1], "."))
        else:
            out.append(tok)
    return out


def _words(text: str) -> list[str]:
    stop = _stopwords()
    return [t for t in paper_tokenize(text) if t.isalpha() and t not in stop]


def _most_common(texts: Sequence[str], n: int) -> list[str]:
    counts: Counter[str] = Counter()
    for t in texts:
        counts.update(_words(t))
    return [w for w, _ in counts.most_common(n)]


def paper_keyword_member(texts: Sequence[str], word: str) -> np.ndarray:
    """int8 row: 1 where the text contains ``word`` (case-insensitive substring), else 0."""
    w = word.lower()
    return np.array([w in str(t).lower() for t in texts], dtype=np.int8)


def paper_keywords(texts: Sequence[str], labels: Sequence[str | None], *, k: int = PAPER_N_KEYWORDS,
                   max_classes: int = 15) -> list[str]:
    """The paper's keyword groupings of one task, in the authors' order.

    Parameters
    ----------
    texts
        The task's texts in file order.
    labels
        Human label per text (``None`` = no human label; those texts count for the overall
        frequencies only).
    k
        Words per rule (the authors use 3).
    max_classes
        Classes considered (the authors: the first 15; from the 12th class on only each class's
        single most frequent word is a candidate).

    Returns
    -------
    list of str
        ``k`` most frequent words overall; then per class, in order of first appearance, its ``k``
        most frequent words not yet chosen and the ``k`` not-yet-chosen words among its
        ``n = k + 2 k K`` most frequent ones (``K`` classes) whose presence changes the class share
        most (``|share among texts containing it - share among the others|``, only where the class
        occurs in both; ties in frequency order).
    """
    texts = [str(t) for t in texts]
    lab = [None if v is None else str(v) for v in labels]
    classes = list(dict.fromkeys(v for v in lab if v is not None))
    n = k + 2 * k * len(classes)
    used: list[str] = []
    for w in _most_common(texts, n):
        if len(used) >= k:
            break
        if w not in used:
            used.append(w)
    labelled = [i for i, v in enumerate(lab) if v is not None]
    lab_texts = [texts[i] for i in labelled]
    lab_vals = np.array([lab[i] for i in labelled], dtype=object)
    for idx, c in enumerate(classes[:max_classes]):
        n_c = n if idx <= 10 else 1
        cand = _most_common([texts[i] for i in labelled if lab[i] == c], n_c)
        is_c = lab_vals == c
        diff: dict[str, float] = {}
        n_freq = 0
        for w in cand:
            if w in used:
                continue
            member = paper_keyword_member(lab_texts, w).astype(bool)
            c1, c2 = int((is_c & member).sum()), int((is_c & ~member).sum())
            if c1 > 0 and c2 > 0:
                diff[w] = abs(c1 / member.sum() - c2 / (~member).sum())
            if n_freq < k:
                used.append(w)
                n_freq += 1
        n_disc = 0
        for w, _ in sorted(diff.items(), key=lambda item: item[1], reverse=True):
            if n_disc >= k:
                break
            if w not in used:
                used.append(w)
                n_disc += 1
    return used


def paper_test_classes(truth_codes: np.ndarray, n_class: int) -> list[int]:
    """Class codes tested on one task, as the authors choose them from the human labels.

    ``truth_codes`` are the task's human label codes in file order (-1 = none). More than two
    distinct human labels: every class of the task (classes no human used are then dropped as
    absent); two or fewer: only the first human label in file order. Without human labels (planning,
    ``min_labelled=0``): every class when the label set has more than two, else class 0.
    """
    labelled = truth_codes[truth_codes >= 0]
    if labelled.size == 0:
        return list(range(n_class)) if n_class > 2 else [0]
    if np.unique(labelled).size > 2:
        return list(range(n_class))
    return [int(labelled[0])]
