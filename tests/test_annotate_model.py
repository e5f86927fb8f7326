"""End-to-end checks with the real embedded SmolLM2-135M-Instruct."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("transformers")

from hackrisk.annotate import TaskSpec, annotate, load_default_model, parse_response  # noqa: E402
from hackrisk.annotate.backends.local import SENTINEL  # noqa: E402
from tests._data import relevance_csv  # noqa: E402

pytestmark = [pytest.mark.model, pytest.mark.xdist_group("smollm2")]

SYSTEM = "You label tweets. A tweet is relevant if it is about content moderation on social media."
FEW_SHOT = [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": "Tweet: Twitter suspended my account for no reason."},
            {"role": "assistant", "content": "relevant"},
            {"role": "user", "content": "Tweet: I had pasta for lunch today."},
            {"role": "assistant", "content": "irrelevant"},
            {"role": "user", "content": "Tweet: {text}"}]
SPEC = TaskSpec("relevance", ["relevant", "irrelevant"], {
    "few_shot": FEW_SHOT,
    "plain": "Is this tweet about content moderation? Answer relevant or irrelevant.\n\nTweet: {text}",
})


def real_items(n: int) -> pd.DataFrame:
    path = relevance_csv()
    df = pd.read_csv(path).head(n)
    return df[["id", "text", "ground_truth"]].rename(columns={"ground_truth": "truth"})


@pytest.fixture(scope="module")
def smollm2():
    import torch

    torch.set_num_threads(2)
    be = load_default_model()
    be.batch_size = 8
    return be


def test_default_model_cached_folder(smollm2):
    from hackrisk.annotate.models import default_gguf_path, default_model_dir

    folder = default_model_dir()
    cfg = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in cfg
    meta = json.loads((folder / "hackrisk_model.json").read_text())
    assert meta["source"] == default_gguf_path().name and smollm2.revision == meta["sha256"]
    t0 = time.perf_counter()
    again = load_default_model()
    assert time.perf_counter() - t0 < 15  # the cached folder, not a new GGUF conversion
    assert again.identity == smollm2.identity
    n_params = sum(p.numel() for p in smollm2.model.parameters())
    assert 130e6 < n_params < 140e6


def agreement(be, n: int) -> float:
    items = real_items(n)
    msgs = [SPEC.render("few_shot", t) for t in items["text"]]
    logp = be.score(msgs, SPEC.answer_keys, sentinel=SPEC.render("few_shot", SENTINEL))
    replies = be.generate(msgs, temperature=0.0, max_new_tokens=20)
    gen = np.array([parse_response(r, SPEC).code for r in replies])
    return float((logp.argmax(1) == gen).mean())


def test_score_and_generate_agree(smollm2):
    assert agreement(smollm2, 30) >= 0.98


@pytest.mark.slow
def test_score_and_generate_agree_200(smollm2):
    assert agreement(smollm2, 200) >= 0.98


def test_end_to_end_real(smollm2, tmp_path):
    import hackrisk

    items = real_items(8)
    store = tmp_path / "real.zarr"
    cube = annotate(items, SPEC, models=smollm2, temperatures=[0, 1.0], store=store, progress=False)
    back = hackrisk.open_cube(store, lazy=False)
    np.testing.assert_array_equal(back["label"].values, cube["label"].values)
    lab = cube["label"].values
    assert lab.shape == (1, 1, 2, 2, 8) and (lab >= 0).all()
    mass = cube["label_mass"].sel(prompt="few_shot").values
    assert (mass > 0.2).all()  # with the few-shot turns the model answers with the keys
    assert (cube["seconds"].values > 0).all()
    greedy = lab[0, 0, 0, 0]
    assert 0 < greedy.sum() < 8  # the few-shot prompt separates the items


@pytest.mark.slow
def test_concurrent_conversion(tmp_path):
    """Two processes converting the GGUF into an empty cache at once: both get a complete folder."""
    code = ("from hackrisk.annotate.models import load_default_model; m, t, r = load_default_model(); "
            "print(r)")
    env = {**os.environ, "HACKRISK_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs[0][1].decode()[-2000:]
    revs = {o[0].decode().strip().splitlines()[-1] for o in outs}
    assert len(revs) == 1
    folders = list((tmp_path / "models").iterdir())
    assert [f.name for f in folders if not f.name.startswith(".")] == ["smollm2-135m-instruct"]
    assert not [f for f in folders if f.is_dir() and f.name.startswith(".")]  # no leftover temp folder
