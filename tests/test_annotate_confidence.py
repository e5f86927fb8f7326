"""Verbalized confidence: the follow-up question, its strict parser and the ``confidence`` variable.

Scripted backends give replies whose confidence is known, in process and through the OpenAI-compatible
backend talking to :mod:`hackrisk.annotate.serve` on 127.0.0.1; the tiny random Llama checks the
local backend's chat wiring (its answers are noise, so most are rejected, none guessed).
"""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

from hackrisk.annotate import CONFIDENCE_QUESTION, TaskSpec, annotate, parse_confidence
from hackrisk.annotate.runner import StoreMismatchError
from hackrisk.annotate.task import confidence_messages
from tests._data import embedded_tokenizer

SPEC = TaskSpec("rel", ["relevant", "irrelevant"], ["Tweet: {text}\nAnswer relevant or irrelevant."])

# item text -> (label reply, confidence reply, parsed confidence or None)
SCRIPT = {
    "t0": ("relevant", "85", 0.85),
    "t1": ("irrelevant", "Confidence: 40%", 0.40),
    "t2": ("relevant", "0.7", None),  # ambiguous: a probability or 0.7 %?
    "t3": ("irrelevant", "very sure", None),
    "t4": ("Relevant.", "100/100", 1.0),
    "t5": ("irrelevant", "80-90", None),
    "t6": ("relevant", "150", None),
    "t7": ("irrelevant", "I would say 0 out of 100", 0.0),
}
ITEMS = pd.DataFrame({"item_id": [f"i{k}" for k in range(len(SCRIPT))], "text": list(SCRIPT)})


@pytest.mark.parametrize("reply, value, rule", [
    ("85", 0.85, "number"), ("Confidence: 85%", 0.85, "number"), ("**95**", 0.95, "number"),
    ("90/100", 0.90, "number"), ("90 out of 100", 0.90, "number"), ("0", 0.0, "number"),
    ("100", 1.0, "number"), ("70.5", 0.705, "number"), ("0.5%", 0.005, "number"),
    ("GPT-4 says 70", 0.70, "number"),
    ("0.85", None, "ambiguous"), ("80-90", None, "several"), ("85,5", None, "several"),
    ("3 out of 5", None, "several"), ("-5", None, "range"), ("101", None, "range"),
    ("I am sure", None, "none"), ("", None, "none"), (None, None, "none"), ("GPT-4", None, "none"),
])
def test_parse_confidence_accepts_one_number_and_rejects_the_rest(reply, value, rule):
    got = parse_confidence(reply)
    assert got.rule == rule
    if value is None:
        assert got.value is None
    else:
        assert got.value == pytest.approx(value)


class Scripted:
    """A backend answering from :data:`SCRIPT`; counts the chats it is asked to complete."""

    name = identity = "scripted"
    batch_size = 3

    def __init__(self, fail_text: str | None = None):
        self.n = 0
        self.fail_text = fail_text  # the confidence request of this item fails (None reply)
        self.seen: list[list[dict[str, str]]] = []

    def prepare_texts(self, texts, *a, **k):
        return list(texts), np.zeros(len(texts), dtype=bool)

    def score(self, msgs, keys, **k):  # pragma: no cover - not used
        raise AssertionError("score must not be called in generate mode")

    def generate(self, msgs_list, **kw):
        self.n += len(msgs_list)
        out = []
        for msgs in msgs_list:
            self.seen.append(list(msgs))
            text = next(t for t in SCRIPT if msgs[0]["content"].startswith(f"Tweet: {t}\n"))
            if msgs[-1]["content"] == CONFIDENCE_QUESTION:
                assert msgs[-2] == {"role": "assistant", "content": SCRIPT[text][0]}
                out.append(None if text == self.fail_text else SCRIPT[text][1])
            else:
                assert len(msgs) == 1
                out.append(SCRIPT[text][0])
        return out


def expected() -> np.ndarray:
    return np.array([np.nan if c is None else c for _, _, c in SCRIPT.values()], dtype=np.float32)


def test_confidence_stored_missing_never_guessed_and_cached(tmp_path):
    import hackrisk

    be = Scripted()
    store = tmp_path / "c.zarr"
    cube = annotate(ITEMS, SPEC, models=be, mode="generate", temperatures=[0, 1.0], confidence=True,
                    store=store, progress=False)
    assert be.n == 2 * 2 * len(SCRIPT)  # a reply and a follow-up per item and temperature
    conf = cube["confidence"]
    assert conf.dtype == np.float32 and conf.dims == cube["label"].dims
    for t in range(2):
        np.testing.assert_array_equal(conf.values[0, 0, 0, t], expected())
    n_bad = sum(c is None for _, _, c in SCRIPT.values())
    np.testing.assert_allclose(cube["confidence_unparseable"].values, n_bad / len(SCRIPT))
    assert cube["confidence"].attrs["question"] == CONFIDENCE_QUESTION
    np.testing.assert_array_equal(cube["label"].values[0, 0, 0, 0], [0, 1, 0, 1, 0, 1, 0, 1])
    back = hackrisk.open_cube(store, lazy=False)
    np.testing.assert_array_equal(back["confidence"].values, conf.values)
    # a re-run answers everything from the cache
    be.n = 0
    again = annotate(ITEMS, SPEC, models=be, mode="generate", temperatures=[0, 1.0], confidence=True,
                     store=store, progress=False)
    assert be.n == 0
    np.testing.assert_array_equal(again["confidence"].values, conf.values)
    # the store was made with confidence: a run without it is another option set
    with pytest.raises(StoreMismatchError, match="confidence_question"):
        annotate(ITEMS, SPEC, models=be, mode="generate", temperatures=[0, 1.0], store=store, progress=False)


def test_failed_follow_up_is_missing_and_asked_again(tmp_path):
    cache = tmp_path / "c.sqlite"
    be = Scripted(fail_text="t0")
    cube = annotate(ITEMS, SPEC, models=be, mode="generate", confidence=True, progress=False, cache=cache)
    assert np.isnan(cube["confidence"].values[0, 0, 0, 0, 0])
    assert cube["label"].values[0, 0, 0, 0, 0] == 0  # the label is there; only its confidence is missing
    np.testing.assert_array_equal(cube["confidence"].values[0, 0, 0, 0, 1:], expected()[1:])
    # failures are never cached: the next run asks that one follow-up again, and only it
    be2 = Scripted()
    cube = annotate(ITEMS, SPEC, models=be2, mode="generate", confidence=True, progress=False, cache=cache)
    assert be2.n == 1  # only the failed follow-up is asked again
    np.testing.assert_array_equal(cube["confidence"].values[0, 0, 0, 0], expected())


def test_custom_question_and_bad_options():
    q = "On a scale from 0 to 100, how sure are you?"
    be = Scripted()
    with pytest.raises(AssertionError):  # the scripted backend only knows the default question ...
        annotate(ITEMS, SPEC, models=be, mode="generate", confidence=q, progress=False)
    assert be.seen[-1][-1]["content"] == q  # ... but the custom one was asked
    with pytest.raises(ValueError, match="mode='generate'"):
        annotate(ITEMS, SPEC, models=be, mode="score", confidence=True, progress=False)
    with pytest.raises(ValueError, match="non-empty string"):
        annotate(ITEMS, SPEC, models=be, mode="generate", confidence="  ", progress=False)
    cube = annotate(ITEMS, SPEC, models=Scripted(), mode="generate", progress=False)
    assert "confidence" not in cube and "confidence_question" not in cube.attrs["options"]


def test_openai_backend_through_local_server():
    pytest.importorskip("httpx")
    from hackrisk.annotate.backends.openai import OpenAIBackend
    from hackrisk.annotate.serve import make_server

    scripted = Scripted()
    bad = {"n": None}

    def fault(n):  # reject one request with HTTP 400 (a failure, never an answer)
        return 400 if n == bad["n"] else None

    srv = make_server(scripted, fault=fault)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        be = OpenAIBackend("scripted", base_url=f"http://127.0.0.1:{srv.server_address[1]}/v1", api_key_env=None,
                           concurrency=1, max_retries=0)
        cube = annotate(ITEMS, SPEC, models=be, mode="generate", confidence=True, progress=False, cache=None)
        np.testing.assert_array_equal(cube["confidence"].values[0, 0, 0, 0], expected())
        # second run (in-memory cache: everything asked again, one request at a time, labels first):
        # its first follow-up (item t0) is rejected with HTTP 400 -> NaN, the label stays
        count0 = srv.n_answered
        bad["n"] = 2 * len(SCRIPT) + len(SCRIPT) + 1
        cube2 = annotate(ITEMS, SPEC, models=be, mode="generate", confidence=True, progress=False, cache=None)
        assert srv.n_answered == count0 + 2 * len(SCRIPT) - 1
        assert np.isnan(cube2["confidence"].values[0, 0, 0, 0, 0])
        assert cube2["label"].values[0, 0, 0, 0, 0] == 0
        np.testing.assert_array_equal(cube2["confidence"].values[0, 0, 0, 0, 1:], expected()[1:])
        be.close()
    finally:
        srv.shutdown()
        srv.server_close()


def test_local_backend_follow_up_chat(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from hackrisk.annotate.backends.local import TransformersBackend
    from hackrisk.annotate.models import tiny_random_model

    tok = embedded_tokenizer()
    be = TransformersBackend(tiny_random_model(seed=0, tokenizer=tok)[0], tok, name="tiny", batch_size=4, max_length=256)
    items = ITEMS.head(4)
    cube = annotate(items, SPEC, models=be, mode="generate", confidence=True, max_new_tokens=4,
                    confidence_tokens=4, progress=False, cache=tmp_path / "c.sqlite")
    # the stored confidence is exactly the parse of the model's answer to the follow-up chat
    msgs = [SPEC.render("p0", t) for t in items["text"]]
    replies = be.generate(msgs, temperature=0.0, max_new_tokens=4)
    answers = be.generate([confidence_messages(m, r) for m, r in zip(msgs, replies, strict=True)],
                          temperature=0.0, max_new_tokens=4)
    want = [parse_confidence(a).value for a in answers]
    want = np.array([np.nan if v is None else v for v in want], dtype=np.float32)
    np.testing.assert_array_equal(cube["confidence"].values[0, 0, 0, 0], want)
    assert cube["confidence_unparseable"].values[0, 0, 0, 0] == pytest.approx(np.isnan(want).mean())


# ------------------------------------------------------------------------------------------------
# the authors' style: a separate 0-1 prompt per (item, label)

@pytest.mark.parametrize("reply, value, rule", [
    ("0.85", 0.85, "number"), (".85", 0.85, "number"), ("1", 1.0, "number"), ("0", 0.0, "number"),
    ("1.0", 1.0, "number"), ("Probability: 0.9", 0.9, "number"), ("0.9.", 0.9, "number"),
    ("GPT-4 says 0.7", 0.7, "number"),
    ("85", None, "range"), ("1.5", None, "range"), ("-0.1", None, "range"), ("85%", None, "range"),
    ("0.5%", None, "percent"), ("0.8/1", None, "several"), ("0.7-0.8", None, "several"),
    ("0.7 or 0.8", None, "several"), ("high", None, "none"), ("", None, "none"), (None, None, "none"),
])
def test_parse_confidence_unit_scale_is_strict(reply, value, rule):
    got = parse_confidence(reply, scale="unit")
    assert got.rule == rule
    assert got.value is None if value is None else got.value == pytest.approx(value)


def test_parse_confidence_unknown_scale_named():
    with pytest.raises(ValueError, match="scale='0-1'.*'unit'"):
        parse_confidence("0.5", scale="0-1")


# text -> (label reply, {label given: confidence reply}, parsed confidence of the label at T = 0)
PAPER_SCRIPT = {
    "t0": ("relevant", {"relevant": "0.85"}, 0.85),
    "t1": ("irrelevant", {"irrelevant": "Probability: .4", "relevant": "0.9"}, 0.40),
    "t2": ("relevant", {"relevant": "85"}, None),  # not on the 0-1 scale: rejected, never read as 0.85
    "t3": ("irrelevant", {"irrelevant": "very likely"}, None),
    "t4": ("Relevant.", {"relevant": "1"}, 1.0),
    "t5": ("maybe", {}, None),  # outside the label set: not asked (the authors' "na")
    "t6": ("relevant", {"relevant": "0.7 or 0.8"}, None),
    "t7": ("irrelevant", {"irrelevant": "0"}, 0.0),
}
PAPER_ITEMS = pd.DataFrame({"item_id": [f"i{k}" for k in range(len(PAPER_SCRIPT))], "text": list(PAPER_SCRIPT)})


class PaperScripted(Scripted):
    """Answers annotation prompts and the authors' separate confidence prompt from PAPER_SCRIPT.

    At temperature 1 item ``t1`` is labelled "relevant" (another label: asked again).
    """

    def __init__(self, template=None):
        super().__init__()
        self.template = template
        self.asked: list[tuple[str, str]] = []
        self.kw: list[dict] = []

    def generate(self, msgs_list, **kw):
        from hackrisk.annotate import PAPER_CONFIDENCE_TEMPLATE

        out = []
        for msgs in msgs_list:
            assert len(msgs) == 1 and msgs[0]["role"] == "user"  # single-turn, always
            content = msgs[0]["content"]
            if content.startswith("Tweet: "):
                text = content.split("\n")[0][len("Tweet: "):]
                reply = PAPER_SCRIPT[text][0]
                out.append("relevant" if text == "t1" and kw["temperature"] == 1.0 else reply)
                continue
            self.kw.append(kw)
            hit = [(t, lab) for t in PAPER_SCRIPT for lab in ("relevant", "irrelevant")
                   if content == (self.template or PAPER_CONFIDENCE_TEMPLATE).format(label=lab, text=t)]
            assert len(hit) == 1, content
            self.asked.append(hit[0])
            out.append(PAPER_SCRIPT[hit[0][0]][1][hit[0][1]])
        return out


def test_paper_confidence_separate_prompt_once_per_item_and_label(tmp_path):
    from hackrisk.annotate import PAPER_CONFIDENCE_TEMPLATE

    be = PaperScripted()
    store = tmp_path / "p.zarr"
    cube = annotate(PAPER_ITEMS, SPEC, models=be, mode="generate", temperatures=[0, 1.0], confidence="paper",
                    store=store, progress=False)
    # asked once per (item, label): both temperatures share the answers, t5 ("maybe") is never asked
    assert sorted(be.asked) == sorted([(t, "relevant" if s[0].lower().startswith("relevant") else "irrelevant")
                                       for t, s in PAPER_SCRIPT.items() if t != "t5"] + [("t1", "relevant")])
    assert all(k["temperature"] == 0.0 and k["max_new_tokens"] == 10 for k in be.kw)
    want0 = np.array([np.nan if c is None else c for _, _, c in PAPER_SCRIPT.values()], dtype=np.float32)
    conf = cube["confidence"].values[0, 0, 0]
    np.testing.assert_array_equal(conf[0], want0)
    want1 = want0.copy()
    want1[1] = 0.9  # t1 labelled "relevant" at T = 1: the confidence in that label
    np.testing.assert_array_equal(conf[1], want1)
    assert cube["label"].values[0, 0, 0, 0, 5] == -2 and np.isnan(conf[0, 5])
    # malformed among the asked (t5 not asked): t2, t3, t6 of 7
    np.testing.assert_allclose(cube["confidence_unparseable"].values[0, 0, 0], [3 / 7, 3 / 7])
    assert cube["confidence"].attrs["style"] == "paper"
    assert cube["confidence"].attrs["question"] == PAPER_CONFIDENCE_TEMPLATE
    assert cube.attrs["options"]["confidence_tokens"] == 10
    # the store was made with the paper prompt: the follow-up style is another option set
    with pytest.raises(StoreMismatchError, match="confidence"):
        annotate(PAPER_ITEMS, SPEC, models=PaperScripted(), mode="generate", temperatures=[0, 1.0],
                 confidence=True, store=store, progress=False)


def test_paper_confidence_task_template_and_errors():
    tmpl = ("How likely is it that the following tweet is {label} to the topic of content moderation?\n\n"
            "Output only a single number between 0 and 1, without any context or explanation.\n\n"
            "Tweet: {text}\n\nProbability:")
    be = PaperScripted(template=tmpl)
    cube = annotate(PAPER_ITEMS, SPEC, models=be, mode="generate", confidence="paper", confidence_template=tmpl,
                    progress=False)
    assert cube["confidence"].attrs["question"] == tmpl and len(be.asked) == 7
    with pytest.raises(ValueError, match=r"\{label\} and"):
        annotate(PAPER_ITEMS, SPEC, models=PaperScripted(), mode="generate", confidence="paper",
                 confidence_template="Is {text} right?", progress=False)
    with pytest.raises(ValueError, match="confidence='paper'"):
        annotate(PAPER_ITEMS, SPEC, models=PaperScripted(), mode="generate", confidence=True,
                 confidence_template=tmpl, progress=False)
    with pytest.raises(ValueError, match="mode='generate'"):
        annotate(PAPER_ITEMS, SPEC, models=PaperScripted(), mode="score", confidence="paper", progress=False)
