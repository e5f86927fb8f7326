"""Real LLM label cubes for the calibration study of the prospective risk (slow to build; cached).

Each cube holds a seeded subset of a human-labelled task annotated by the embedded
SmolLM2-135M-Instruct (``mode="score"``: one forward pass per item and prompt gives all three
temperatures 0, 0.7, 1) as ``make demo`` annotates: the VADER tweets cube IS the demo's (its
study file, 300 items, 5 prompts, seed); the paper's tasks use 150 items and the first 2 of the
5 paraphrases below (see ``SIZES``).  Building one costs items x prompts forward passes on the
CPU (about an hour of a shared 2-core machine for all four); the finished cube is kept as
netCDF under ``<hackrisk cache>/calibration/`` (keyed by the task, the items and the prompts), and
the annotation store next to it lets an interrupted build resume.

Run ``python -m tests._annotated_cubes`` to build all of them once (in the background).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import xarray as xr

log = logging.getLogger(__name__)

TEMPERATURES = (0.0, 0.7, 1.0)
#: (items, prompts) per task.  The VADER tweets are the demo's 300 items under its 5 prompts; the
#: paper's tasks are kept to 150 items under the first 2 prompts so that building all four cubes
#: stays within about an hour of a shared 2-core CPU (annotation is the costly step).
SIZES = {"vader_tweets": (300, 5), "relevance_tweets23": (150, 2), "stance_tweets": (150, 2),
         "framesI_tweets": (150, 2)}

# Five paraphrases per task of the paper, written for this study (the registry has three for some)
_CM = ("Content moderation means that social media platforms screen, flag, label, suspend or "
       "remove what users post, following their rules or government regulation.")
PROMPTS: dict[str, list[str]] = {
    "relevance_tweets23": [
        _CM + "\nIs the following tweet about content moderation? Answer with one word, "
        "'relevant' or 'irrelevant'.\n\nTweet: {text}\nAnswer:",
        "Classify the tweet as relevant if it discusses content moderation (platform rules, bans, "
        "suspensions, flagging, regulation of online content), otherwise irrelevant.\n"
        "Tweet: {text}\nLabel (relevant/irrelevant):",
        "{text}\n\nDoes this tweet talk about content moderation on social media? "
        "Reply 'relevant' or 'irrelevant'.",
        "Tweet: {text}\nIs this tweet relevant or irrelevant to the topic of content moderation?\n"
        "Answer:",
        "Topic: content moderation on social media.\nText: {text}\nRelevance (relevant or "
        "irrelevant):",
    ],
    "stance_tweets": [
        "Section 230 is a US law that shields internet platforms from liability for what their "
        "users post. What is the stance of the following tweet towards Section 230? Answer with "
        "one of: in favor of, against, neutral.\n\nTweet: {text}\nStance:",
        "Tweet: {text}\nDoes the author support Section 230 (in favor of), oppose it (against), "
        "or neither (neutral)?\nAnswer:",
        "Classify the stance of this tweet on Section 230 as 'in favor of', 'against' or "
        "'neutral'.\n{text}\nLabel:",
        "{text}\n\nIs this tweet in favor of, against, or neutral about Section 230?",
        "Stance detection. Target: Section 230. Possible answers: in favor of, against, neutral.\n"
        "Input: {text}\nOutput:",
    ],
    "framesI_tweets": [
        _CM + "\nDoes the following tweet present content moderation as a problem (e.g. "
        "censorship, a threat to free speech), as a solution (e.g. protection from hate speech, "
        "spam or misinformation), or neither (neutral)? Answer with one word: problem, solution "
        "or neutral.\n\nTweet: {text}\nAnswer:",
        "Tweet: {text}\nHow does this tweet frame content moderation? "
        "Reply 'problem', 'solution' or 'neutral'.",
        "Label the framing of content moderation in this tweet as problem, solution or neutral.\n"
        "{text}\nLabel:",
        "Read the tweet. Is content moderation described as a problem, a solution, or neither "
        "(neutral)?\nTweet: {text}\nFrame:",
        "Framing analysis. Possible answers: problem, solution, neutral.\nInput: {text}\nOutput:",
    ],
}
#: The covariate of each task used for its covariate (temporal) groupings; the other columns of
#: these files are human codes, not covariates.
COVARIATES = {"relevance_tweets23": ["created_at"], "stance_tweets": ["created_at"],
              "framesI_tweets": ["Date"], "vader_tweets": ["sd_rating", "n_raters"]}
TASKS = ("vader_tweets", "relevance_tweets23", "stance_tweets", "framesI_tweets")


def _data_dir() -> Path:
    from tests._data import shared_data_dir

    return shared_data_dir()


def _task_items(name: str, n_items: int, n_prompts: int):
    """(TaskData with a seeded subset of items, prompts) of one task."""
    from dataclasses import replace

    from hackrisk import datasets

    if name == "vader_tweets":
        from hackrisk.pipeline import load_items
        from hackrisk.study import parse_study

        text = (Path(__file__).parents[1] / "hackrisk" / "studies" / "demo.toml").read_text("utf-8")
        study = parse_study(text, _cache() / "demo.toml")
        from dataclasses import replace as rep

        study = rep(study, data=dict(study.data, n_items=n_items, source=str(_data_dir())))
        td = load_items(study)
        return td, list(td.prompts)[:n_prompts]
    path = _data_dir() / "llmhacking" / f"{name}.csv.gz"
    td = datasets.load_table(path, text="text", label="ground_truth", id="id",
                             covariates=COVARIATES[name], task=name)
    items = td.items
    if n_items < len(items):
        gen = np.random.default_rng(0)
        items = items.iloc[np.sort(gen.choice(len(items), n_items, replace=False))]
    return replace(td, items=items.reset_index(drop=True)), PROMPTS[name][:n_prompts]


def _cache() -> Path:
    from hackrisk._files import cache_root

    path = cache_root() / "calibration"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cube_path(name: str, n_items: int, n_prompts: int) -> tuple[Path, object, list[str]]:
    td, prompts = _task_items(name, n_items, n_prompts)
    key = hashlib.sha256(json.dumps(
        {"items": td.items["item_id"].astype(str).tolist(), "prompts": prompts,
         "classes": list(td.classes), "temperatures": TEMPERATURES,
         "covariates": COVARIATES[name]}).encode()).hexdigest()[:12]
    return _cache() / f"{name}-{n_items}-{key}", td, prompts


def annotated_cube(name: str, n_items: int | None = None, n_prompts: int | None = None, *,
                   build: bool = False) -> xr.Dataset | None:
    """The cached annotated cube of ``name``; ``None`` when not built yet and ``build`` is False."""
    from hackrisk.io import open_cube, save_cube

    n_items = SIZES[name][0] if n_items is None else n_items
    n_prompts = SIZES[name][1] if n_prompts is None else n_prompts
    base, td, prompts = cube_path(name, n_items, n_prompts)
    done = base.with_suffix(".nc")
    if done.exists():
        return open_cube(done, lazy=False)
    if not build:
        return None
    from hackrisk.annotate import TaskSpec, annotate

    items = td.items
    keep = ["item_id", "text", "truth", *[c for c in COVARIATES[name] if c in items.columns]]
    spec = TaskSpec(name, list(td.classes), prompts)
    cube = annotate(items[keep], spec, temperatures=TEMPERATURES, mode="score", rng=0,
                    batch_size=16, store=base.with_suffix(".zarr"), progress=False)
    cube = cube.assign_coords(model=["smollm2-135m"])
    cube.attrs["annotated_by"] = "SmolLM2-135M-Instruct (embedded), mode=score, rng=0"
    save_cube(cube, done)
    return open_cube(done, lazy=False)


if __name__ == "__main__":  # pragma: no cover
    import sys
    import time

    logging.basicConfig(level=logging.INFO)
    for task in sys.argv[1:] or TASKS:
        t0 = time.perf_counter()
        c = annotated_cube(task, build=True)
        print(task, dict(c["label"].sizes), f"{time.perf_counter() - t0:.0f} s", flush=True)  # noqa: T201
