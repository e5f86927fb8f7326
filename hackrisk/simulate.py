"""Multiverse simulator with known truth.

``simulate_multiverse`` draws items with covariates and true classes, and annotators
(model × prompt × temperature) whose labels err in two ways:

* **random error**: each annotator has a nominal accuracy (model quality, a prompt shift, and
  noise that grows with temperature); a wrong answer is drawn uniformly from the other classes;
* **systematic error**: on items whose binary covariate ``x_j`` is true, the annotator's label is
  pushed with probability ``|b_j|`` towards class 0 (``b_j > 0``) or class 1 (``b_j < 0``).  This is
  the mechanism that fabricates or hides group differences.

The true share of class 0 is linear in the binary covariates,

    P(y = 0 | x) = pi_0 + sum_j effect_j * (x_j - 1/2),

with the other classes sharing the rest in fixed proportions.  Covariates are independent and
balanced, so ``effect_j`` is exactly the population difference in the share of class 0 between
``x_j = True`` and ``x_j = False``; ``effect_j = 0`` is an exact null.  Null covariates (``source``,
``date``, ``length``) and synthetic texts with class-marker words complete the items table.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from .cube import SCHEMA_VERSION, validate_cube

__all__ = ["simulate_multiverse"]

_VOCAB = [
    "policy", "climate", "energy", "vote", "market", "health", "school", "crime", "border", "tax",
    "jobs", "price", "war", "court", "media", "city", "farm", "water", "road", "bank", "law",
    "union", "rent", "fuel", "power", "press", "trade", "data", "food", "youth", "army", "art",
    "sport", "film", "music", "tech", "phone", "car", "train", "plane", "ship", "tree", "river",
    "storm", "heat", "snow", "fire", "flood", "wind", "sun",
]
_SOURCES = np.array(["news", "blog", "forum", "social"], dtype=object)


def _as_list(value, n: int, name: str) -> list:
    if np.ndim(value) == 0:
        return [value] * n
    value = list(value)
    if len(value) != n:
        raise ValueError(f"simulate_multiverse: {name} has {len(value)} entries, expected {n}.")
    return value


def simulate_multiverse(
    *,
    n_tasks: int = 2,
    n_items: int | Sequence[int] = 400,
    n_classes: int | Sequence[int] = 2,
    n_covariates: int = 4,
    effects: np.ndarray | None = None,
    base_rate: float | Sequence[float] = 0.4,
    models: Sequence[str] | int = 3,
    model_accuracy: Sequence[float] | None = None,
    n_prompts: int = 3,
    temperatures: Sequence[float] = (0.0, 0.5, 1.0),
    prompt_sd: float = 0.03,
    temperature_noise: float = 0.08,
    bias_sd: float = 0.05,
    human_noise: float = 0.0,
    null_share: float = 0.5,
    max_effect: float = 0.25,
    rng: int | np.random.Generator | None = None,
) -> tuple[xr.Dataset, xr.Dataset]:
    """Simulate a label cube and the truth behind it.

    Parameters
    ----------
    n_tasks, n_items, n_classes
        Number of tasks; items and classes per task (an int, or one value per task).
    n_covariates
        Binary covariates ``cov_x0 ..`` that carry the effects (and the systematic errors).
    effects
        Array ``(n_tasks, n_covariates)``: difference in the share of class 0 between
        ``x_j = True`` and ``x_j = False``. Default: a share ``null_share`` of exact zeros, the
        rest uniform in ``±[0.02, max_effect]``.
    base_rate
        Share of class 0 at the covariate mean (per task or one value).
    models, model_accuracy
        Model names (or their number) and nominal accuracies (default from 0.92 down to 0.6).
    n_prompts, temperatures
        Prompt paraphrases per task and decoding temperatures.
    prompt_sd
        SD of each (model, prompt)'s accuracy shift.
    temperature_noise
        Accuracy lost per unit of temperature.
    bias_sd
        SD of the systematic, covariate-dependent error ``b_j`` of each annotator.
    human_noise
        Probability that a human label is replaced by a random class (0 = humans see the truth).
    rng
        Seed or generator.

    Returns
    -------
    cube : xarray.Dataset
        A valid label cube (``truth`` = human labels).
    truth : xarray.Dataset
        ``true_class`` (task, item); ``effect`` (task, covariate); ``accuracy`` and ``bias`` per
        annotator; ``confusion`` (nominal confusion matrix, without the systematic part);
        ``label_prob`` is not kept, but ``expected_share`` (task, model, prompt, temperature,
        covariate, group, class) is the expected share of each label in each covariate group given
        the realised items, and ``true_share`` (task, covariate, group, class) the same for the
        true classes.
    """
    gen = np.random.default_rng(rng)
    if isinstance(models, int):
        models = [f"model{m}" for m in range(models)]
    models = [str(m) for m in models]
    n_models = len(models)
    if model_accuracy is None:
        model_accuracy = np.linspace(0.92, 0.6, n_models) if n_models > 1 else [0.85]
    model_accuracy = np.asarray(_as_list(model_accuracy, n_models, "model_accuracy"), dtype=float)
    items_per_task = [int(v) for v in _as_list(n_items, n_tasks, "n_items")]
    classes_per_task = [int(v) for v in _as_list(n_classes, n_tasks, "n_classes")]
    if min(classes_per_task) < 2:
        raise ValueError("simulate_multiverse: every task needs n_classes >= 2.")
    base = np.asarray(_as_list(base_rate, n_tasks, "base_rate"), dtype=float)
    temps = np.asarray(sorted(float(t) for t in temperatures))
    if effects is None:
        mag = gen.uniform(0.02, max_effect, size=(n_tasks, n_covariates))
        sign = gen.choice([-1.0, 1.0], size=(n_tasks, n_covariates))
        null = gen.random((n_tasks, n_covariates)) < null_share
        effects = np.where(null, 0.0, mag * sign)
    effects = np.asarray(effects, dtype=float).reshape(n_tasks, n_covariates)
    span = np.abs(effects).sum(axis=1) / 2
    if np.any(base - span <= 0) or np.any(base + span >= 1):
        raise ValueError("simulate_multiverse: base_rate ± sum(|effects|)/2 must stay inside (0, 1). "
                         "Fix: lower the effects or move base_rate towards 0.5.")

    tasks = [f"task{t}" for t in range(n_tasks)]
    prompts = [f"p{p}" for p in range(n_prompts)]
    n_item = max(items_per_task)
    n_class = max(classes_per_task)
    n_cfg = (n_models, n_prompts, len(temps))
    shape_tmi = (n_tasks, *n_cfg, n_item)

    label = np.full(shape_tmi, -1, dtype=np.int16)
    truth = np.full((n_tasks, n_item), -1, dtype=np.int16)
    true_class = np.full((n_tasks, n_item), -1, dtype=np.int16)
    item_id = np.full((n_tasks, n_item), "", dtype=object)
    text = np.full((n_tasks, n_item), "", dtype=object)
    xcov = np.zeros((n_covariates, n_tasks, n_item), dtype=bool)
    source = np.full((n_tasks, n_item), "", dtype=object)
    date = np.full((n_tasks, n_item), np.datetime64("NaT"), dtype="datetime64[ns]")
    length = np.full((n_tasks, n_item), np.nan)
    class_name = np.full((n_tasks, n_class), "", dtype=object)
    prompt_template = np.full((n_tasks, n_prompts), "", dtype=object)
    accuracy = np.zeros((n_tasks, *n_cfg))
    bias = np.zeros((n_tasks, *n_cfg, n_covariates))
    confusion = np.full((n_tasks, *n_cfg, n_class, n_class), np.nan)
    expected = np.full((n_tasks, *n_cfg, n_covariates, 2, n_class), np.nan)
    true_share = np.full((n_tasks, n_covariates, 2, n_class), np.nan)
    vocab = np.array(_VOCAB, dtype=object)
    zipf = 1.0 / np.arange(1, len(vocab) + 1)
    zipf /= zipf.sum()
    start = np.datetime64("2023-01-01T00:00:00", "ns")

    for t in range(n_tasks):
        n, k = items_per_task[t], classes_per_task[t]
        names = [f"class{c}" for c in range(k)]
        class_name[t, :k] = names
        for p in range(n_prompts):
            prompt_template[t, p] = f"Paraphrase {p}: which of {', '.join(names)} fits this text?\n{{text}}"
        x = gen.random((n_covariates, n)) < 0.5
        xcov[:, t, :n] = x
        p0 = base[t] + effects[t] @ (x - 0.5)
        rest = np.full(k - 1, 1.0 / (k - 1)) if k > 2 else np.ones(1)
        probs = np.column_stack([p0, (1 - p0)[:, None] * rest[None, :]])
        y = (gen.random(n)[:, None] > np.cumsum(probs, axis=1)).sum(axis=1).clip(0, k - 1)
        true_class[t, :n] = y
        human = y.copy()
        if human_noise > 0:
            flip = gen.random(n) < human_noise
            human[flip] = gen.integers(0, k, flip.sum())
        truth[t, :n] = human
        item_id[t, :n] = [f"t{t}-i{i}" for i in range(n)]
        n_words = gen.integers(5, 26, n)
        length[t, :n] = n_words
        markers = [[f"{names[c]}word{j}" for j in range(3)] for c in range(k)]
        for i in range(n):
            words = list(gen.choice(vocab, size=n_words[i], p=zipf))
            if gen.random() < 0.4:
                words.insert(int(gen.integers(0, len(words) + 1)), markers[y[i]][int(gen.integers(0, 3))])
            text[t, i] = " ".join(words)
        source[t, :n] = gen.choice(_SOURCES, size=n, p=[0.4, 0.3, 0.2, 0.1])
        date[t, :n] = start + (gen.random(n) * 365 * 86400).astype("timedelta64[s]")

        # annotators
        shift = gen.normal(0, prompt_sd, size=(n_models, n_prompts))
        acc = model_accuracy[:, None, None] + shift[:, :, None] - temperature_noise * temps[None, None, :]
        acc = np.clip(acc, 1.0 / k + 0.02, 0.995)
        accuracy[t] = acc
        b = gen.normal(0, bias_sd, size=(*n_cfg, n_covariates))
        b *= np.minimum(1.0, 0.9 / np.maximum(np.abs(b).sum(-1, keepdims=True), 1e-12))
        bias[t] = b
        off = (1 - acc) / (k - 1)
        conf = np.broadcast_to(off[..., None, None], (*n_cfg, k, k)).copy()
        idx = np.arange(k)
        conf[..., idx, idx] = acc[..., None]
        confusion[t, ..., :k, :k] = conf
        # per-item label distribution, shape (*cfg, n, k)
        lp = conf[..., y, :]
        push = np.abs(b) @ x.astype(float)  # (*cfg, n)
        to0 = np.clip(b, 0, None) @ x.astype(float)
        to1 = push - to0
        lp *= (1 - push)[..., None]
        lp[..., 0] += to0
        lp[..., 1] += to1
        u = gen.random((*n_cfg, n))
        lab = (u[..., None] > np.cumsum(lp, axis=-1)).sum(axis=-1).clip(0, k - 1)
        label[t, ..., :n] = lab
        g = np.stack([~x, x], axis=1).astype(float)  # (cov, group, n)
        g /= g.sum(axis=-1, keepdims=True)
        expected[t, ..., :k] = np.einsum("cgn,mptnk->mptcgk", g, lp)
        true_share[t, ..., :k] = np.einsum("cgn,nk->cgk", g, np.eye(k)[y])

    cov_names = [f"x{j}" for j in range(n_covariates)]
    data_vars = {
        "label": (("task", "model", "prompt", "temperature", "item"), label),
        "truth": (("task", "item"), truth),
        "text": (("task", "item"), text),
        "item_id": (("task", "item"), item_id),
        "class_name": (("task", "class"), class_name),
        "prompt_template": (("task", "prompt"), prompt_template),
    }
    for j, name in enumerate(cov_names):
        data_vars[f"cov_{name}"] = (("task", "item"), xcov[j], {"source_dtype": "bool"})
    data_vars["cov_source"] = (("task", "item"), source, {"source_dtype": "category", "categories": list(_SOURCES)})
    data_vars["cov_date"] = (("task", "item"), date, {"source_dtype": "datetime64[ns]"})
    data_vars["cov_length"] = (("task", "item"), length, {"source_dtype": "int64"})
    coords = {
        "task": np.array(tasks, dtype=object),
        "model": np.array(models, dtype=object),
        "prompt": np.array(prompts, dtype=object),
        "temperature": temps,
        "item": np.arange(n_item),
        "class": np.arange(n_class),
        "nominal_accuracy": ("model", model_accuracy),
    }
    cube = xr.Dataset(data_vars, coords=coords)
    cube.attrs.update({"schema_version": SCHEMA_VERSION, "created_by": "hackrisk.simulate_multiverse"})
    validate_cube(cube)

    cfg = ("task", "model", "prompt", "temperature")
    truth_ds = xr.Dataset(
        {
            "true_class": (("task", "item"), true_class),
            "effect": (("task", "covariate"), effects),
            "accuracy": (cfg, accuracy),
            "bias": ((*cfg, "covariate"), bias),
            "confusion": ((*cfg, "true_class_code", "class"), confusion),
            "expected_share": ((*cfg, "covariate", "group", "class"), expected),
            "true_share": (("task", "covariate", "group", "class"), true_share),
        },
        coords={**{k: v for k, v in coords.items() if k != "nominal_accuracy"},
                "covariate": np.array(cov_names, dtype=object),
                "group": [False, True], "true_class_code": np.arange(n_class)},
    )
    truth_ds.attrs["description"] = "Known truth behind hackrisk.simulate_multiverse's cube."
    return cube, truth_ds

