"""The human-label workflow through the `hackrisk` command on real data:
annotate → suggest → label (the data's ground truth) → [human] labels → analyze → report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from hackrisk.study import StudyError, parse_study
from tests._data import relevance_csv

N_ITEMS = 150

STUDY = """[study]
name = "relevance-human"
output = "out"
seed = 0

[data]
path = "items.csv"
text = "text"
id = "id"

[task]
name = "relevance"
labels = ["irrelevant", "relevant"]
prompts = ["Is this tweet about content moderation relevant or irrelevant?\\n{text}"]

[annotate]
temperatures = [0.0, 1.0]

[[models]]
name = "tiny"
model = "tiny-random"

[hypotheses]
groupings = ["random", "length", "keyword"]

[analysis]
n_boot = 50
budgets = []
"""


def run_cli(*args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "hackrisk.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.xdist_group("smollm2")
def test_suggest_label_analyze_report_on_real_data(tmp_path):
    data = pd.read_csv(relevance_csv(), dtype=str, keep_default_na=False)
    truth = data.set_index("id")["ground_truth"]
    data[["id", "text"]].head(N_ITEMS).to_csv(tmp_path / "items.csv", index=False)  # no human label column
    study = tmp_path / "study.toml"
    study.write_text(STUDY, encoding="utf-8")
    r = run_cli("annotate", str(study), "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]

    # round 1: no human label yet
    r = run_cli("suggest", str(study), "--n", "60", "--scheme", "active", "-o", "to_label.csv", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "to_label.csv" in r.stdout and "[human]" in r.stdout
    todo = pd.read_csv(tmp_path / "to_label.csv", dtype=str, keep_default_na=False)
    assert {"item_id", "label", "pi", "task", "text"} <= set(todo.columns)
    assert 30 <= len(todo) <= 90  # Poisson sampling, 60 expected
    assert (todo["label"] == "").all() and (todo["status"] == "to label").all()
    assert set(todo["item_id"]) <= set(data["id"].head(N_ITEMS)) and not todo["item_id"].duplicated().any()
    pi = todo["pi"].astype(float)
    assert ((pi > 0) & (pi <= 1)).all()

    # the annotators: the data's ground truth
    todo["label"] = todo["item_id"].map(truth)
    todo.to_csv(tmp_path / "labels.csv", index=False)
    study.write_text(STUDY + '\n[human]\nlabels = "labels.csv"\nmethods = ["ppi", "human", "dsl"]\n',
                     encoding="utf-8")
    r = run_cli("analyze", str(study), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "with human labels (ppi):" in r.stdout
    out = tmp_path / "out"
    tests = xr.load_dataset(out / "tests.nc")
    n_lab = len(todo)
    assert int(tests["human_n_a"].max() + tests["human_n_b"].max()) <= 2 * n_lab
    assert int((tests["human_n_a"] + tests["human_n_b"]).max()) <= n_lab  # human side: labelled items only
    for m in ("ppi", "human", "dsl"):
        corr = xr.load_dataset(out / f"corrected_{m}.nc")
        assert corr.attrs["method"] == m
        assert set(corr["n_labelled_a"].values.ravel() + corr["n_labelled_b"].values.ravel()) <= set(range(n_lab + 1))
    human = xr.load_dataset(out / "corrected_human.nc")
    # human-only estimate = the difference of the labelled shares (hypothesis 0, any configuration)
    np.testing.assert_allclose(human["estimate"].isel(model=0, prompt=0, temperature=0).values,
                               tests["human_estimate"].values, atol=1e-9)
    robust = pd.read_csv(out / "tables" / "robust.csv")
    assert len(robust) == tests.sizes["hypothesis"]
    assert robust["verdict"].str.match(r"^(robust|depends on the configuration|undecided: .+)$").all()
    head = json.loads((out / "headline.json").read_text())
    assert sum(head["verdicts"].values()) == len(robust) and head["corrected_method"] == "ppi"

    r = run_cli("report", str(study), "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "<h2>Your conclusions with human labels</h2>" in html
    assert "Corrected intervals per configuration" in html and "alt='corrected intervals'" in html
    for v in robust["verdict"].unique():
        assert v in html

    # round 2: the labelled items are never suggested again; their pi is updated in the same file
    r = run_cli("suggest", str(study), "--n", "30", "--scheme", "random", "-o", "round2.csv", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    r2 = pd.read_csv(tmp_path / "round2.csv", dtype=str, keep_default_na=False)
    new, old = r2[r2["status"] == "to label"], r2[r2["status"] == "labelled"]
    assert len(new) == 30 and not set(new["item_id"]) & set(todo["item_id"])
    assert set(old["item_id"]) == set(todo["item_id"])
    assert (old.set_index("item_id")["label"] == todo.set_index("item_id")["label"]).all()

    # a labels file with an unknown id and a label outside the set: exit 2 with line, key and fix
    bad = todo.copy()
    bad.loc[0, "item_id"] = "no-such-tweet"
    bad.to_csv(tmp_path / "labels.csv", index=False)
    r = run_cli("analyze", str(study), cwd=tmp_path)
    assert r.returncode == 2
    assert "study.toml:" in r.stderr and "[human] labels:" in r.stderr and "no-such-tweet" in r.stderr
    assert "Fix:" in r.stderr and "Traceback" not in r.stderr


def test_human_section_of_the_study_file(tmp_path):
    (tmp_path / "items.csv").write_text("id,text\n1,a\n2,b\n", encoding="utf-8")
    (tmp_path / "h.csv").write_text("item_id,label\n1,relevant\n", encoding="utf-8")
    path = tmp_path / "s.toml"
    st = parse_study(STUDY + '[human]\nlabels = "h.csv"\n', path)
    assert st.human["labels"] == str((tmp_path / "h.csv").resolve()) and st.human["methods"] == ["ppi", "human"]
    assert st.human["where"] == f"{path}:{STUDY.count(chr(10)) + 2}"
    with pytest.raises(StudyError, match=r"s.toml:\d+: \[human\] labels: file .*nope.csv does not exist"):
        parse_study(STUDY + '[human]\nlabels = "nope.csv"\n', path)
    with pytest.raises(StudyError, match=r"\[human\] methods: must be a non-empty list"):
        parse_study(STUDY + '[human]\nlabels = "h.csv"\nmethods = ["magic"]\n', path)
    with pytest.raises(StudyError, match=r"\[human\] labels: missing"):
        parse_study(STUDY + '[human]\nmethods = ["ppi"]\n', path)
    with pytest.raises(StudyError, match=r"\[human\] pi: unknown key"):
        parse_study(STUDY + '[human]\nlabels = "h.csv"\npi = 1\n', path)


def test_validate_checks_the_human_labels_file(tmp_path):
    """`hackrisk validate` (check_inputs) finds a bad labels file before any annotation."""
    from hackrisk.study import check_inputs

    data = pd.read_csv(relevance_csv(), dtype=str, keep_default_na=False).head(40)
    data[["id", "text", "ground_truth"]].rename(columns={"ground_truth": "label"}).to_csv(tmp_path / "items.csv",
                                                                                         index=False)
    text = STUDY.replace('id = "id"', 'id = "id"\nlabel = "label"') + '\n[human]\nlabels = "h.csv"\n'
    path = tmp_path / "s.toml"
    line = text.splitlines().index('labels = "h.csv"') + 1
    good = pd.DataFrame({"item_id": data["id"][:5], "label": data["ground_truth"][:5]})
    good.to_csv(tmp_path / "h.csv", index=False)
    assert len(check_inputs(parse_study(text, path)).items) == 40
    flip = {"relevant": "irrelevant", "irrelevant": "relevant"}
    cases = [
        (good.assign(item_id=["x1", *good["item_id"][1:]]), r"1 item id\(s\) are not in the data: \['x1'\]"),
        (good.assign(label=["maybe", *good["label"][1:]]), r"label\(s\) \['maybe'\] are not among the classes"),
        (pd.concat([good, good[:1]]), r"appear more than once"),
        (good.assign(label=[flip[good["label"].iloc[0]], *good["label"][1:]]), "another human label in the data"),
        (good.assign(pi=["2", *["0.5"] * 4]), r"pi must be an inclusion probability"),
    ]
    for table, match in cases:
        table.to_csv(tmp_path / "h.csv", index=False)
        with pytest.raises(StudyError, match=rf"s.toml:{line}: \[human\] labels: .*{match}"):
            check_inputs(parse_study(text, path))
