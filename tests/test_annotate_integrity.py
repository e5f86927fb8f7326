"""Nothing silently wrong in annotation (issue 17, cases 1 and 2), on a pure-Python fake backend.

* a re-run whose items changed re-annotates exactly the changed items, and the store then holds the
  new texts and human labels; changed options stop with a named error;
* failed requests are failures: label -1, status bit 8, never cached, asked again next run; a first
  batch that fails entirely stops the run before any label is stored.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

import hackrisk
from hackrisk.annotate import STATUS_FAILED, ResultCache, TaskSpec, annotate
from hackrisk.annotate.runner import (
    AnnotationError,
    StoreMismatchError,
    item_fingerprints,
    missing_labels,
)

SPEC = TaskSpec("t", ["neg", "pos"], {"p0": "Label: {text}", "p1": "Sentiment of {text}?"})


class FakeBackend:
    """Deterministic log-probabilities from a hash of the prompt; ``fail`` decides failures."""

    def __init__(self, name="fake", fail=None, batch_size=4):
        self.name, self.identity, self.batch_size = name, f"fake:{name}", batch_size
        self.fail = fail or (lambda text: False)
        self.asked: list[str] = []
        self.last_failure = None

    def prepare_texts(self, texts, messages_fn=None, **_):
        return list(texts), np.zeros(len(texts), dtype=bool)

    def _text(self, msgs):
        return msgs[-1]["content"]

    def score(self, messages_list, keys, **_):
        out = []
        for msgs in messages_list:
            text = self._text(msgs)
            self.asked.append(text)
            if self.fail(text):
                self.last_failure = "HTTP 400: injected"
                out.append(np.full(len(keys), np.nan))
                continue
            h = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
            p = 0.2 + 0.6 * (h % 1000) / 1000
            out.append(np.log([p, 1 - p]))
        return np.array(out)

    def generate(self, messages_list, **_):
        out = []
        for msgs in messages_list:
            self.asked.append(self._text(msgs))
            if self.fail(self._text(msgs)):
                self.last_failure = "HTTP 400: injected"
            out.append(None if self.fail(self._text(msgs)) else "pos")
        return out


def items(n=10):
    return pd.DataFrame({"item_id": [f"i{k:02d}" for k in range(n)], "text": [f"text number {k}" for k in range(n)],
                         "truth": ["neg", "pos"] * (n // 2)})


def test_changed_items_are_annotated_again_exactly(tmp_path):
    store = tmp_path / "c.zarr"
    be = FakeBackend()
    first = annotate(items(), SPEC, models=be, temperatures=[0, 1], store=store, progress=False)
    assert len(be.asked) == 20  # 10 items x 2 prompts
    changed = items()
    changed.loc[3, "text"] = "a brand new text"
    changed.loc[5, "truth"] = "neg"  # human label edited: no new request needed, but the store must follow
    be.asked.clear()
    cube = annotate(changed, SPEC, models=be, temperatures=[0, 1], store=store, progress=False)
    assert sorted(be.asked) == sorted(["Label: a brand new text", "Sentiment of a brand new text?"])
    back = hackrisk.open_cube(store, lazy=False)
    assert back["text"].values[0, 3] == "a brand new text"  # was: the store kept the old text ...
    assert back["truth"].values[0, 5] == 0  # ... and the old human label
    np.testing.assert_array_equal(back["label"].values, cube["label"].values)
    keep = np.arange(10) != 3
    np.testing.assert_array_equal(back["label"].values[..., keep], first["label"].values[..., keep])
    assert list(back["item_fingerprint"].values[0]) == list(item_fingerprints(changed))
    # nothing changed: resumed from the cache, no request
    be.asked.clear()
    annotate(changed, SPEC, models=be, temperatures=[0, 1], store=store, progress=False)
    assert be.asked == []
    # options that shape labels changed: a named error, the store is left alone
    other = TaskSpec("t", ["neg", "pos"], {"p0": "Classify: {text}", "p1": "Sentiment of {text}?"})
    with pytest.raises(StoreMismatchError, match="templates changed.*Fix: use another output folder"):
        annotate(changed, other, models=be, temperatures=[0, 1], store=store, progress=False)
    with pytest.raises(StoreMismatchError, match="seed changed"):
        annotate(changed, SPEC, models=be, temperatures=[0, 1], store=store, progress=False, rng=5)
    assert hackrisk.open_cube(store, lazy=False)["text"].values[0, 3] == "a brand new text"


def test_failed_requests_are_failures_never_answers(tmp_path):
    store = tmp_path / "c.zarr"
    flaky = FakeBackend(fail=lambda text: "number 7" in text or "number 2" in text)
    cube = annotate(items(), SPEC, models=flaky, temperatures=[0, 1], store=store, progress=False)
    lab, st = cube["label"].values[0], cube["annotate_status"].values[0]
    assert (lab[..., [2, 7]] == -1).all() and (st[..., [2, 7]] & STATUS_FAILED).all()
    assert (lab[..., [0, 1, 3, 4, 5, 6, 8, 9]] >= 0).all()
    miss = missing_labels(cube)
    assert len(miss) == 4 and (miss["n_missing"] == 2).all()  # 2 prompts x 2 temperatures
    assert len(ResultCache(tmp_path / "c.zarr.cache.sqlite")) == 16  # failures are not cached
    # the next run asks exactly the failed items again, and fills them in
    fixed = FakeBackend()
    cube = annotate(items(), SPEC, models=fixed, temperatures=[0, 1], store=store, progress=False)
    assert sorted(fixed.asked) == sorted(f"{t}" for p in ("Label: {}", "Sentiment of {}?")
                                         for t in (p.format("text number 2"), p.format("text number 7")))
    assert len(missing_labels(cube)) == 0
    assert len(missing_labels(hackrisk.open_cube(store, lazy=False))) == 0


@pytest.mark.parametrize("mode", ["score", "generate"])
def test_systematic_rejection_stops_before_any_label(tmp_path, mode):
    store = tmp_path / "c.zarr"
    dead = FakeBackend(fail=lambda text: True)
    with pytest.raises(AnnotationError, match="every request of the first batch.*HTTP 400: injected"):
        annotate(items(), SPEC, models=dead, temperatures=[0, 1], store=store, progress=False, mode=mode)
    assert len(dead.asked) == 4  # one batch, then stop
    assert (hackrisk.open_cube(store, lazy=False)["label"].values == -1).all()
    assert len(ResultCache(tmp_path / "c.zarr.cache.sqlite")) == 0
    good = FakeBackend()
    cube = annotate(items(), SPEC, models=good, temperatures=[0, 1], store=store, progress=False, mode=mode)
    assert (cube["label"].values != -1).all()


def test_two_runs_on_one_store_at_once(tmp_path):
    from hackrisk.io import StoreLockedError, store_lock

    store = tmp_path / "c.zarr"
    annotate(items(), SPEC, models=FakeBackend(), store=store, progress=False)
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", "import time; from hackrisk.io import store_lock\n"
                               f"with store_lock({str(store)!r}):\n    print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreLockedError, match="being written by another run"):
            annotate(items(), SPEC, models=FakeBackend(), store=store, progress=False)
    finally:
        holder.kill()
        holder.wait()
    with store_lock(store):
        pass


def test_json_braces_in_a_template_get_the_double_brace_hint():
    with pytest.raises(ValueError, match=r'\{"label"\} is not a placeholder .*Fix: write literal braces as \{\{ and \}\}'):
        TaskSpec("t", ["a", "b"], ['Reply as JSON {"label": "a"}: {text}'])
    spec = TaskSpec("t", ["a", "b"], ['Reply as JSON {{"label": "a"}}: {text}'])
    assert spec.render("p0", "hi")[0]["content"] == 'Reply as JSON {"label": "a"}: hi'


def test_integer_truth_with_digit_named_labels_is_ambiguous():
    spec = TaskSpec("likert", ["1", "2", "3"], ["Rate: {text}"])
    df = pd.DataFrame({"text": ["a", "b", "c"], "truth": [1, 2, 3]})
    with pytest.raises(ValueError, match="named like integers.*Fix: give truth as class names"):
        annotate(df, spec, models=FakeBackend(), progress=False)
    cube = annotate(df.assign(truth=["1", "2", "3"]), spec, models=FakeBackend(), progress=False)
    assert list(cube["truth"].values[0]) == [0, 1, 2]  # "1" is the class named "1", never code 1
