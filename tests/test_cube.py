"""The label cube: building from tidy tables, validation errors, round trips, slicing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import hackrisk
from hackrisk.cube import items_table, make_cube, to_long, validate_cube


def small_tables():
    items = pd.DataFrame(
        {
            "task": ["stance"] * 4 + ["frame"] * 3,
            "item_id": ["a", "b", "c", "d", "x", "y", "z"],
            "text": ["t1", "t2", "t3", "t4", "u1", "u2", "u3"],
            "truth": ["pro", "con", None, "pro", "problem", "neutral", "solution"],
            "source": pd.Categorical(["n", "b", "n", "n", "b", "b", "n"]),
            "n_words": [3, 5, 1, 7, 2, 2, 9],
            "when": pd.to_datetime(["2023-01-01", "2023-02-01", "2023-03-01", "2023-04-01",
                                    "2023-01-05", "2023-01-06", "2023-01-07"]),
            "flag": [True, False, True, False, True, True, False],
        }
    )
    classes = {"stance": ["pro", "con"], "frame": ["problem", "solution", "neutral"]}
    prompts = {"stance": ["Stance of: {text}", "Is this pro or con? {text}"],
               "frame": {"p0": "Frame: {text}"}}
    rows = []
    for model in ["m1", "m2"]:
        for temp in [0.0, 1.0]:
            for iid, lab in zip("abcd", ["pro", "con", "con", "pro"]):
                for prompt in ["p0", "p1"]:
                    rows.append(("stance", model, prompt, temp, iid, lab))
            for iid, lab in zip("xyz", ["problem", "neutral", "neutral"]):
                rows.append(("frame", model, "p0", temp, iid, lab))
    labels = pd.DataFrame(rows, columns=["task", "model", "prompt", "temperature", "item_id", "label"])
    return labels, items, classes, prompts


@pytest.fixture
def tables():
    return small_tables()


def test_build_schema(tables):
    labels, items, classes, prompts = tables
    cube = make_cube(labels, items, classes, prompts=prompts)
    assert cube["label"].dims == ("task", "model", "prompt", "temperature", "item")
    assert cube["label"].dtype == np.int16 and cube["truth"].dtype == np.int16
    assert list(cube.task.values) == ["stance", "frame"]
    assert cube.sizes["item"] == 4 and cube.sizes["class"] == 3
    # padding is distinguishable
    assert cube["item_id"].sel(task="frame").values[3] == ""
    assert cube["class_name"].sel(task="stance").values[2] == ""
    assert cube["prompt_template"].sel(task="frame", prompt="p1").item() == ""
    assert (cube["label"].sel(task="frame", prompt="p1") == -1).all()
    # codes follow the class order, missing truth is -1
    assert list(cube["truth"].sel(task="stance").values) == [0, 1, -1, 0]
    assert list(cube["truth"].sel(task="frame").values[:3]) == [0, 2, 1]
    assert cube["label"].sel(task="frame", model="m1", prompt="p0", temperature=0.0).values[:3].tolist() == [0, 2, 2]
    # covariates and their dtypes
    assert cube["cov_flag"].dtype == bool
    assert np.issubdtype(cube["cov_when"].dtype, np.datetime64)
    assert cube["cov_n_words"].dtype == np.float64
    assert cube["cov_source"].dtype == object
    assert isinstance(cube["task"].values[0], str)


def test_long_round_trip_exact(tables):
    labels, items, classes, prompts = tables
    cube = make_cube(labels, items, classes, prompts=prompts)
    long = to_long(cube, names=True)
    key = ["task", "model", "prompt", "temperature", "item_id"]
    a = long.sort_values(key).reset_index(drop=True)
    b = labels.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a[key + ["label"]], b[key + ["label"]], check_dtype=False)
    back = make_cube(to_long(cube), items_table(cube), classes, prompts=prompts)
    xr.testing.assert_identical(back, cube)


def test_items_table_restores_dtypes(tables):
    labels, items, classes, prompts = tables
    cube = make_cube(labels, items, classes, prompts=prompts)
    it = items_table(cube, names=True)
    assert len(it) == len(items)
    assert it["source"].dtype == "category"
    assert it["n_words"].dtype == np.int64
    assert it["flag"].dtype == bool
    assert np.issubdtype(it["when"].dtype, np.datetime64)
    assert it["truth"].tolist()[:4] == ["pro", "con", None, "pro"]


def test_integer_codes_and_outside_set(tables):
    labels, items, classes, prompts = tables
    labels = labels.copy()
    code = {"pro": 0, "con": 1, "problem": 0, "solution": 1, "neutral": 2}
    labels["label"] = labels["label"].map(code).astype(int)
    labels.loc[0, "label"] = -2
    cube = make_cube(labels, items, classes, prompts=prompts)
    first = labels.iloc[0]
    val = cube["label"].sel(task=first.task, model=first.model, prompt=first.prompt,
                            temperature=first.temperature).values[0]
    assert val == -2


def test_probabilities_and_samples(tables):
    labels, items, classes, prompts = tables
    probs = labels.copy()
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(3), size=len(probs)).astype(np.float32)
    for k in range(3):
        probs[f"prob_{k}"] = p[:, k]
    cube = make_cube(probs, items, classes, prompts=prompts)
    assert cube["prob"].dims[-1] == "class" and cube["prob"].dtype == np.float32
    back = to_long(cube)
    assert np.allclose(np.sort(back["prob_0"].to_numpy()), np.sort(p[:, 0]))
    samp = pd.concat([labels.assign(sample=0), labels.assign(sample=1)])
    cube_s = make_cube(samp, items, classes, prompts=prompts)
    assert cube_s["label"].dims[-1] == "sample" and cube_s.sizes["sample"] == 2
    assert len(to_long(cube_s)) == len(samp)


def test_model_metadata(tables):
    labels, items, classes, prompts = tables
    meta = pd.DataFrame({"n_params": [1e9, 7e10], "family": ["a", "b"]}, index=["m1", "m2"])
    cube = make_cube(labels, items, classes, prompts=prompts, models=meta)
    assert cube["n_params"].dims == ("model",)
    assert cube.sel(model="m2")["family"].item() == "b"


def test_slicing_keeps_valid_cube(tables):
    labels, items, classes, prompts = tables
    cube = make_cube(labels, items, classes, prompts=prompts)
    validate_cube(cube.sel(model=["m1"], temperature=[0.0]))
    validate_cube(cube.sel(task=["stance"]))
    sub = cube.sel(model="m1", temperature=0)  # scalar selection drops dims: a view, not a cube
    with pytest.raises(ValueError, match="expected"):
        validate_cube(sub)
    validate_cube(cube.isel(prompt=slice(0, 1)))


def test_accessor_forwards(tables):
    labels, items, classes, prompts = tables
    cube = make_cube(labels, items, classes, prompts=prompts)
    assert cube.hackrisk.validate() is cube
    pd.testing.assert_frame_equal(cube.hackrisk.to_long(), to_long(cube))


# ---- bad input -----------------------------------------------------------------------------------


def _raises(match, labels, items, classes, **kw):
    with pytest.raises(ValueError, match=match):
        make_cube(labels, items, classes, **kw)


def test_error_missing_columns(tables):
    labels, items, classes, prompts = tables
    _raises(r"labels table is missing required column\(s\) \['label'\]", labels.drop(columns="label"), items, classes)
    _raises(r"items table is missing required column\(s\) \['text'\]", labels, items.drop(columns="text"), classes)


def test_error_mismatched_item_ids(tables):
    labels, items, classes, prompts = tables
    bad = labels.copy()
    bad.loc[3, "item_id"] = "nope"
    _raises(r"labels table, column 'item_id': item id not in the items table \(e.g. 'stance/nope'\)", bad, items, classes, prompts=prompts)


def test_error_label_outside_set(tables):
    labels, items, classes, prompts = tables
    bad = labels.copy()
    bad.loc[5, "label"] = "maybe"
    _raises(r"column 'label': label outside the class set \['pro', 'con'\] \(e.g. 'maybe'\)", bad, items, classes, prompts=prompts)
    bad = labels.copy()
    bad["label"] = 0
    bad.loc[2, "label"] = 7
    _raises("label outside the class set", bad, items, classes, prompts=prompts)


def test_error_duplicates_and_nan(tables):
    labels, items, classes, prompts = tables
    _raises("duplicate \\(configuration, item\\) rows", pd.concat([labels, labels.iloc[[4]]]), items, classes, prompts=prompts)
    bad = labels.copy()
    bad.loc[1, "label"] = np.nan
    _raises("missing \\(NaN\\) label", bad, items, classes, prompts=prompts)
    _raises("duplicate \\(task, item_id\\)", labels, pd.concat([items, items.iloc[[0]]]), classes, prompts=prompts)


def test_error_single_class_and_template(tables):
    labels, items, classes, prompts = tables
    _raises("at least two classes", labels, items, {"stance": ["pro"], "frame": classes["frame"]})
    bad_prompts = dict(prompts, stance=["no placeholder here", "{text}"])
    _raises("no \\{text\\} placeholder", labels, items, classes, prompts=bad_prompts)


def test_error_truth_outside_set(tables):
    labels, items, classes, prompts = tables
    bad = items.copy()
    bad.loc[0, "truth"] = "undecided"
    _raises("items table, column 'truth': label outside the class set", labels, bad, classes, prompts=prompts)


def test_validate_catches_corruption(tables):
    labels, items, classes, prompts = tables
    cube = make_cube(labels, items, classes, prompts=prompts)
    bad = cube.copy(deep=True)
    bad["label"][0, 0, 0, 0, 0] = 5
    with pytest.raises(ValueError, match="cube variable 'label'"):
        validate_cube(bad)
    bad = cube.copy(deep=True)
    bad["label"] = bad["label"].astype(np.int32)
    with pytest.raises(ValueError, match="int16"):
        validate_cube(bad)
    bad = cube.copy(deep=True)
    bad["label"].loc[dict(task="frame", item=3)] = 0  # a label on a padding item
    with pytest.raises(ValueError, match="padding"):
        validate_cube(bad)
    with pytest.raises(ValueError, match="expected an xarray.Dataset"):
        validate_cube(cube["label"])


def test_public_api():
    assert hackrisk.make_cube is make_cube
    assert callable(hackrisk.open_cube) and callable(hackrisk.simulate_multiverse)


def test_no_labels_yet():
    """A cube with nothing annotated yet (an empty labels table) is valid."""
    items = pd.DataFrame({"task": ["t", "t"], "item_id": ["a", "b"], "text": ["x", "y"]})
    empty = pd.DataFrame(columns=["task", "model", "prompt", "temperature", "item_id", "label"])
    cube = make_cube(empty, items, {"t": ["yes", "no"]})
    assert cube["label"].size == 0 and list(cube["item_id"].values[0]) == ["a", "b"]
    assert len(to_long(cube)) == 0


@pytest.mark.parametrize("n_temps", [3, 12, 40])
def test_many_temperatures_round_trip(n_temps):
    """Temperature codes are right whether a few (comparison path) or many (search path) occur."""
    rng = np.random.default_rng(n_temps)
    temps = rng.permutation(np.round(np.linspace(0, 2, n_temps), 3))
    items = pd.DataFrame({"task": "t", "item_id": [f"i{i}" for i in range(5)], "text": "x"})
    labels = pd.DataFrame([("t", "m", "p0", float(tp), f"i{i}", int(rng.integers(0, 2)))
                           for tp in temps for i in range(5)],
                          columns=["task", "model", "prompt", "temperature", "item_id", "label"])
    cube = make_cube(labels, items, {"t": ["a", "b"]})
    assert list(cube["temperature"].values) == sorted(temps)
    key = ["temperature", "item_id"]
    back = to_long(cube).sort_values(key).reset_index(drop=True)
    ref = labels.sort_values(key).reset_index(drop=True)
    np.testing.assert_array_equal(back["label"].to_numpy(), ref["label"].to_numpy())
    np.testing.assert_array_equal(back["temperature"].to_numpy(), ref["temperature"].to_numpy())


# ---- codes and names are never confused (issue 17, case 4) ------------------------------------------


def _digit_tables(label_values, truth_values):
    items = pd.DataFrame({"task": "t", "item_id": [f"i{k}" for k in range(len(truth_values))],
                          "text": [f"text {k}" for k in range(len(truth_values))], "truth": truth_values})
    labels = pd.DataFrame({"task": "t", "model": "m", "prompt": "p0", "temperature": 0.0,
                           "item_id": items["item_id"], "label": label_values})
    return labels, items, {"t": ["1", "2", "3", "4", "5"]}


def test_digit_named_classes_are_matched_by_name_or_ambiguous():
    labels, items, classes = _digit_tables([1, 2, 3, 4], ["1", "2", "3", "4"])
    with pytest.raises(ValueError, match="classes named like integers.*codes=False.*codes=True"):
        make_cube(labels, items, classes)  # was: label 1 silently stored as class "2"
    cube = make_cube(labels, items, classes, codes=False)
    names = cube["class_name"].values[0]
    assert list(names[cube["label"].values[0, 0, 0, 0]]) == ["1", "2", "3", "4"]
    np.testing.assert_array_equal(cube["label"].values[0, 0, 0, 0], cube["truth"].values[0])
    as_codes = make_cube(labels, items, classes, codes=True)
    assert list(as_codes["label"].values[0, 0, 0, 0]) == [1, 2, 3, 4]
    # string labels with a float truth column (one NaN): same coding on both sides, or an error
    labels_s, items_f, _ = _digit_tables(["1", "2", "3", "4"], [1.0, 2.0, np.nan, 4.0])
    with pytest.raises(ValueError, match="items table, column 'truth'.*classes named like integers"):
        make_cube(labels_s, items_f, classes)
    cube = make_cube(labels_s, items_f, classes, codes=False)
    agree = cube["label"].values[0, 0, 0, 0] == cube["truth"].values[0]
    assert list(agree) == [True, True, False, True] and cube["truth"].values[0, 2] == -1
    text_cube = make_cube(labels_s, items_f.assign(truth=["1", "2", None, "4"]), classes, codes=True)
    np.testing.assert_array_equal(text_cube["label"].values, cube["label"].values)  # text: always names


def test_text_labels_are_names_never_codes(tables):
    labels, items, classes, prompts = tables
    bad = labels.assign(label=labels["label"].where(labels["task"] != "stance", "0"))
    with pytest.raises(ValueError, match="label outside the class set \\['pro', 'con'\\]"):
        make_cube(bad, items, classes, prompts=prompts)
    # integer codes stay codes when no class looks like an integer; '<outside>' is -2 by name
    cube = make_cube(labels, items, classes, prompts=prompts)
    back = make_cube(to_long(cube, names=True), items_table(cube, names=True), classes, prompts=prompts)
    xr.testing.assert_identical(back.drop_attrs(), cube.drop_attrs())


@pytest.mark.parametrize("bad,arg", [("df", "classes"), ("list", "labels"), ("scalar", "items")])
def test_make_cube_names_the_expected_type(tables, bad, arg):
    labels, items, classes, prompts = tables
    args = {"labels": labels, "items": items, "classes": classes}
    args[arg] = {"df": pd.DataFrame({"a": [1]}), "list": [1, 2], "scalar": 3}[bad]
    with pytest.raises(TypeError, match=f"make_cube: {arg} must be"):
        make_cube(args["labels"], args["items"], args["classes"], prompts=prompts)
    with pytest.raises(TypeError, match="classes must be a mapping"):
        make_cube(labels, items, {"stance": "procon", "frame": classes["frame"]})
