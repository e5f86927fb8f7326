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


# ---- study values are never misread (issue 17, case 8) and validate runs every check -------------


def test_study_values_are_typed(study_dir):
    path = study_dir / "study.toml"
    path.write_text(GOOD + '\n[analysis]\nbayes = "no"\n')
    with pytest.raises(StudyError, match=r"study.toml:23: \[analysis\] bayes: must be true or false \(a TOML boolean"):
        load_study(path)  # was: "no" switched the Bayesian analysis on
    path.write_text(GOOD + '\n[hypotheses]\ngroupings = "random"\n')
    assert load_study(path).hypotheses["groupings"] == ["random"]  # was: iterated letter by letter
    path.write_text(GOOD.replace('label = "label"', 'label = "label"\ncovariates = "source"'))
    assert load_study(path).data["covariates"] == ["source"]
    path.write_text(GOOD.replace('name = "t"', "output = 5"))
    with pytest.raises(StudyError, match=r"\[study\] output: must be a string, got 5"):
        load_study(path)


def test_infeasible_budgets_are_an_error_not_dropped(study_dir, capsys):
    rows = "\n".join(f"text {k},{['neg', 'pos'][k % 2]}" for k in range(40))
    (study_dir / "items.csv").write_text("text,label\n" + rows + "\n")
    path = study_dir / "study.toml"
    path.write_text(GOOD + "\n[analysis]\nbudgets = [10, 30]\n")
    assert main(["validate", str(path)]) == 2  # was: 30 dropped silently (and no mitigation table at all)
    err = capsys.readouterr().err
    assert "[analysis] budgets: budget(s) [30] are not below 70% of the 40 human-labelled items (28)" in err
    path.write_text(GOOD + "\n[analysis]\nbudgets = [10, 20]\n")
    assert main(["validate", str(path)]) == 0


@pytest.mark.parametrize(
    "change,message",
    [
        (("[annotate]", "[annotate]\nbatch_size = 0"), r"\[annotate\] batch_size: must be a whole number >= 1, got 0"),
        (('prompts = ["Label: {text}"]', 'prompts = ["Answer as JSON {\\"label\\": ...}: {text}"]'),
         r"\[task\] prompts: template .* is not a placeholder .*Fix: write literal braces .* doubled: \{\{ and \}\}"),
        (("temperatures = [0.0, 1.0]", "temperatures = [0.0, inf]"), r"\[annotate\] temperatures: must be a list of finite"),
        (('path = "items.csv"', 'path = "folder"'), r"\[data\] path: .*folder is a folder, not a file"),
        (('[task]\nlabels = ["neg", "pos"]\nprompts = ["Label: {text}"]\n', ""), r"task: your own data .* needs prompt templates"),
        (('prompts = ["Label: {text}"]', 'prompts = ["Label {source}: {text}"]'), r"placeholders \['source'\] are not columns"),
        (("[[models]]", '[[models]]\nbase_url = "localhost:8080"'), r"\[models\] base_url: .* must start with http"),
    ],
)
def test_validate_finds_what_annotate_would(study_dir, capsys, change, message):
    (study_dir / "folder").mkdir()
    path = study_dir / "study.toml"
    path.write_text(GOOD.replace(*change))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Fix:" in err and "Traceback" not in err
    import re

    assert re.search(message, err), err


def test_whitespace_texts_and_encoding_errors_name_line_and_file(study_dir, capsys):
    path = study_dir / "study.toml"
    (study_dir / "items.csv").write_text('text,label\nhello,neg\n"   ",pos\nworld,pos\n')
    assert main(["validate", str(path)]) == 2
    assert "study.toml:7: [data] text: 1 item(s) have empty or whitespace-only text (ids ['1'])" in capsys.readouterr().err
    (study_dir / "items.csv").write_bytes("text,label\ncaf\xe9,neg\nx,pos\n".encode("latin-1"))
    assert main(["validate", str(path)]) == 2
    assert "items.csv' is not valid UTF-8" in capsys.readouterr().err


def test_every_cli_failure_is_one_line_exit_2(study_dir, capsys, tmp_path):
    path = study_dir / "study.toml"
    assert main(["validate", str(study_dir)]) == 2  # a folder as the study path
    assert "is a folder, not a study file" in capsys.readouterr().err
    (study_dir / "blocker").write_text("a file where the output folder should be")
    path.write_text(GOOD.replace('name = "t"', 'output = "blocker/out"'))
    assert main(["annotate", str(path)]) == 2  # an unwritable output
    err = capsys.readouterr().err
    assert "[study] output: cannot create" in err and len(err.strip().splitlines()) == 1
    path.write_text(GOOD)
    assert main(["validate", str(path)]) == 0
    for argv in (["demo", "--items", "0"], ["demo", "--prompts", "-1"], ["demo", "--temperatures", "a"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)  # was: --items 0 used the study's 300 items, --prompts -1 dropped one prompt
        assert exit_.value.code == 2
    assert "too small" in capsys.readouterr().err


def test_second_run_on_one_store_is_exit_2(study_dir, capsys):
    import subprocess
    import sys

    path = study_dir / "study.toml"
    store = study_dir / "study-output" / "cube.zarr"
    holder = subprocess.Popen([sys.executable, "-c", "import time; from hackrisk.io import store_lock\n"
                               f"with store_lock({str(store)!r}):\n    print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["annotate", "-q", str(path)]) == 2
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err
    assert "is being written by another run (pid" in err and "Fix:" in err and len(err.strip().splitlines()) == 1
