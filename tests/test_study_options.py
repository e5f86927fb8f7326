"""Study-file keys of the paper preset and verbalized confidence: validated, and passed through the pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from hackrisk.study import StudyError, format_study, load_study, parse_study

BASE = """\
[study]
name = "t"
output = "out"
seed = 0

[data]
path = "items.csv"
text = "text"
label = "label"

[task]
labels = ["neg", "pos"]
prompts = ["Label: {text}"]

[annotate]
temperatures = [0.0]
mode = "generate"
max_new_tokens = 3
confidence = true

[[models]]
name = "tiny"
backend = "transformers"
model = "tiny-random"

[analysis]
n_boot = 20
budgets = []
conventions = "paper"
"""


@pytest.fixture
def study_dir(tmp_path):
    rng = np.random.default_rng(0)
    words = ["storm", "vote", "market", "rain", "policy", "game", "price", "team"]
    rows = ["text,label"]
    for k in range(40):
        n = int(rng.integers(2, 9))
        rows.append(f"{' '.join(rng.choice(words, n))} {k},{'pos' if rng.random() < 0.5 else 'neg'}")
    (tmp_path / "items.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "study.toml").write_text(BASE)
    return tmp_path


def test_keys_are_read_written_and_checked(study_dir):
    st = load_study(study_dir / "study.toml")
    assert st.confidence is True and st.analysis["conventions"] == "paper"
    again = parse_study(format_study(st), study_dir / "again.toml")
    assert again.confidence is True and again.analysis["conventions"] == "paper"
    plain = parse_study(BASE.replace("confidence = true\n", "").replace('conventions = "paper"\n', ""),
                        study_dir / "plain.toml")
    assert plain.confidence is False and "conventions" not in plain.analysis
    assert "confidence" not in format_study(plain)
    cases = {
        ('mode = "generate"', 'mode = "score"'): r"\[annotate\] confidence: .*needs mode = \"generate\"",
        ("confidence = true", 'confidence = "yes"'): r"\[annotate\] confidence: must be true or false",
        ('conventions = "paper"', 'conventions = "authors"'): r"\[analysis\] conventions: unknown preset 'authors'",
    }
    for (old, new), message in cases.items():
        with pytest.raises(StudyError, match=message):
            parse_study(BASE.replace(old, new), study_dir / "bad.toml")
    # the authors' separate 0-1 prompt: read, written back, and still generate mode only
    paper = parse_study(BASE.replace("confidence = true", 'confidence = "paper"'), study_dir / "p.toml")
    assert paper.confidence == "paper"
    assert parse_study(format_study(paper), study_dir / "p2.toml").confidence == "paper"
    with pytest.raises(StudyError, match=r"needs mode = \"generate\""):
        parse_study(BASE.replace("confidence = true", 'confidence = "paper"').replace(
            'mode = "generate"', 'mode = "score"'), study_dir / "bad.toml")


@pytest.mark.model
def test_pipeline_passes_confidence_and_conventions(study_dir):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from hackrisk import pipeline

    st = load_study(study_dir / "study.toml")
    cube = pipeline.annotate_study(st, progress=False)
    assert cube["confidence"].dtype == np.float32
    assert cube["confidence"].attrs["question"]
    assert (np.isnan(cube["confidence"].values) | ((cube["confidence"] >= 0) & (cube["confidence"] <= 1)).values).all()
    res = pipeline.analyze_study(st, cube)
    assert res["hypotheses"].attrs["conventions"] == "paper"
    assert res["tests"].attrs["conventions"] == "paper"
    assert res["quality"].attrs["conventions"] == "paper"
    plain = parse_study(BASE.replace('conventions = "paper"\n', ""), study_dir / "study.toml")
    res2 = pipeline.analyze_study(plain, cube)
    assert res2["hypotheses"].attrs["conventions"] == "hackrisk"
