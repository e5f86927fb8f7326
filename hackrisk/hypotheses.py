"""Hypotheses: which group differences a researcher could plausibly test in a label cube.

A hypothesis is a triple (task, grouping of the task's items into groups A and B, class) and claims
that the share of items in the class differs between A and B (effects are always A minus B). The
generator follows the design of Baumann et al. (2025, "Large Language Model Hacking"):

========== =========================================================================================
kind       groupings (name in the ``grouping`` coordinate)
========== =========================================================================================
random     three seeded random splits of every task, ``random:50/50``, ``random:20/80``,
           ``random:40/60`` (A gets the first share): null hypotheses by construction
length     ``length:median``: texts longer than the median number of words (A) vs the rest (B)
keyword    ``keyword:<word>``: texts containing the word (A) vs the rest (B), for the most frequent
           content words overall, the most frequent per class (by human label), and per class the
           words whose presence changes the class share most (among words in at least
           ``min_word_count`` and absent from at least ``min_word_count`` labelled texts)
covariate  bool ``cov:<name>=True`` (True vs False); categorical / string ``cov:<name>=<value>``
           for each of the ``top_k`` most frequent values vs the rest; numeric
           ``cov:<name>:median`` (above the median vs the rest)
temporal   datetime covariates: quartile splits ``cov:<name>:Q1|Q2-4``, ``cov:<name>:Q1-2|Q3-4``,
           ``cov:<name>:Q1-3|Q4`` (the earlier part is A)
user       ``user:<name>``: a boolean mask or a pandas expression over the items table (True = A)
========== =========================================================================================

Classes: when a task has more than two classes, each class is tested one-vs-rest (in class-code
order 0, 1, ..., K-1); a two-class task is tested on its first class (code 0) only, since the
second class gives the same test with the sign flipped.

Hypotheses are ordered by task (cube order), then grouping (random, length, keyword, covariate /
temporal in covariate order, user in ``custom`` order), then class code.

The table above is hackrisk's default (``conventions="hackrisk"``). ``conventions="paper"``
reproduces the authors' code instead — seeded ``DataFrame.sample`` splits in file order, character
lengths (group A at or below the median), NLTK-style keywords with substring membership, the class
of the first human label, 10 covariate values, no removal of repeated splits, and only an *absent*
class dropped on the human side (:mod:`hackrisk.conventions`, ``docs/conventions.md``).

Every candidate (task, grouping, class) that is not kept is listed in ``attrs["skipped"]`` with its
reason:

* ``"no human labels"``: the task has no human label at all (one entry, grouping and class ``*``);
* ``"covariate missing for every item"``: the covariate is NaN / NaT / ``""`` on every item of
  the task, e.g. it belongs to another task (one entry, grouping ``cov:<name>``, class ``*``);
* ``"group A has n item(s), fewer than min_group=m"`` (also for B, and for the human-labelled
  items of each group: ``"group A has n human-labelled item(s), ..."``);
* ``"same split as <grouping>"``: the grouping puts the items into the same two groups (or the
  same two groups swapped) as an earlier grouping of the task;
* with ``drop_human_zero=True`` (the paper's convention), ``"human labels: class 'c' absent from
  group A"`` and ``"human labels: only class 'c' in group A"`` (and for B): the human-side
  logistic regression would be undefined.

Items whose covariate is missing (NaN, NaT, ``""``) or whose user mask / expression is missing (NA)
are in neither group; their number is listed in ``attrs["excluded"]``
(``{task, grouping, n_items, reason}``).
"""

from __future__ import annotations

import logging
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from . import conventions as _conv
from .cube import covariate_names, items_table, validate_cube

if TYPE_CHECKING:
    import scipy.sparse as sp

log = logging.getLogger(__name__)

__all__ = [
    "GROUPINGS",
    "RANDOM_SPLITS",
    "STOPWORDS",
    "tokenize",
    "generate_hypotheses",
    "hypotheses_table",
    "skipped_table",
    "align_group",
]

GROUPINGS = ("random", "length", "keyword", "covariate", "temporal")
"""Grouping families ``generate_hypotheses`` understands (``covariate`` includes ``temporal``)."""

RANDOM_SPLITS = (("50/50", 0.5), ("20/80", 0.2), ("40/60", 0.4))
"""Random splits (name, share of group A) drawn for every task."""

STOPWORDS = frozenset(
    """
    a about above after again against all almost also am an and any are aren't around as at be
    because been before being below between both but by can can't cannot could couldn't did didn't
    do does doesn't doing don't done down during each either else even ever every few for from
    further get gets got had hadn't has hasn't have haven't having he he'd he'll he's her here
    here's hers herself him himself his how how's however i i'd i'll i'm i've if in into is isn't
    it it's its itself just let let's like made make many may me might more most much must mustn't my
    myself never no nor not now of off often on once one only or other ought our ours ourselves out
    over own per quite rather really said same say says shan't she she'd she'll she's should
    shouldn't since so some still such than that that's the their theirs them themselves then there
    there's these they they'd they'll they're they've this those though through thus to too under
    until up upon us very via was wasn't we we'd we'll we're we've well were weren't what what's
    when when's where where's whether which while who who's whom whose why why's will with within
    without won't would wouldn't yet you you'd you'll you're you've your yours yourself yourselves
    amp gt lt nbsp quot rt http https www com co
    """.split()
)
"""A small English stopword list (plus HTML entity and URL debris) removed from keywords."""

_URL = re.compile(r"https?://\S+|www\.\S+")
_WORD = re.compile(r"[^\W\d_][^\W_]*(?:'(?!s\b)[^\W_]+)*")
_MIN_WORD_LEN = 3


def tokenize(text: str) -> list[str]:
    """Split a text into lowercase words.

    URLs are removed; a word is a run of letters and digits that starts with a letter, with
    inner apostrophes kept (``"don't"``) except a trailing ``'s``, which is split off (``"friend's"``
    gives ``"friend", "s"``). Numbers and punctuation are not words.

    Parameters
    ----------
    text
        Any string.

    Returns
    -------
    list of str
        The words in order (stopwords included; keywords leave out :data:`STOPWORDS` and words
        shorter than three characters).
    """
    return _WORD.findall(_URL.sub(" ", str(text).lower()))


# ------------------------------------------------------------------------------------------------
# helpers


_SWAP_01 = bytes([1, 0, *range(2, 256)])  # int8 codes as bytes: 0 <-> 1, -1 (255) kept


def _reason_size(side: str, n: int, min_group: int, labelled: bool = False, name: str = "min_group") -> str:
    what = "human-labelled item(s)" if labelled else "item(s)"
    return f"group {side} has {n} {what}, fewer than {name}={min_group}"


def _balanced_split(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """int8 row: 1 above the median, 0 at or below, -1 invalid.

    With ties at the median, ``x >= median`` is used instead of ``x > median`` when it balances
    the two groups better.
    """
    row = np.full(x.shape, -1, dtype=np.int8)
    if not valid.any():
        return row
    med = np.median(x[valid])
    gt = valid & (x > med)
    ge = valid & (x >= med)
    n = valid.sum()
    a = gt if abs(2 * gt.sum() - n) <= abs(2 * ge.sum() - n) else ge
    row[valid] = 0
    row[a] = 1
    return row


def _top_ids(counts: np.ndarray, keep: np.ndarray, n: int, tiebreak: Sequence[np.ndarray]) -> list[int]:
    """Indices of the ``n`` largest ``counts`` among ``keep`` (ties broken by ``tiebreak`` keys)."""
    idx = np.flatnonzero(keep)
    if n <= 0 or idx.size == 0:
        return []
    keys = [k[idx] for k in reversed(tiebreak)] + [-counts[idx]]
    order = np.lexsort(keys)
    return [int(i) for i in idx[order[:n]]]


_SCAN_MIN_TEXTS = 20_000
"""From this many texts on, words are found by the vectorised scanner (:mod:`hackrisk._wordscan`):
the same words, several times faster, and mostly in numpy calls that release the GIL."""


def _tokenize_items(texts: np.ndarray) -> tuple[np.ndarray, sp.csr_matrix, np.ndarray]:
    """Word counts, item × word presence matrix, and the vocabulary of a 1-d array of texts.

    Words as :func:`tokenize` finds them, less :data:`STOPWORDS` and words under three characters;
    word counts are ``len(text.split())``. Many texts go through the vectorised scanner, few
    (or any, should two words' hashes collide) through ``tokenize`` text by text: the same result.
    """
    import scipy.sparse as sp  # lazily: keeps `import hackrisk.hypotheses` light

    from ._wordscan import scan_texts

    scanned = scan_texts(texts) if len(texts) >= _SCAN_MIN_TEXTS else None
    if scanned is not None:
        lengths, indptr, word, vocab = scanned
        keep = np.fromiter((len(w) >= _MIN_WORD_LEN and w not in STOPWORDS for w in vocab), dtype=bool,
                           count=len(vocab))
        on = keep[word]
        text_of = np.repeat(np.arange(len(texts)), np.diff(indptr))
        new_indptr = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(np.bincount(text_of[on], minlength=len(texts)), out=new_indptr[1:])
        new_id = (np.cumsum(keep) - 1).astype(np.int32)
        x = sp.csr_matrix((np.ones(int(new_indptr[-1])), new_id[word[on]], new_indptr),
                          shape=(len(texts), int(keep.sum())))
        return lengths, x, np.array(vocab, dtype=object)[keep]
    vocab_ids: dict[str, int] = {}
    indptr = [0]
    indices: list[int] = []
    lengths = np.empty(len(texts), dtype=np.int64)
    for j, text in enumerate(texts):
        text = str(text)
        lengths[j] = len(text.split())
        words = set(tokenize(text))
        words.difference_update(STOPWORDS)
        indices.extend([vocab_ids.setdefault(w, len(vocab_ids)) for w in words if len(w) >= _MIN_WORD_LEN])
        indptr.append(len(indices))
    data = np.ones(len(indices), dtype=np.float64)
    x = sp.csr_matrix(
        (data, np.asarray(indices, dtype=np.int64), np.asarray(indptr, dtype=np.int64)),
        shape=(len(texts), len(vocab_ids)),
    )
    return lengths, x, np.array(list(vocab_ids), dtype=object)


def _select_keywords(
    x: sp.csr_matrix,
    truth: np.ndarray,
    n_class: int,
    word_rank: np.ndarray,
    n_keywords: int,
    min_word_count: int,
) -> list[int]:
    """Keyword ids of one task: overall frequent, per-class frequent, per-class discriminative."""
    df = np.asarray(x.sum(axis=0)).ravel()
    chosen = _top_ids(df, df > 0, n_keywords, [word_rank])
    lab = truth >= 0
    if lab.any():
        y = np.zeros((int(lab.sum()), n_class))
        y[np.arange(y.shape[0]), truth[lab]] = 1.0
        xl = x[np.flatnonzero(lab)]
        per_class = np.asarray((xl.T @ y).T)  # (class, word): labelled texts of the class with the word
        n_w = per_class.sum(axis=0)
        n_lab = y.shape[0]
        n_c = y.sum(axis=0)
        for c in range(n_class):
            chosen += _top_ids(per_class[c], per_class[c] > 0, n_keywords, [word_rank])
        ok = (n_w >= min_word_count) & (n_lab - n_w >= min_word_count)
        with np.errstate(divide="ignore", invalid="ignore"):
            p_in = per_class / n_w
            p_out = (n_c[:, None] - per_class) / (n_lab - n_w)
        score = np.round(np.abs(np.nan_to_num(p_in - p_out)), 12)
        for c in range(n_class):
            chosen += _top_ids(score[c], ok, n_keywords, [-n_w, word_rank])
    return list(dict.fromkeys(chosen))


def _covariate_kind(values: np.ndarray) -> str:
    if values.dtype == bool:
        return "bool"
    if np.issubdtype(values.dtype, np.datetime64):
        return "datetime"
    if np.issubdtype(values.dtype, np.number):
        return "numeric"
    return "string"


def _covariate_rows(
    name: str, values: np.ndarray, kind: str, top_k: int, paper: bool = False
) -> list[tuple[str, str, np.ndarray, int]] | None:
    """Candidate groupings of one covariate on one task's items: (grouping, kind, row, n_missing).

    ``None`` when the covariate is missing for every item (e.g. it belongs to another task).
    ``paper``: the values are ranked by ``pandas.Series.value_counts`` over the items in file
    order (its order among equally frequent values), as the authors' code does.
    """
    out: list[tuple[str, str, np.ndarray, int]] = []
    if kind == "numeric" and np.isnan(values.astype(np.float64)).all():
        return None
    if kind == "datetime" and np.isnat(values).all():
        return None
    if kind == "bool" and not paper:
        row = values.astype(np.int8)
        return [(f"cov:{name}=True", "covariate", row, 0)]
    if kind == "bool":  # the paper: each of the (two) values against the rest, value_counts order
        values = np.where(values, "True", "False").astype(object)
    if kind == "numeric":
        x = values.astype(np.float64)
        valid = ~np.isnan(x)
        return [(f"cov:{name}:median", "covariate", _balanced_split(x, valid), int((~valid).sum()))]
    if kind == "datetime":
        valid = ~np.isnat(values)
        n_missing = int((~valid).sum())
        t = values.astype("datetime64[ns]").astype(np.int64)
        qs = np.quantile(t[valid].astype(np.float64), [0.25, 0.5, 0.75]) if valid.any() else [0, 0, 0]
        labels = ("Q1|Q2-4", "Q1-2|Q3-4", "Q1-3|Q4")
        for q, lab in zip(qs, labels, strict=True):
            row = np.full(values.shape, -1, dtype=np.int8)
            row[valid] = (t[valid] <= q).astype(np.int8)
            out.append((f"cov:{name}:{lab}", "temporal", row, n_missing))
        return out
    s = np.array(["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in values],
                 dtype=object) if values.dtype != object else values
    valid = s != ""
    n_missing = int((~valid).sum())
    if not valid.any():
        return None
    uniq, counts = np.unique(s[valid].astype(str), return_counts=True)
    uniq = list(uniq)
    if uniq and set(uniq) <= {"True", "False"} and not paper:
        row = np.full(values.shape, -1, dtype=np.int8)
        row[valid] = (s[valid] == "True").astype(np.int8)
        return [(f"cov:{name}=True", "covariate", row, n_missing)]
    if paper:
        ranked = pd.Series(s[valid].astype(str)).value_counts().index[:top_k]
        order = [uniq.index(v) for v in ranked]
    else:
        order = np.lexsort((np.arange(len(uniq)), -np.asarray(counts)))[:top_k]  # uniq sorted: ties by value
    for j in order:
        row = np.full(values.shape, -1, dtype=np.int8)
        row[valid] = (s[valid] == uniq[j]).astype(np.int8)
        out.append((f"cov:{name}={uniq[j]}", "covariate", row, n_missing))
    return out


def _mask_to_row(mask: Any, n: int, where: str) -> np.ndarray:
    """Boolean mask (numpy / pandas, NA allowed) -> int8 row (1 True, 0 False, -1 NA)."""
    if isinstance(mask, (pd.Series, pd.Index)):
        arr = mask.astype(object).to_numpy() if mask.hasnans else mask.to_numpy()
    elif isinstance(mask, pd.api.extensions.ExtensionArray):
        arr = np.asarray(mask, dtype=object)
    else:
        arr = np.asarray(mask)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(
            f"custom grouping {where}: mask has shape {arr.shape}, expected ({n},), one value per "
            "item. Fix: give one boolean per item of the task (in the cube's item order)."
        )
    if arr.dtype == bool:
        return arr.astype(np.int8)
    if arr.dtype == object:
        na = np.array([v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) for v in arr])
        rest = arr[~na]
        if all(isinstance(v, (bool, np.bool_)) for v in rest):
            row = np.full(n, -1, dtype=np.int8)
            row[~na] = rest.astype(bool).astype(np.int8)
            return row
    raise ValueError(
        f"custom grouping {where}: mask has dtype {arr.dtype}, expected booleans (True = group A, "
        "False = group B, None/NA = neither). Fix: pass a boolean array, e.g. `values == 'x'`."
    )


def _custom_rows(
    custom: Mapping[str, Any],
    cube: xr.Dataset,
    real_t: np.ndarray,
    real_i: np.ndarray,
    lengths: np.ndarray,
) -> dict[str, np.ndarray]:
    """Evaluate the user groupings to int8 arrays over (task, item) (-1 = neither / not defined)."""
    tasks = [str(t) for t in cube["task"].values]
    shape = cube["item_id"].shape
    counts = np.bincount(real_t, minlength=len(tasks))
    table: pd.DataFrame | None = None
    out: dict[str, np.ndarray] = {}
    for name, spec in custom.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"custom grouping names must be non-empty strings, got {name!r}. "
                             "Fix: use {'my_name': mask_or_expression}.")
        full = np.full(shape, -1, dtype=np.int8)
        if isinstance(spec, str):
            if table is None:
                table = items_table(cube)
                if "length" not in table.columns:
                    table["length"] = lengths
            try:
                res = table.eval(spec, engine="python")
            except pd.errors.UndefinedVariableError as err:
                raise ValueError(
                    f"custom grouping {name!r}: expression {spec!r} uses an unknown column ({err}). "
                    f"Available columns: {list(table.columns)}. Fix: use one of those names "
                    "(backquote names with spaces: `my col`)."
                ) from err
            except Exception as err:  # noqa: BLE001 - any pandas parse/eval failure
                raise ValueError(
                    f"custom grouping {name!r}: expression {spec!r} could not be evaluated on the items "
                    f"table ({type(err).__name__}: {err}). Fix: write a pandas query expression over "
                    f"the columns {list(table.columns)}, e.g. \"source == 'news'\"."
                ) from err
            if np.ndim(res) == 0 or len(res) != len(table):
                raise ValueError(
                    f"custom grouping {name!r}: expression {spec!r} gave {res!r}, not one boolean per "
                    "item. Fix: write a comparison over columns, e.g. \"length > 20\"."
                )
            full[real_t, real_i] = _mask_to_row(res, len(table), f"{name!r} (expression {spec!r})")
        elif isinstance(spec, Mapping):
            for task, mask in spec.items():
                if str(task) not in tasks:
                    raise ValueError(f"custom grouping {name!r}: unknown task {task!r}; the cube has "
                                     f"{tasks}. Fix: key the masks by task name.")
                t = tasks.index(str(task))
                sel = real_t == t
                full[t, real_i[sel]] = _mask_to_row(mask, int(counts[t]), f"{name!r}, task {task!r}")
        else:
            full[real_t, real_i] = _mask_to_row(
                spec, len(real_t),
                f"{name!r} (an array over all items of the cube, in items_table order; "
                "for one task use {task: mask})",
            )
        out[name] = full
    return out


# ------------------------------------------------------------------------------------------------
# the generator


def generate_hypotheses(
    cube: xr.Dataset,
    *,
    groupings: Iterable[str] = ("random", "length", "keyword", "covariate"),
    covariates: Sequence[str] | None = None,
    top_k: int | None = None,
    n_keywords: int | None = None,
    min_group: int = 2,
    custom: Mapping[str, Any] | None = None,
    drop_human_zero: bool = True,
    min_word_count: int = 10,
    min_labelled: int | None = None,
    rng: int | np.random.Generator | None = 0,
    conventions: str = "hackrisk",
) -> xr.Dataset:
    """Generate the hypotheses of a label cube (the paper's design; see the module docstring).

    Parameters
    ----------
    cube
        A label cube (:func:`hackrisk.make_cube`).
    groupings
        Families to generate, any of ``"random"``, ``"length"``, ``"keyword"``, ``"covariate"``
        (all covariates, datetime ones as temporal splits) and ``"temporal"`` (datetime covariates
        only). User groupings come from ``custom``.
    covariates
        Covariate names (without ``cov_``) to use; default all of the cube's covariates.
    top_k
        Values of a categorical / string covariate tested each against the rest (default 3;
        10 under ``conventions="paper"``).
    n_keywords
        Words per keyword rule (overall frequent, frequent per class, discriminative per class;
        default 5, 3 under ``conventions="paper"``).
    min_group
        Minimum number of items in each group (and, unless ``min_labelled`` says otherwise, of
        human-labelled items).
    custom
        ``{name: spec}`` user groupings; ``spec`` is a boolean array over all items of the cube in
        :func:`hackrisk.items_table` order, a dict ``{task: boolean array over the task's items}``,
        or a pandas query expression (string) evaluated on the items table (columns: ``task``,
        ``item_id``, ``text``, ``truth``, the covariates, and ``length`` = words per text unless a
        covariate has that name). True = group A, False = group B, NA = neither.
    drop_human_zero
        Apply the paper's convention: drop a hypothesis whose class is absent from a group, or is
        the only class in a group, on the human labels.
    min_word_count
        Discriminative keywords must occur in, and be absent from, at least this many labelled texts.
    min_labelled
        Minimum number of human-labelled items in each group (default ``min_group``). Human labels
        on a subset of the items are the normal case: groups are sized on all items for the LLM
        side and on the labelled ones for the human side. ``0`` forms hypotheses before any human
        label exists (to plan which items to label, :func:`hackrisk.analysis.mitigation.
        suggest_items`): tasks without human labels are kept and ``drop_human_zero`` applies only
        to groups with labelled items.
    rng
        Seed or generator of the random splits. A task's random splits depend only on the seed,
        the task name and the item ids: not on the item order (permuting a cube's items permutes
        the groups with them), nor on the other tasks of the cube. Not used under
        ``conventions="paper"``, whose splits have fixed seeds.
    conventions
        ``"hackrisk"`` (default) or ``"paper"``: the authors' code decision by decision
        (:mod:`hackrisk.conventions`, ``docs/conventions.md``) — random splits by
        ``DataFrame.sample`` over the items in the cube's (file) order with seeds 2 / 1 / 1; length
        in characters with group A = at or below the median; NLTK-style keywords (token counts,
        3 per rule, substring membership); for a two-class task the class of the first human
        label; the 10 most frequent covariate values; no removal of groupings that repeat a split;
        ``drop_human_zero`` drops only a class *absent* from a group (a group made only of the
        class is kept: R's ``glm`` calls it "no difference").

    Returns
    -------
    xarray.Dataset
        ``group`` (hypothesis, item) int8 (1 = A, 0 = B, -1 neither) with coords ``task``,
        ``grouping``, ``kind``, ``class_code``, ``class_name``; ``attrs["skipped"]`` and
        ``attrs["excluded"]`` (see the module docstring). Format: ``docs/results.md``.

    Raises
    ------
    ValueError
        If the cube is invalid, no task has human labels, an option is unknown or out of range, a
        covariate name is unknown, or a custom grouping is malformed (wrong length, not boolean,
        unknown column or task).
    """
    plan = _plan_hypotheses(cube, groupings=groupings, covariates=covariates, top_k=top_k, n_keywords=n_keywords,
                           min_group=min_group, custom=custom, drop_human_zero=drop_human_zero,
                           min_word_count=min_word_count, min_labelled=min_labelled, rng=rng, conventions=conventions)
    return _assemble_hypotheses(plan, [_task_hypotheses(plan, t) for t in range(len(plan["tasks"]))])


# ------------------------------------------------------------------------------------------------
# the generator in three steps: options and shared arrays, one task, the Dataset


def _plan_hypotheses(cube: xr.Dataset, **kwargs: Any) -> dict[str, Any]:
    """Step 1 of :func:`generate_hypotheses`: options checked, and what every task's step needs.

    :func:`generate_hypotheses` is ``_assemble_hypotheses(plan, [_task_hypotheses(plan, t) for t
    in tasks])``; the chunked analysis (:mod:`hackrisk.scale`) runs the task steps as dask tasks
    next to the counting of other tasks. Same options (``kwargs``, defaults filled in) and errors
    as :func:`generate_hypotheses`.
    """
    import inspect

    from ._chunked import is_lazy, light_copy

    bound = inspect.signature(generate_hypotheses).bind(cube, **kwargs)
    bound.apply_defaults()
    options = {k: v for k, v in bound.arguments.items() if k != "cube"}
    groupings = options["groupings"]
    covariates = options["covariates"]
    top_k, n_keywords = options["top_k"], options["n_keywords"]
    min_group, min_labelled = options["min_group"], options["min_labelled"]
    min_word_count, custom, conventions = options["min_word_count"], options["custom"], options["conventions"]
    # the generator reads only (task, item) variables: validate a light copy of a lazy cube
    validate_cube(light_copy(cube) if is_lazy(cube) else cube)
    _conv.check_conventions(conventions, "generate_hypotheses")
    paper = conventions == "paper"
    if top_k is None:
        top_k = _conv.PAPER_TOP_K if paper else 3
    if n_keywords is None:
        n_keywords = _conv.PAPER_N_KEYWORDS if paper else 5
    groupings = tuple(groupings)
    unknown = [g for g in groupings if g not in GROUPINGS]
    if unknown:
        raise ValueError(f"generate_hypotheses: unknown grouping(s) {unknown}. "
                         f"Fix: choose from {list(GROUPINGS)} (user groupings go in `custom=`).")
    min_labelled = min_group if min_labelled is None else min_labelled
    for opt, val, low in (("top_k", top_k, 0), ("n_keywords", n_keywords, 0),
                          ("min_group", min_group, 1), ("min_word_count", min_word_count, 1),
                          ("min_labelled", min_labelled, 0)):
        if not isinstance(val, (int, np.integer)) or val < low:
            raise ValueError(f"generate_hypotheses: {opt}={val!r}; it must be an integer >= {low}.")
    all_covs = covariate_names(cube)
    covs = all_covs if covariates is None else [str(c) for c in covariates]
    missing = [c for c in covs if c not in all_covs]
    if missing:
        raise ValueError(f"generate_hypotheses: unknown covariate(s) {missing}; the cube has {all_covs}. "
                         "Fix: pass names without the 'cov_' prefix.")
    rng = options["rng"]
    # one draw from `rng`; each task's splits then depend only on it, the task name and the item ids
    base_seed = int(np.random.default_rng(rng).integers(2**62))

    item_id = np.asarray(cube["item_id"].values)
    real = item_id != ""
    truth = np.asarray(cube["truth"].values).astype(np.int64)
    real_t, real_i = np.nonzero(real)
    if not ((truth >= 0) & real).any() and min_labelled > 0:
        raise ValueError("generate_hypotheses: no task of the cube has human labels (cube 'truth' is -1 "
                         "everywhere), so no hypothesis can be checked. Fix: add human labels for at "
                         "least one task (items table column 'truth'), or pass min_labelled=0 to plan the "
                         "labelling (hackrisk.analysis.mitigation.suggest_items).")
    all_texts = np.asarray(cube["text"].values)
    texts = all_texts[real_t, real_i]
    # hackrisk's own tokens (lengths in words, keywords), per task in task_hypotheses; user groupings
    # may refer to the words per text of every item, so with them all texts are tokenised here
    tokens = None
    if custom:
        lengths, x_all, words = _tokenize_items(texts)
        tokens = (lengths, x_all, words, _word_rank(words))
    cov_values = {c: np.asarray(cube[f"cov_{c}"].values) for c in covs}
    class_name = np.asarray(cube["class_name"].values)
    return {
        "options": {**options, "groupings": groupings, "top_k": int(top_k), "n_keywords": int(n_keywords),
                    "min_labelled": int(min_labelled)},
        "paper": paper, "base_seed": base_seed, "covs": covs, "tasks": [str(t) for t in cube["task"].values],
        "item": cube["item"].values, "item_id": item_id, "truth": truth, "class_name": class_name,
        "n_class": (class_name != "").sum(axis=1), "real_t": real_t, "real_i": real_i, "texts": texts,
        "all_texts": all_texts, "tokens": tokens,
        "user": _custom_rows(custom, cube, real_t, real_i, tokens[0]) if custom else {},
        "cov_values": cov_values, "cov_kind": {c: _covariate_kind(v) for c, v in cov_values.items()},
    }


def _word_rank(words: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(words.astype(str))) if len(words) else np.zeros(0, int)


def _task_hypotheses(plan: dict[str, Any], t: int) -> dict[str, Any]:
    """Step 2 of :func:`generate_hypotheses`: the hypotheses of task number ``t``.

    Returns ``skipped``, ``excluded``, ``meta`` (grouping, kind, class code, class name per
    hypothesis), ``pos`` (the task's real item positions), ``rows`` (int8, hypothesis x ``pos``),
    ``group`` (int8, hypothesis x cube item: 1 = A, 0 = B, -1 neither) and ``text_hash`` (of
    every item position of the task).
    """
    o, paper = plan["options"], plan["paper"]
    groupings, n_keywords, min_labelled = o["groupings"], o["n_keywords"], o["min_labelled"]
    min_group, drop_human_zero = o["min_group"], o["drop_human_zero"]
    task = plan["tasks"][t]
    truth, class_name, item_id = plan["truth"], plan["class_name"], plan["item_id"]
    skipped: list[dict[str, Any]] = []
    excluded: list[dict[str, Any]] = []
    meta: list[tuple[str, str, int, str]] = []
    sel = np.flatnonzero(plan["real_t"] == t)
    pos = plan["real_i"][sel]  # cube item positions of the task's real items
    out = {"skipped": skipped, "excluded": excluded, "meta": meta, "pos": pos,
           "rows": np.zeros((0, len(pos)), dtype=np.int8), "text_hash": _text_hash(plan["all_texts"][t])}
    k_t = int(plan["n_class"][t])
    classes = (_conv.paper_test_classes(truth[t, pos], k_t) if paper
               else list(range(k_t)) if k_t > 2 else [0])
    names_t = [str(class_name[t, c]) for c in classes]
    y_t = truth[t, pos]
    if not (y_t >= 0).any() and min_labelled > 0:
        skipped.append({"task": task, "grouping": "*", "class_name": "*", "reason": "no human labels"})
        return _with_group(out, plan)

    texts_t = plan["texts"][sel]
    want_text = not paper and ("length" in groupings or "keyword" in groupings)
    if plan["tokens"] is not None:
        lengths, x_all, words, word_rank = plan["tokens"]
        lengths, x_t = lengths[sel], x_all[sel]
    elif want_text:
        lengths, x_t, words = _tokenize_items(texts_t)
        word_rank = _word_rank(words)
    else:
        x_t = None
    cand: list[tuple[str, str, np.ndarray]] = []
    if "random" in groupings and paper:
        for name, share, seed in _conv.PAPER_RANDOM_SPLITS:
            cand.append((f"random:{name}", "random", _conv.paper_random_split(len(pos), share, seed)))
    elif "random" in groupings:
        order = np.argsort(item_id[t, pos].astype(str), kind="stable")
        gen = np.random.default_rng([plan["base_seed"], zlib.crc32(task.encode("utf-8"))])
        for name, share in RANDOM_SPLITS:
            perm = order[gen.permutation(len(pos))]
            row = np.zeros(len(pos), dtype=np.int8)
            row[perm[: int(round(share * len(pos)))]] = 1
            cand.append((f"random:{name}", "random", row))
    if "length" in groupings and paper:
        cand.append(("length:median", "length", _conv.paper_length_split(texts_t)))
    elif "length" in groupings:
        cand.append(("length:median", "length", _balanced_split(lengths.astype(np.float64), np.ones(len(pos), bool))))
    if "keyword" in groupings and n_keywords > 0 and paper:
        names_by_code = np.array([str(class_name[t, c]) for c in range(k_t)], dtype=object)
        lab_t = [names_by_code[v] if v >= 0 else None for v in y_t]
        for w in _conv.paper_keywords(texts_t, lab_t, k=n_keywords):
            cand.append((f"keyword:{w}", "keyword", _conv.paper_keyword_member(texts_t, w)))
    elif "keyword" in groupings and n_keywords > 0 and x_t is not None:
        ids = _select_keywords(x_t, y_t, k_t, word_rank, n_keywords, o["min_word_count"])
        if ids:
            pres = (x_t[:, ids].toarray().T > 0).astype(np.int8)
            cand.extend((f"keyword:{words[w]}", "keyword", pres[j]) for j, w in enumerate(ids))
    if "covariate" in groupings or "temporal" in groupings:
        for c in plan["covs"]:
            kind = plan["cov_kind"][c]
            if ("covariate" not in groupings) and kind != "datetime":
                continue
            rows = _covariate_rows(c, plan["cov_values"][c][t, pos], kind, o["top_k"], paper)
            if rows is None:
                skipped.append({"task": task, "grouping": f"cov:{c}", "class_name": "*",
                                "reason": "covariate missing for every item"})
                continue
            for gname, gkind, row, n_miss in rows:
                if n_miss:
                    excluded.append({"task": task, "grouping": gname, "n_items": n_miss,
                                     "reason": "missing covariate value"})
                cand.append((gname, gkind, row))
    for name, full in plan["user"].items():
        spec = o["custom"][name]
        if isinstance(spec, Mapping) and task not in {str(k) for k in spec}:
            continue  # a per-task mask that does not cover this task
        row = full[t, pos]
        n_miss = int((row < 0).sum())
        if n_miss:
            excluded.append({"task": task, "grouping": f"user:{name}", "n_items": n_miss,
                             "reason": "missing (NA) mask value"})
        cand.append((f"user:{name}", "user", row))
    if not cand:
        return _with_group(out, plan)

    g = np.stack([r for _, _, r in cand])  # (candidate, item of task)
    a, b = g == 1, g == 0
    lab = y_t >= 0
    onehot = np.zeros((len(pos), k_t))
    onehot[np.flatnonzero(lab), y_t[lab]] = 1.0
    n_a, n_b = a.sum(1), b.sum(1)
    m_a, m_b = (a & lab).sum(1), (b & lab).sum(1)
    k_a, k_b = a.astype(np.float64) @ onehot, b.astype(np.float64) @ onehot
    seen: dict[bytes, str] = {}
    kept: list[int] = []
    for j, (gname, gkind, row) in enumerate(cand):
        reason = None
        for side, n, m in (("A", n_a[j], m_a[j]), ("B", n_b[j], m_b[j])):
            if reason is None and n < min_group:
                reason = _reason_size(side, int(n), min_group)
            if reason is None and m < min_labelled:
                reason = _reason_size(side, int(m), min_labelled, labelled=True,
                                      name="min_group" if min_labelled == min_group else "min_labelled")
        if reason is None and not paper:
            key = np.asarray(row, dtype=np.int8).tobytes()  # codes -1, 0, 1
            flip = key.translate(_SWAP_01)  # the same split with A and B swapped
            if key in seen or flip in seen:
                reason = f"same split as {seen.get(key, seen.get(flip))}"
            else:
                seen[key] = gname
        for c, cname in zip(classes, names_t, strict=True):
            why = reason
            if why is None and drop_human_zero:
                for side, k, m in (("A", k_a[j, c], m_a[j]), ("B", k_b[j, c], m_b[j])):
                    if m == 0:  # no human label in the group (only with min_labelled=0)
                        continue
                    if why is None and k == 0:
                        why = f"human labels: class {cname!r} absent from group {side}"
                    if why is None and k == m and not paper:
                        why = f"human labels: only class {cname!r} in group {side}"
            if why is not None:
                skipped.append({"task": task, "grouping": gname, "class_name": cname, "reason": why})
                continue
            kept.append(j)
            meta.append((gname, gkind, c, cname))
    if kept:
        out["rows"] = g[np.asarray(kept)]
    return _with_group(out, plan)


def _with_group(part: dict[str, Any], plan: dict[str, Any]) -> dict[str, Any]:
    """The task's group rows placed on the cube's item positions (``group``)."""
    group = np.full((len(part["meta"]), len(plan["item"])), -1, dtype=np.int8)
    group[:, part["pos"]] = part["rows"]
    part["group"] = group
    return part


def _assemble_hypotheses(plan: dict[str, Any], parts: Sequence[dict[str, Any]]) -> xr.Dataset:
    """Step 3 of :func:`generate_hypotheses`: the hypotheses Dataset from the parts of every task, in task order."""
    o, tasks = plan["options"], plan["tasks"]
    skipped = [s for p in parts for s in p["skipped"]]
    meta = [m for p in parts for m in p["meta"]]
    n_hyp = len(meta)
    group = np.concatenate([p["group"] for p in parts]) if parts else np.zeros((0, len(plan["item"])), np.int8)
    if n_hyp == 0:
        log.warning("generate_hypotheses: every candidate hypothesis was skipped (%d); see attrs['skipped'].",
                    len(skipped))
    log.info("generate_hypotheses: %d hypotheses kept, %d candidates skipped", n_hyp, len(skipped))

    def col(i: int) -> np.ndarray:
        return np.array([m[i] for m in meta], dtype=object)

    ds = xr.Dataset(
        {"group": (("hypothesis", "item"), group)},
        coords={
            "hypothesis": np.arange(n_hyp),
            "item": plan["item"],
            "task": ("hypothesis", np.array([tasks[t] for t, p in enumerate(parts) for _ in p["meta"]], dtype=object)),
            "grouping": ("hypothesis", col(0)),
            "kind": ("hypothesis", col(1)),
            "class_code": ("hypothesis", np.array([m[2] for m in meta], dtype=np.int64)),
            "class_name": ("hypothesis", col(3)),
        },
    )
    ds["group"].attrs["description"] = "1 = group A, 0 = group B, -1 = neither (padding, excluded)"
    # the items the groups refer to, so that results align by item id (never by position)
    # fastpath: str objects already; otherwise xarray passes them through pandas (0.1 s for 400,000 ids)
    ds["item_id"] = xr.Variable(("item_task", "item"), plan["item_id"].astype(object), fastpath=True)
    ds["item_text_hash"] = (("item_task", "item"), np.stack([p["text_hash"] for p in parts]))
    ds = ds.assign_coords(item_task=np.array(tasks, dtype=object))
    ds["item_id"].attrs["description"] = "item id of each item position, per task of the cube ('' = padding)"
    ds["item_text_hash"].attrs["description"] = "pandas hash of each item's text (detects another cube)"
    ds.attrs.update({
        "created_by": "hackrisk.generate_hypotheses",
        "groupings": [*o["groupings"], *(["user"] if plan["user"] else [])],
        "top_k": o["top_k"],
        "n_keywords": o["n_keywords"],
        "min_group": int(o["min_group"]),
        "min_labelled": o["min_labelled"],
        "min_word_count": int(o["min_word_count"]),
        "drop_human_zero": int(bool(o["drop_human_zero"])),
        "conventions": o["conventions"],
        "skipped": skipped,
        "excluded": [e for p in parts for e in p["excluded"]],
    })
    if isinstance(o["rng"], (int, np.integer)):
        ds.attrs["rng"] = int(o["rng"])
    return ds


# ------------------------------------------------------------------------------------------------
# alignment by item id


def _text_hash(texts: np.ndarray) -> np.ndarray:
    """int64 hash of every text (same shape), stable across processes (``pandas.util.hash_array``)."""
    # str per element: a fixed-width unicode copy (astype(str)) would take 4 bytes x the longest text per item
    flat = np.array([str(t) for t in np.asarray(texts, dtype=object).ravel()], dtype=object)
    return pd.util.hash_array(flat, categorize=False).view(np.int64).reshape(np.shape(texts))


def align_group(cube: xr.Dataset, hypotheses: xr.Dataset) -> np.ndarray:
    """The hypotheses' group memberships in the cube's item order, matched by item id.

    :func:`generate_hypotheses` records the item id and a hash of the text of every item
    position (variables ``item_id`` and ``item_text_hash`` on ``(item_task, item)``). Here the
    groups of each hypothesis are moved to the position that item has in ``cube``, so a cube
    whose items were permuted (``cube.isel(item=perm)``) or re-padded gives the same memberships
    per item. Hypotheses without these variables (built by hand) are read by position.

    Parameters
    ----------
    cube
        The label cube the hypotheses are tested on.
    hypotheses
        Output of :func:`generate_hypotheses` (``group`` on ``(hypothesis, item)``, coord ``task``).

    Returns
    -------
    numpy.ndarray
        int8 ``(hypothesis, cube item)``: 1 = group A, 0 = group B, -1 = neither.

    Raises
    ------
    ValueError
        When the hypotheses come from another cube: an item id of theirs is missing from the
        cube, the cube has items the hypotheses do not cover, a text differs for the same id, or
        (hypotheses without item ids) the number of items differs.
    """
    _check_hyps(hypotheses)
    group = np.asarray(hypotheses["group"].values).astype(np.int8)
    n_item = cube.sizes["item"]
    if "item_id" not in hypotheses:
        if group.shape[1] != n_item:
            raise ValueError(f"hypotheses have {group.shape[1]} items, the cube {n_item}. "
                             "Fix: generate the hypotheses from this cube.")
        return group
    h_tasks = [str(t) for t in hypotheses["item_task"].values]
    h_ids_all = np.asarray(hypotheses["item_id"].values)
    h_hash_all = np.asarray(hypotheses["item_text_hash"].values) if "item_text_hash" in hypotheses else None
    c_tasks = [str(t) for t in cube["task"].values]
    c_ids_all = np.asarray(cube["item_id"].values)
    c_texts = np.asarray(cube["text"].values)
    hyp_task = np.asarray(hypotheses["task"].values).astype(str).astype(object)
    out = np.full((group.shape[0], n_item), -1, dtype=np.int8)
    for task in dict.fromkeys(hyp_task):
        hs = np.flatnonzero(hyp_task == task)
        if task not in h_tasks or task not in c_tasks:
            raise ValueError(f"hypotheses: task {task!r} is not in the cube's tasks {c_tasks} (or has no "
                             "item ids in the hypotheses). Fix: generate the hypotheses from this cube.")
        h_ids = h_ids_all[h_tasks.index(task)].astype(str)
        c_ids = c_ids_all[c_tasks.index(task)].astype(str)
        h_pos = np.flatnonzero(h_ids != "")
        c_pos = np.flatnonzero(c_ids != "")
        where = pd.Index(c_ids[c_pos]).get_indexer(h_ids[h_pos])
        missing = h_ids[h_pos][where < 0]
        if missing.size:
            raise ValueError(f"hypotheses were generated from another cube: {missing.size} item id(s) of task "
                             f"{task!r} are not in this cube (e.g. {[str(x) for x in missing[:5]]}). Fix: generate the "
                             "hypotheses from this cube (hackrisk.generate_hypotheses(cube)).")
        if c_pos.size != h_pos.size:
            extra = np.setdiff1d(c_ids[c_pos], h_ids[h_pos])
            raise ValueError(f"hypotheses have {h_pos.size} items, the cube {c_pos.size} (task {task!r}; items "
                             f"not covered, e.g. {[str(x) for x in extra[:5]]}). Fix: generate the hypotheses "
                             "from this cube.")
        target = c_pos[where]
        if h_hash_all is not None:
            h_hash = h_hash_all[h_tasks.index(task)][h_pos]
            c_hash = _text_hash(c_texts[c_tasks.index(task)][target])
            diff = np.flatnonzero(h_hash != c_hash)
            if diff.size:
                raise ValueError(f"hypotheses were generated from another cube: {diff.size} item(s) of task "
                                 f"{task!r} have the same id but another text (e.g. "
                                 f"{[str(x) for x in h_ids[h_pos][diff[:5]]]}). Fix: generate the hypotheses from this cube.")
        out[np.ix_(hs, target)] = group[np.ix_(hs, h_pos)]
        off = np.delete(np.arange(group.shape[1]), h_pos)
        if (group[np.ix_(hs, off)] >= 0).any():
            raise ValueError(f"hypotheses of task {task!r} put padding items (item_id == '') in a group. "
                             "Fix: set group = -1 there.")
    return out


# ------------------------------------------------------------------------------------------------
# tidy views


def hypotheses_table(hyps: xr.Dataset) -> pd.DataFrame:
    """One row per hypothesis: task, grouping, kind, class_code, class_name, n_a, n_b.

    Parameters
    ----------
    hyps
        Output of :func:`generate_hypotheses`.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``hypothesis``; ``n_a`` / ``n_b`` count the items in group A / B.
    """
    _check_hyps(hyps)
    g = np.asarray(hyps["group"].values)
    df = pd.DataFrame(
        {name: np.asarray(hyps[name].values) for name in ("task", "grouping", "kind", "class_code", "class_name")},
        index=pd.Index(np.asarray(hyps["hypothesis"].values), name="hypothesis"),
    )
    df["n_a"] = (g == 1).sum(axis=1)
    df["n_b"] = (g == 0).sum(axis=1)
    return df


def skipped_table(hyps: xr.Dataset) -> pd.DataFrame:
    """Every candidate hypothesis that was not kept, with its reason.

    Returns
    -------
    pandas.DataFrame
        Columns ``task``, ``grouping``, ``class_name``, ``reason`` (empty if nothing was skipped).
    """
    _check_hyps(hyps)
    cols = ["task", "grouping", "class_name", "reason"]
    return pd.DataFrame(list(hyps.attrs.get("skipped", [])), columns=cols)


def _check_hyps(hyps: Any) -> None:
    if not isinstance(hyps, xr.Dataset) or "group" not in hyps or hyps["group"].dims != ("hypothesis", "item"):
        raise ValueError("expected the output of hackrisk.hypotheses.generate_hypotheses (a Dataset with "
                         "'group' on (hypothesis, item)). Fix: call generate_hypotheses(cube) first.")
