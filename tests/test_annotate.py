"""Annotation engine logic, on a tiny random Llama built from the SmolLM2 tokenizer."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch  # noqa: E402

from hackrisk.annotate import (  # noqa: E402
    STATUS_EMPTY,
    STATUS_REPLACED,
    STATUS_TRUNCATED,
    TaskSpec,
    annotate,
    labels_from_logp,
    paraphrase,
    parse_response,
)
from hackrisk.annotate.backends.local import SENTINEL, TransformersBackend, key_forms  # noqa: E402
from hackrisk.annotate.models import tiny_random_model  # noqa: E402
from tests._data import embedded_tokenizer, relevance_csv  # noqa: E402

torch.set_num_threads(1)


def real_items(n: int) -> pd.DataFrame:
    path = relevance_csv()
    df = pd.read_csv(path).head(n)
    return df[["id", "text", "ground_truth"]].rename(columns={"id": "item_id", "ground_truth": "truth"})


@pytest.fixture(scope="module")
def tokenizer():
    return embedded_tokenizer()


def tiny_model(tok, seed: int = 0):
    return tiny_random_model(seed=seed, tokenizer=tok)[0]


@pytest.fixture(scope="module")
def tiny(tokenizer):
    return TransformersBackend(tiny_model(tokenizer), tokenizer, name="tiny", batch_size=4, max_length=256)


SPEC = TaskSpec("relevance", ["relevant", "irrelevant", "spam stuff"],
                {"a": "Is this tweet about content moderation? Tweet: {text}\nAnswer with {labels}.",
                 "b": [{"role": "system", "content": "You label tweets."},
                       {"role": "user", "content": "{text}"},
                       {"role": "assistant", "content": "Options:\n{options}"},
                       {"role": "user", "content": "Which option? Answer {keys}."}]})
TEXTS = ["hello world", "Twitter suspended my account again!! #censorship", "x",
         "RT @foo: some longer text here about things and moderation policies", "ünïcödé 🙂 emoji"]


def brute_force(be, msgs, keys):
    out = np.full((len(msgs), len(keys)), -np.inf)
    for i, m in enumerate(msgs):
        ids = be._encode(be.render(m))
        for k, key in enumerate(keys):
            for f in key_forms(key):
                fi = be.tok(f, add_special_tokens=False)["input_ids"]
                with torch.no_grad():
                    lg = torch.log_softmax(be.model(torch.tensor([ids + fi])).logits[0].double(), -1)
                out[i, k] = np.logaddexp(out[i, k], sum(lg[len(ids) - 1 + j, t].item() for j, t in enumerate(fi)))
    return out


@pytest.mark.parametrize("prompt", ["a", "b"])
def test_score_equals_full_sequence_logprob(tiny, prompt):
    msgs = [SPEC.render(prompt, t) for t in TEXTS]
    fast = tiny.score(msgs, SPEC.answer_keys, sentinel=SPEC.render(prompt, SENTINEL))
    plain = tiny.score(msgs, SPEC.answer_keys, reuse_prefix=False)
    ref = brute_force(tiny, msgs, SPEC.answer_keys)
    assert np.isfinite(ref).all()
    np.testing.assert_allclose(fast, ref, atol=2e-4)
    np.testing.assert_allclose(plain, ref, atol=2e-4)
    # multi-token keys really are multi-token, and the distributions differ between items
    assert max(len(tiny.tok(k, add_special_tokens=False)["input_ids"]) for k in SPEC.answer_keys) > 1
    assert np.ptp(ref[:, 0]) > 1e-3


def test_letter_keys_and_collisions(tiny, tokenizer):
    spec = TaskSpec("t", ["yes", "no"], ["{options}\n{text}"], keys="letters")
    assert spec.answer_keys == ("A", "B")
    lp = tiny.score([spec.render("p0", "abc")], spec.answer_keys)
    assert lp.shape == (1, 2) and np.isfinite(lp).all()
    with pytest.raises(ValueError, match="collide after tokenisation"):
        tiny.score([spec.render("p0", "abc")], ["Yes", "yes"])


def test_labels_from_logp_sampling_matches_tempered_distribution():
    rng = np.random.default_rng(1)
    n = 40_000
    p = np.array([0.6, 0.3, 0.1])
    logp = np.tile(np.log(p) - 1.7, (n, 1))  # unnormalised: only ratios matter
    temps = [0.0, 0.5, 1.0, 2.0]
    u = rng.random((len(temps), n))
    lab, prob = labels_from_logp(logp, temps, u)
    assert (lab[0] == 0).all()
    for j, t in enumerate(temps[1:], start=1):
        q = p ** (1 / t) / (p ** (1 / t)).sum()
        freq = np.bincount(lab[j], minlength=3) / n
        se = np.sqrt(q * (1 - q) / n)
        assert (np.abs(freq - q) < 4.5 * se).all(), (t, freq, q)
        np.testing.assert_allclose(prob[j, 0], q, rtol=1e-5)
    # rows without an answer stay -1
    lab2, prob2 = labels_from_logp(np.full((2, 3), -np.inf), [0.0, 1.0], rng.random((2, 2)))
    assert (lab2 == -1).all() and np.isnan(prob2).all()


@pytest.mark.parametrize("reply,code,rule", [
    ("Relevant", 0, "name"), ("The tweet is irrelevant.", 1, "name"), ("**IRRELEVANT**", 1, "name"),
    ("relevant or irrelevant, hard to say", 0, "start"), ("I cannot tell", -2, "outside"), ("", -2, "outside"),
    ("spam stuff!", 2, "name"), ("relevance", -2, "outside"),
])
def test_parse_response_names(reply, code, rule):
    got = parse_response(reply, SPEC)
    assert (got.code, got.rule) == (code, rule)


@pytest.mark.parametrize("reply,code,rule", [
    ("B", 1, "key"), ("B) irrelevant-ish", 1, "key"), ("(A).", 0, "key"), ("The answer is B", 1, "token"),
    ("a thing", -2, "outside"), ("A or B", 0, "key"), ("I pick C", 2, "token"), ("no idea", 1, "name"),
])
def test_parse_response_keys(reply, code, rule):
    spec = TaskSpec("t", ["yes", "no", "maybe"], ["{options} {text}"], keys="letters")
    got = parse_response(reply, spec)
    assert (got.code, got.rule) == (code, rule)


def test_taskspec_errors():
    with pytest.raises(ValueError, match=r"no \{text\}"):
        TaskSpec("t", ["a", "b"], ["no placeholder here"])
    with pytest.raises(ValueError, match="distinct"):
        TaskSpec("t", ["Yes", "yes "], ["{text}"])
    with pytest.raises(ValueError, match="at least two"):
        TaskSpec("t", ["a"], ["{text}"])
    with pytest.raises(ValueError, match="keys"):
        TaskSpec("t", ["a", "b"], ["{text}"], keys=["x", "X"])
    with pytest.raises(ValueError, match="literal braces"):
        TaskSpec("t", ["a", "b"], ["{text} {"])
    spec = TaskSpec("t", ["a", "b"], ["{text} from {source}"])
    assert spec.fields() == {"source"}
    with pytest.raises(ValueError, match="source"):
        annotate(["x"], spec, models=object())


class FakeParaphraser:
    def __init__(self, replies):
        self.replies = list(replies)

    def generate(self, msgs, **kw):
        out, self.replies = self.replies[: len(msgs)], self.replies[len(msgs):]
        return out + [""] * (len(msgs) - len(out))


def test_paraphrase_rejects_lost_placeholders_and_keys():
    spec = TaskSpec("t", ["relevant", "irrelevant"], ["Tweet: {text}. Answer relevant or irrelevant."])
    tpl = spec.template_string("p0")
    fake = FakeParaphraser([
        "Here is the tweet: {text}. Say relevant or irrelevant.",  # ok
        "Here is the tweet. Say relevant or irrelevant.",  # lost {text}
        "Tweet {text} from {user}: relevant or irrelevant?",  # new placeholder
        "Text: {text}. Is it pertinent?",  # lost keys
        "Here is the tweet: {text}. Say relevant or irrelevant.",  # duplicate
        "Consider {text}. Reply relevant or irrelevant.",  # ok
    ])
    out = paraphrase(tpl, spec, fake, n=2, max_tries=5)
    assert out == ["Here is the tweet: {text}. Say relevant or irrelevant.",
                   "Consider {text}. Reply relevant or irrelevant."]
    assert paraphrase(tpl, spec, FakeParaphraser(["nothing {"]), n=1, max_tries=1) == []


class Counting:
    """Wraps a backend and counts the items it is asked to score or generate."""

    def __init__(self, be):
        self.be, self.name, self.identity, self.batch_size = be, be.name, be.identity, be.batch_size
        self.n = 0

    def prepare_texts(self, *a, **k):
        return self.be.prepare_texts(*a, **k)

    def score(self, msgs, keys, **k):
        self.n += len(msgs)
        return self.be.score(msgs, keys, **k)

    def generate(self, msgs, **k):
        self.n += len(msgs)
        return self.be.generate(msgs, **k)


def test_annotate_store_roundtrip_and_cache(tiny, tmp_path):
    import hackrisk

    items = real_items(12)
    be = Counting(tiny)
    store = tmp_path / "cube.zarr"
    cube = annotate(items, SPEC, models=be, temperatures=[0, 0.7, 1.5], store=store, rng=3, progress=False)
    assert be.n == 2 * 12  # one pass per item and prompt, whatever the number of temperatures
    back = hackrisk.open_cube(store, lazy=False)
    np.testing.assert_array_equal(back["label"].values, cube["label"].values)
    np.testing.assert_allclose(back["prob"].values, cube["prob"].values)
    assert (cube["label"].values >= 0).all()
    assert cube["seconds"].notnull().all() and (cube["outside_share"] == 0).all()
    assert list(cube["temperature"].values) == [0, 0.7, 1.5]
    # greedy = arg-max of prob; prob rows sum to one
    np.testing.assert_array_equal(cube["label"].values[..., 0, :], cube["prob"].values[..., 0, :, :].argmax(-1))
    np.testing.assert_allclose(cube["prob"].sum("class"), 1, rtol=1e-5)
    # truth was carried over from the items
    assert (cube["truth"].values[0] == (items["truth"] == "irrelevant").astype(int).values).all()
    # re-run: everything from the cache, identical cube
    be.n = 0
    again = annotate(items, SPEC, models=be, temperatures=[0, 0.7, 1.5], store=store, rng=3, progress=False)
    assert be.n == 0
    np.testing.assert_array_equal(again["label"].values, cube["label"].values)
    # another seed changes only sampled temperatures
    other = annotate(items, SPEC, models=be, temperatures=[0, 0.7, 1.5], rng=4, progress=False,
                     cache=tmp_path / "cube.zarr.cache.sqlite")
    assert be.n == 0
    np.testing.assert_array_equal(other["label"].values[..., 0, :], cube["label"].values[..., 0, :])
    with pytest.raises(ValueError, match="another output folder / store path"):
        annotate(items, SPEC, models=be, temperatures=[0, 1.0], store=store, progress=False)


def test_generate_mode(tiny):
    items = real_items(6)
    cube = annotate(items, SPEC, models=tiny, prompts=["a"], temperatures=[0, 1.0], mode="generate",
                    max_new_tokens=3, progress=False)
    lab = cube["label"].values
    assert lab.shape == (1, 1, 1, 2, 6) and (lab != -1).all()
    np.testing.assert_allclose(cube["outside_share"].values, (lab == -2).mean(-1))
    assert "prob" not in cube


def test_bad_inputs(tiny, tmp_path):
    with pytest.raises(ValueError, match="empty or whitespace"):
        annotate(["fine", "   "], SPEC, models=tiny, progress=False)
    long_text = "moderation " * 400
    cube = annotate(pd.DataFrame({"item_id": ["e", "b", "l", "ok"],
                                  "text": ["", b"caf\xe9 bad bytes", long_text, "fine"]}),
                    SPEC, models=tiny, prompts=["a"], on_empty="annotate", progress=False)
    st = cube["annotate_status"].values[0, 0, 0, 0]
    assert list(st & STATUS_EMPTY) == [STATUS_EMPTY, 0, 0, 0]
    assert list(st & STATUS_REPLACED) == [0, STATUS_REPLACED, 0, 0]
    assert list(st & STATUS_TRUNCATED) == [0, 0, STATUS_TRUNCATED, 0]
    assert (cube["label"].values >= 0).all()
    assert "\ufffd" in cube["text"].values[0, 1]
    with pytest.raises(ValueError, match="does not exist"):
        annotate(["x"], SPEC, models=str(tmp_path / "no-such-model"), progress=False)
    with pytest.raises(ValueError, match="mode"):
        annotate(["x"], SPEC, models=tiny, mode="chat", progress=False)
    with pytest.raises(ValueError, match="no prompt"):
        annotate(["x"], SPEC, models=tiny, prompts=["zzz"], progress=False)


CHILD = textwrap.dedent("""
    import sys, time, pandas as pd, torch
    torch.set_num_threads(1)
    sys.path[:0] = [sys.argv[4], sys.argv[4] + "/.."]
    from test_annotate import KILL_SPEC, load_folder
    from hackrisk.annotate import annotate
    folder, store, delay = sys.argv[1], sys.argv[2], float(sys.argv[3])
    be = load_folder(folder)
    score = be.score
    def slow(*a, **k):
        time.sleep(delay)
        return score(*a, **k)
    be.score = slow
    items = pd.read_pickle(folder + "/items.pkl")
    annotate(items, KILL_SPEC, models=be, temperatures=[0, 0.5, 1.0], store=store, rng=7, progress=False)
""")
KILL_SPEC = TaskSpec("relevance", ["relevant", "irrelevant"],
                     ["Tweet: {text}\nRelevant?", "Is this about moderation: {text}"])


def load_folder(folder):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return TransformersBackend(AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder),
                               name="tiny", batch_size=4, max_length=256)


def test_kill_and_resume(tokenizer, tmp_path):
    """SIGKILL the runner at random moments; the resumed cube equals an uninterrupted run."""
    import hackrisk

    folder = tmp_path / "tiny"
    tiny_model(tokenizer, seed=1).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    items = real_items(40)
    items.to_pickle(folder / "items.pkl")
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    store = tmp_path / "killed.zarr"
    db = Path(str(store) + ".cache.sqlite")

    def cached() -> int:
        try:
            with sqlite3.connect(db, timeout=1) as con:
                return con.execute("SELECT COUNT(*) FROM result").fetchone()[0]
        except sqlite3.Error:
            return -1

    rng = np.random.default_rng(0)
    for target in (0, 40):  # right after the store appears; in the middle of the second prompt
        target += int(rng.integers(0, 6))
        proc = subprocess.Popen([sys.executable, str(script), str(folder), str(store), "0.05",
                                 str(Path(__file__).parent)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        t0 = time.time()
        while time.time() - t0 < 240 and proc.poll() is None:
            if db.exists() and cached() >= target:
                break
            time.sleep(0.02)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        proc.kill()  # SIGKILL, no clean-up
        proc.wait()
    n_done = cached()
    assert 0 < n_done < 80 and n_done % 4 == 0  # whole batches of 4 were committed, no partial batch
    be = Counting(load_folder(folder))
    resumed = annotate(items, KILL_SPEC, models=be, temperatures=[0, 0.5, 1.0], store=store, rng=7,
                       progress=False)
    assert be.n == 80 - n_done  # only the missing items were computed
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM result").fetchone() == (80, 80)
    ref = annotate(items, KILL_SPEC, models=load_folder(folder), temperatures=[0, 0.5, 1.0],
                   store=tmp_path / "ref.zarr", rng=7, progress=False, cache=None)
    disk = hackrisk.open_cube(store, lazy=False)
    for got in (resumed, disk):
        np.testing.assert_array_equal(got["label"].values, ref["label"].values)
        np.testing.assert_allclose(got["prob"].values, ref["prob"].values, rtol=1e-5)
    assert (disk["label"].values >= 0).all()
