"""Merging human labels collected on a subset of items: add_human_labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import hackrisk
from hackrisk.human import PI_VAR, add_human_labels


@pytest.fixture(scope="module")
def unlabelled():
    """Two tasks (2 and 3 classes), no human label at all."""
    cube, _ = hackrisk.simulate_multiverse(n_tasks=2, n_items=[60, 40], n_classes=[2, 3], models=1,
                                           n_prompts=1, temperatures=(0.0,), rng=1)
    full = cube.copy()
    cube = cube.assign(truth=xr.full_like(cube["truth"], -1))
    return cube, full


def _table(full, task, ids):
    t = list(full["task"].values).index(task)
    where = {i: k for k, i in enumerate(full["item_id"].values[t]) if i != ""}
    pos = [where[i] for i in ids]
    names = full["class_name"].values[t]
    return pd.DataFrame({"item_id": ids, "label": [names[c] for c in full["truth"].values[t, pos]]})


def test_labels_merge_by_id_and_name_with_pi(unlabelled, tmp_path):
    cube, full = unlabelled
    ids = ["t1-i3", "t1-i0", "t1-i39"]
    tab = _table(full, "task1", ids).assign(pi=[0.5, 0.25, 1.0])
    path = tmp_path / "labels.csv"
    tab.to_csv(path, index=False)
    out = add_human_labels(cube, path, task="task1")
    assert (cube["truth"] == -1).all()  # input untouched
    pos = [3, 0, 39]
    np.testing.assert_array_equal(out["truth"].values[1, pos], full["truth"].values[1, pos])
    assert int((out["truth"] >= 0).sum()) == 3
    assert out[PI_VAR].dims == ("task", "item") and out[PI_VAR].dtype == np.float64
    np.testing.assert_array_equal(out[PI_VAR].values[1, pos], [0.5, 0.25, 1.0])
    assert int(np.isfinite(out[PI_VAR].values).sum()) == 3
    hackrisk.validate_cube(out)
    # accessor forwards; an identical relabel is fine; pi stays
    again = out.hackrisk.add_human_labels(_table(full, "task1", ids[:1]).assign(task="task1"))
    xr.testing.assert_identical(again["truth"], out["truth"])
    assert again[PI_VAR].values[1, 3] == 0.5


def test_multi_round_keeps_each_rounds_pi(unlabelled):
    cube, full = unlabelled
    r1 = add_human_labels(cube, _table(full, "task0", ["t0-i1", "t0-i2"]).assign(pi=0.1, task="task0"))
    r2 = add_human_labels(r1, _table(full, "task0", ["t0-i5"]).assign(pi=0.3, task="task0"))
    np.testing.assert_array_equal(r2[PI_VAR].values[0, [1, 2, 5]], [0.1, 0.1, 0.3])
    assert int((r2["truth"] >= 0).sum()) == 3
    # no pi column: labels merge, pi stays unknown (NaN)
    r3 = add_human_labels(r2, _table(full, "task0", ["t0-i7"]).assign(task="task0"))
    assert np.isnan(r3[PI_VAR].values[0, 7]) and r3["truth"].values[0, 7] >= 0


def test_text_is_kept_as_written(tmp_path):
    """Ids like '007' and a class called 'None' survive the CSV (read as text)."""
    labels = pd.DataFrame({"task": "t", "model": "m", "prompt": "p", "temperature": 0.0,
                           "item_id": ["007", "7", "x"], "label": ["None", "Some", "None"]})
    items = pd.DataFrame({"task": "t", "item_id": ["007", "7", "x"], "text": ["a", "b", "c"]})
    cube = hackrisk.make_cube(labels, items, classes={"t": ["None", "Some"]})
    path = tmp_path / "h.csv"
    path.write_text("item_id,label\n007,None\n7,Some\n", encoding="utf-8")
    out = add_human_labels(cube, path)
    ids = list(out["item_id"].values[0])
    assert out["truth"].values[0, ids.index("007")] == 0
    assert out["truth"].values[0, ids.index("7")] == 1
    assert out["truth"].values[0, ids.index("x")] == -1


@pytest.mark.parametrize("rows, match", [
    ({"item_id": ["t0-i1", "nope", "gone"], "label": ["class0", "class0", "class1"]},
     r"2 item id\(s\) of task 'task0' are not in the cube: \['nope', 'gone'\]"),
    ({"item_id": ["t0-i1", "t0-i2"], "label": ["class0", "cat"]},
     r"label\(s\) \['cat'\] of task 'task0' are not among its classes \['class0', 'class1'\]"),
    ({"item_id": ["t0-i1", "t0-i2"], "label": ["class0", " class1"]}, "surrounding spaces"),
    ({"item_id": ["t0-i1", "t0-i1"], "label": ["class0", "class0"]}, r"\['t0-i1'\] appear more than once"),
    ({"item_id": ["t0-i1", "t0-i2"], "label": ["class0", ""]}, "empty label on line"),
    ({"item_id": ["t0-i1"], "label": ["class0"], "pi": ["1.5"]}, r"pi must be an inclusion probability"),
    ({"item_id": ["t0-i1"], "label": ["class0"], "pi": ["abc"]}, r"pi must be an inclusion probability"),
    ({"item_id": ["t0-i1"]}, r"lack the column\(s\) \['label'\]"),
])
def test_bad_tables_are_named_errors(unlabelled, rows, match):
    cube, _ = unlabelled
    with pytest.raises(ValueError, match=match):
        add_human_labels(cube, pd.DataFrame(rows), task="task0")


def test_no_silent_overwrite(unlabelled):
    cube, full = unlabelled
    tab = _table(full, "task0", ["t0-i4"])
    once = add_human_labels(cube, tab.assign(pi=0.5), task="task0")
    flipped = tab.assign(label=["class1" if tab["label"][0] == "class0" else "class0"])
    with pytest.raises(ValueError, match=r"already have another human label: \['t0-i4: class"):
        add_human_labels(once, flipped, task="task0")
    with pytest.raises(ValueError, match="another inclusion probability"):
        add_human_labels(once, tab.assign(pi=0.25), task="task0")
    with pytest.raises(ValueError, match="the cube has 2 tasks"):
        add_human_labels(cube, tab)
    with pytest.raises(ValueError, match=r"unknown task\(s\) \['nope'\]"):
        add_human_labels(cube, tab.assign(task="nope"))
    with pytest.raises(ValueError, match="DataFrame or the path"):
        add_human_labels(cube, [("t0-i4", "class0")], task="task0")


def test_update_pi_for_a_new_round(unlabelled):
    """A later suggest_items round updates the earlier items' pi; labels are never replaced."""
    from hackrisk.analysis.mitigation import suggest_items

    cube, full = unlabelled
    one = cube.isel(task=[0])
    hyps = hackrisk.generate_hypotheses(one, groupings=("random",), min_labelled=0)
    r1 = suggest_items(one, hyps, 10, scheme="random", rng=0)
    lab1 = add_human_labels(one, _table(full, "task0", list(r1["item_id"])).assign(pi=r1["pi"].to_numpy()))
    r2 = suggest_items(lab1, hyps, 10, scheme="random", rng=1)
    assert not set(r2["item_id"]) & set(r1["item_id"])
    old = r2.attrs["labelled_pi"]
    assert set(old["item_id"]) == set(r1["item_id"])
    with pytest.raises(ValueError, match="update_pi=True"):
        add_human_labels(lab1, old[["item_id", "pi"]].assign(label=_table(full, "task0", list(old["item_id"]))["label"]))
    new = _table(full, "task0", list(r2["item_id"])).assign(pi=r2["pi"].to_numpy())
    both = pd.concat([new, old[["item_id", "pi"]]], ignore_index=True)  # earlier rows: no label, new pi
    lab2 = add_human_labels(lab1, both, update_pi=True)
    ids = list(lab2["item_id"].values[0])
    for _, r in old.iterrows():
        assert lab2[PI_VAR].values[0, ids.index(r["item_id"])] == pytest.approx(r["pi"])
    np.testing.assert_array_equal(lab2["truth"].values[0][lab1["truth"].values[0] >= 0],
                                  lab1["truth"].values[0][lab1["truth"].values[0] >= 0])
    assert int((lab2["truth"] >= 0).sum()) == 20
    # random scheme: every labelled item's pi is the overall share m / N
    assert np.allclose(lab2[PI_VAR].values[0][lab2["truth"].values[0] >= 0], 20 / 60)
    with pytest.raises(ValueError, match="have no label and the item has none yet"):
        add_human_labels(lab2, pd.DataFrame({"item_id": [r for r in ids if r and r not in set(both["item_id"])][:1],
                                             "pi": [0.5]}), update_pi=True)
