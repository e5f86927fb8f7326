"""Study files: validation errors name the line, key and fix; the command exits 2 on bad input."""

from __future__ import annotations

import pytest

from hackrisk.cli import main
from hackrisk.study import StudyError, load_study, parse_study

GOOD = """\
[study]
name = "t"
alpha = 0.05

[data]
path = "items.csv"
text = "text"
label = "label"

[task]
labels = ["neg", "pos"]
prompts = ["Label: {text}"]

[annotate]
temperatures = [0.0, 1.0]

[[models]]
name = "tiny"
backend = "transformers"
model = "tiny-random"
"""


@pytest.fixture
def study_dir(tmp_path):
    (tmp_path / "items.csv").write_text("text,label\nhello,neg\nworld,pos\n")
    (tmp_path / "study.toml").write_text(GOOD)
    return tmp_path


def test_good_study(study_dir):
    st = load_study(study_dir / "study.toml")
    assert st.temperatures == [0.0, 1.0] and st.alpha == 0.05
    assert st.models[0]["model"] == "tiny-random"
    assert st.output == (study_dir / "study-output").resolve()
    assert st.data["path"] == str((study_dir / "items.csv").resolve())


@pytest.mark.parametrize(
    "old,new,line,message",
    [
        ('prompts = ["Label: {text}"]', 'prompts = ["Label this"]', 12, r"\[task\] prompts: template without \{text\}"),
        ('model = "tiny-random"', 'model = "no/such/model"', 20, r"\[models\] model: unknown model 'no/such/model'"),
        ('backend = "transformers"', 'backend = "magic"', 19, r"\[models\] backend: unknown backend 'magic'"),
        ('text = "text"', 'txt = "text"', 7, r"\[data\] txt: unknown key"),
        ('path = "items.csv"', 'path = "missing.csv"', 6, r"\[data\] path: file .*missing.csv does not exist"),
        ("alpha = 0.05", "alpha = 5", 3, r"\[study\] alpha: must be in \(0, 1\)"),
        ("temperatures = [0.0, 1.0]", "temperatures = [-1]", 15, r"\[annotate\] temperatures"),
    ],
)
def test_errors_point_to_line_and_key(study_dir, old, new, line, message):
    path = study_dir / "study.toml"
    path.write_text(GOOD.replace(old, new))
    with pytest.raises(StudyError, match=message) as err:
        load_study(path)
    assert f"study.toml:{line}:" in str(err.value)
    assert "Fix:" in str(err.value)


def test_missing_sections_and_bad_toml(tmp_path):
    with pytest.raises(StudyError, match="missing \\[data\\] section"):
        parse_study('[[models]]\nname = "m"\n', tmp_path / "s.toml")
    with pytest.raises(StudyError, match="no \\[\\[models\\]\\] given"):
        parse_study('[data]\ndataset = "vader_tweets"\n', tmp_path / "s.toml")
    with pytest.raises(StudyError, match="not valid TOML"):
        parse_study("[data\n", tmp_path / "s.toml")
    with pytest.raises(StudyError, match="exactly one of 'dataset' and 'path'"):
        parse_study('[data]\ndataset = "x"\npath = "y"\n[[models]]\nname = "m"\n', tmp_path / "s.toml")


def test_cli_exit_code_2(study_dir, capsys):
    path = study_dir / "study.toml"
    path.write_text(GOOD.replace('prompts = ["Label: {text}"]', 'prompts = ["no placeholder"]'))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "study.toml:12" in err and "{text}" in err
    path.write_text(GOOD)
    assert main(["validate", str(path)]) == 0
    assert main(["analyze", str(path)]) == 2  # nothing annotated yet
    assert "run `hackrisk annotate`" in capsys.readouterr().err
    assert main(["validate", str(study_dir / "nope.toml")]) == 2


def test_label_outside_set(study_dir, capsys):
    (study_dir / "items.csv").write_text("text,label\nhello,neg\nworld,maybe\n")
    assert main(["annotate", str(study_dir / "study.toml")]) == 2
    err = capsys.readouterr().err
    assert "maybe" in err and "Fix" in err


def test_demo_study_is_valid():
    from importlib import resources

    text = resources.files("hackrisk").joinpath("studies/demo.toml").read_text()
    st = parse_study(text, "demo.toml")
    assert len(st.task["prompts"]) >= 5 and len(st.temperatures) == 3
    assert st.data["dataset"] == "vader_tweets" and st.models[0]["model"] == "default"
