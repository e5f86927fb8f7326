"""The authors' output mapping as ``parse_response(..., conventions="paper")`` and ``annotate(conventions=)``.

Expected codes are worked out by hand from the rules of the authors' ``default_output_mapping``
(restated in ``hackrisk.annotate.task._parse_paper``), including its quirks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hackrisk.annotate import TaskSpec, annotate, parse_response
from hackrisk.annotate.runner import StoreMismatchError
from hackrisk.annotate.task import _paper_order

LETTERS = TaskSpec("polite", ["Polite", "Impolite"], ["{text}"], keys="letters")  # {A: Polite, B: Impolite}
WORDS = TaskSpec("issue", ["social", "economy"], ["{text}"], keys=["social", "economic"])
NESTED = TaskSpec("rel", ["relevant", "not relevant"], ["{text}"])


def test_key_order_puts_contained_keys_last():
    assert _paper_order(["a", "ab", "abc"]) == ["abc", "ab", "a"]
    assert _paper_order(["relevant", "not relevant"]) == ["not relevant", "relevant"]
    assert _paper_order(["1", "10", "2"]) == ["1", "10", "2"]  # number keys keep their order
    assert _paper_order(["x", "y"]) == ["x", "y"]


@pytest.mark.parametrize("spec, reply, paper, hackrisk", [
    (LETTERS, "A", (0, "letter"), (0, "key")),
    (LETTERS, "b) impolite", (1, "letter"), (1, "name")),
    (LETTERS, "Because it is rude", (1, "letter"), (-2, "outside")),  # first character 'b' is option B
    (LETTERS, "Polite", (-2, "outside"), (0, "name")),  # the capitalised name is never found in the lower-cased reply
    (LETTERS, "The answer is A", (0, "key"), (0, "token")),
    (LETTERS, "a", (0, "letter"), (-2, "outside")),
    (LETTERS, "C", (-2, "outside"), (-2, "outside")),
    (WORDS, "social", (0, "name"), (0, "name")),
    (WORDS, "Economic policy", (1, "key"), (1, "key")),
    (WORDS, "economy and social", (1, "start"), (1, "start")),  # two names: the reply's start decides
    (WORDS, "mostly social, a bit economic", (0, "name"), (0, "name")),  # name 'social' once, 'economy' absent
    (NESTED, "not relevant", (1, "start"), (1, "start")),  # both names found ("relevant" inside): the start decides
    (NESTED, "It is relevant", (0, "name"), (0, "name")),
])
def test_paper_rules(spec, reply, paper, hackrisk):
    got = parse_response(reply, spec, conventions="paper")
    assert (got.code, got.rule) == paper
    got = parse_response(reply, spec)
    assert (got.code, got.rule) == hackrisk


class Replies:
    """A generate-mode backend answering each text with a fixed reply."""

    name = identity = "fixed"
    batch_size = 8

    def __init__(self, replies):
        self.replies = replies
        self.n = 0

    def prepare_texts(self, texts, *a, **k):
        return list(texts), np.zeros(len(texts), dtype=bool)

    def score(self, *a, **k):  # pragma: no cover - not used
        raise AssertionError

    def generate(self, msgs_list, **kw):
        self.n += len(msgs_list)
        return [self.replies[m[-1]["content"]] for m in msgs_list]


def test_annotate_with_the_paper_parser(tmp_path):
    replies = {"t0": "A", "t1": "Because it is rude", "t2": "Polite", "t3": "The answer is A"}
    items = pd.DataFrame({"item_id": list("abcd"), "text": list(replies)})
    be = Replies(replies)
    paper = annotate(items, LETTERS, models=be, mode="generate", conventions="paper", progress=False,
                     store=tmp_path / "p.zarr")
    np.testing.assert_array_equal(paper["label"].values[0, 0, 0, 0], [0, 1, -2, 0])
    assert paper.attrs["options"]["parser"] == "paper"
    cache = tmp_path / "p.zarr.cache.sqlite"
    n = be.n
    plain = annotate(items, LETTERS, models=be, mode="generate", progress=False, cache=cache)
    assert be.n == n  # the replies come from the cache; only the mapping differs
    np.testing.assert_array_equal(plain["label"].values[0, 0, 0, 0], [0, -2, 0, 0])
    assert "parser" not in plain.attrs["options"]
    with pytest.raises(StoreMismatchError, match="parser"):
        annotate(items, LETTERS, models=be, mode="generate", progress=False, store=tmp_path / "p.zarr")
    with pytest.raises(ValueError, match="conventions='authors' unknown"):
        annotate(items, LETTERS, models=be, mode="generate", conventions="authors", progress=False)
    with pytest.raises(ValueError, match="conventions='x' unknown"):
        parse_response("A", LETTERS, conventions="x")
