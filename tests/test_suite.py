"""A suite file end to end through the `hackrisk` command: validate, annotate, analyze, report, explore.

Tiny suites (a seeded two-layer random model, a few items per task) on the mirrored paper tasks;
the full suite is `hackrisk/studies/paper-tasks.toml`.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from hackrisk import open_cube, suite
from hackrisk.cli import main

from ._data import shared_data_dir


@pytest.fixture
def mirror(monkeypatch) -> Path:
    """The data mirror, offline; the cache stays the user's, which holds the converted tokenizer
    the tiny model uses (the annotation caches live next to each task's store under tmp_path)."""
    path = shared_data_dir()
    monkeypatch.setenv("HACKRISK_DATA_DIR", str(path))
    monkeypatch.setenv("HACKRISK_OFFLINE", "1")
    return path


def write_suite_file(folder: Path, tasks: dict[str, int | tuple[int, list[str]]], *, output: str = "out") -> Path:
    """A suite with the tiny random model, 2 temperatures, no Bayesian fit; ``tasks``: ``{dataset:
    n_items}`` (the task's own prompts) or ``{dataset: (n_items, prompts)}``."""
    text = (f'[study]\nname = "tiny"\noutput = "{output}"\nseed = 0\n[annotate]\ntemperatures = [0.0, 1.0]\n'
            '[[models]]\nname = "tiny"\nmodel = "tiny-random"\n'
            '[analysis]\nn_boot = 20\nbudgets = []\nbayes = false\n')
    for name, spec in tasks.items():
        n, prompts = spec if isinstance(spec, tuple) else (spec, None)
        text += f'[[tasks]]\ndataset = "{name}"\nn_items = {n}\n'
        if prompts:
            text += f"prompts = {json.dumps(prompts)}\n"
    path = folder / "suite.toml"
    path.write_text(text, encoding="utf-8")
    return path


SHORT = ["The stance of this text: {text}", "Text: {text}\nIts stance:"]  # short prompts: fast to score


def test_suite_end_to_end_through_the_cli(mirror, tmp_path, capsys):
    """validate -> annotate -> analyze -> report -> explore of a three-task suite, one task too small."""
    # 2 prompts for one task, 1 for the others: the combined tests join them
    path = write_suite_file(tmp_path, {"stance_climate": (8, SHORT), "stance_tweets": (8, SHORT[:1]),
                                       "framesI_tweets23": (3, SHORT[:1])})
    out = tmp_path / "out"
    assert main(["validate", str(path)]) == 0
    assert f"run it with `hackrisk annotate {path}`" in capsys.readouterr().out

    assert main(["annotate", str(path)]) == 0
    text = capsys.readouterr().out
    for name, n in (("stance_climate", 8), ("stance_tweets", 8), ("framesI_tweets23", 3)):
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(f"{name}:"))
        assert line.rstrip().endswith(str(out / name / "cube.zarr")) and " s) ->" in line
        cube = open_cube(out / name / "cube.zarr")
        assert cube.sizes["item"] == n and int((cube["label"] == -1).sum()) == 0
    assert "total" in text.splitlines()[-1]

    assert main(["analyze", str(path)]) == 0
    text = capsys.readouterr().out
    assert "framesI_tweets23" in text and "left out: no hypothesis could be formed" in text
    summary = json.loads((out / "suite_summary.json").read_text())
    assert summary["tasks"] == ["stance_climate", "stance_tweets"]
    assert list(summary["left_out"]) == ["framesI_tweets23"] and "no hypothesis" in summary["left_out"]["framesI_tweets23"]
    assert summary["bayes"] is False and set(summary["variance"]) >= {"task", "model", "prompt", "temperature"}
    # per task only the lean analysis: tests and risk, none of the per-task extras
    for name in summary["tasks"]:
        assert (out / name / "tests.nc").is_file() and (out / name / "headline.json").is_file()
        assert not (out / name / "risk_by_model.nc").exists() and not (out / name / "hacking_curve.nc").exists()
    # the combined tests on disk hold each task's own conclusions, aligned by hypothesis and configuration
    combined = xr.load_dataset(out / "suite_tests.nc")
    for name in summary["tasks"]:
        own = xr.load_dataset(out / name / "tests.nc")
        part = combined.where(combined["task"] == name, drop=True)
        part = part.swap_dims(hypothesis="task_hypothesis").sel(task_hypothesis=own["hypothesis"].values)
        part = part.sel(prompt=own["prompt"].values, temperature=own["temperature"].values)
        np.testing.assert_array_equal(part["conclusion"].values, own["conclusion"].values)
        np.testing.assert_array_equal(part["human_conclusion"].values, own["human_conclusion"].values)
    assert combined.sizes["hypothesis"] == summary["n_hypotheses"]
    table = pd.read_csv(out / "tables" / "task_risk.csv")
    assert sorted(table["task"]) == sorted(summary["tasks"])
    assert (out / "tables" / "quality_risk.csv").is_file() and (out / "variance.nc").is_file()
    # the explorer opens the stored combined tests with the task as a slice
    widgets = pytest.importorskip("hackrisk.widgets")
    widgets.explore(combined, task="stance_tweets")

    assert main(["report", str(path)]) == 0
    text = capsys.readouterr().out
    html = (out / "report.html").read_text(encoding="utf-8")
    for name in summary["tasks"]:
        assert (out / name / "report.html").is_file()
        assert f"href='{name}/report.html'" in html
    assert str(out / "report.html") in text
    # the task left out is named in the report, with the reason
    left = html.split("<section id='left-out'>")[1].split("</section>")[0]
    assert "<td class=\"l\">framesI_tweets23</td>" in left and "no hypothesis" in left

    assert main(["explore", str(path)]) == 0
    assert str(out / "suite_tests.nc") in capsys.readouterr().out


def test_interrupted_suite_resumes_without_asking_again(mirror, tmp_path, monkeypatch, capsys):
    """Ctrl-C in the second task: exit 130; the re-run asks only what is missing and ends where an
    uninterrupted run ends."""
    from hackrisk.annotate.backends.local import TransformersBackend

    tasks = {"stance_climate": (5, SHORT[:1]), "stance_tweets": (5, SHORT[:1])}
    calls: list[int] = []
    original = TransformersBackend.score
    stop_at = [None]

    def counted(self, *args, **kwargs):
        calls.append(1)
        if stop_at[0] is not None and len(calls) == stop_at[0]:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(TransformersBackend, "score", counted)
    # the reference: an uninterrupted run, counting the model calls of the first task
    (tmp_path / "ref").mkdir()
    ref = write_suite_file(tmp_path / "ref", tasks)
    per_task = []
    for _study, _cube, _sec in suite.annotate_suite(ref, progress=False):
        per_task.append(len(calls))
    n_first, n_all = per_task[0], per_task[1]
    assert 0 < n_first < n_all

    (tmp_path / "run").mkdir()
    path = write_suite_file(tmp_path / "run", tasks)
    calls.clear()
    stop_at[0] = n_first + 1  # the second task's first model call
    assert main(["annotate", str(path)]) == 130
    assert "re-run to resume" in capsys.readouterr().err
    first = open_cube(tmp_path / "run" / "out" / "stance_climate" / "cube.zarr")
    assert int((first["label"] == -1).sum()) == 0  # the finished task is kept

    calls.clear()
    stop_at[0] = None
    assert main(["annotate", str(path), "--quiet"]) == 0
    assert len(calls) == n_all - n_first  # the first task is not asked again
    for name in tasks:
        got = open_cube(tmp_path / "run" / "out" / name / "cube.zarr")
        want = open_cube(tmp_path / "ref" / "out" / name / "cube.zarr")
        np.testing.assert_array_equal(got["label"].values, want["label"].values)


def test_unavailable_task_is_refused_before_any_annotation(mirror, tmp_path, capsys):
    from hackrisk.tasks import PAPER_TASKS

    path = write_suite_file(tmp_path, {"stance_climate": 5, "emotion": 5})
    assert main(["annotate", str(path)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    task = PAPER_TASKS["emotion"]
    assert "[[tasks]] emotion" in err and "data/all_data_processed/emotion.csv" in err
    assert task.commit in err and task.url in err and str(mirror / "llmhacking") in err
    assert not (tmp_path / "out").exists()  # the mirrored task before it was not annotated either


def test_unmirrored_task_downloads_where_it_can(mirror, tmp_path, monkeypatch, capsys):
    """The same suite file works with an unmirrored task on a machine that can download (the
    download is replaced by a copy with the published header, ids and character count)."""
    from hackrisk import tasks as T

    from .test_tasks import _synthetic_copy

    task = T.PAPER_TASKS["relevance_tweets"]
    raw = _synthetic_copy(task.name, ["relevant", "irrelevant"] * 3, task.chars).encode("utf-8")
    asked = []

    class Response(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def fake_urlopen(url, timeout=None):
        asked.append(url)
        return Response(raw)

    monkeypatch.delenv("HACKRISK_OFFLINE")
    monkeypatch.setenv("HACKRISK_CACHE", str(tmp_path / "cache"))  # the download lands in a fresh cache
    monkeypatch.setattr(T.urllib.request, "urlopen", fake_urlopen)
    path = write_suite_file(tmp_path, {task.name: 4})
    assert main(["validate", str(path)]) == 0
    assert asked == [task.url]
    assert f"{task.name}: 4 items" in capsys.readouterr().out
    rows = suite.validate_suite(path)  # now from the cache: no second download
    assert asked == [task.url] and rows[0]["items"] == 4


def test_module_alias_and_errors(mirror, tmp_path, capsys):
    path = write_suite_file(tmp_path, {"stance_climate": 5})
    assert suite._main(["validate", str(path)]) == 0
    assert "valid suite (1 tasks" in capsys.readouterr().out
    assert suite._main(["write", str(path), str(tmp_path / "studies")]) == 0
    assert (tmp_path / "studies" / "stance_climate.toml").is_file()
    assert suite._main(["nonsense"]) == 2
    # analyze before annotate: named, with the fix
    assert main(["analyze", str(path)]) == 2
    assert "run `hackrisk annotate" in capsys.readouterr().err
    assert suite.suite_output(path) == (tmp_path / "out").resolve()


def test_a_failing_task_is_named(mirror, tmp_path, capsys):
    """An error inside one task's annotation (here a prompt longer than the model's context) names the task."""
    long_prompt = "Read this. " * 300 + "{text}"
    path = write_suite_file(tmp_path, {"stance_climate": (3, SHORT[:1]), "stance_tweets": (3, [long_prompt])})
    assert main(["annotate", str(path)]) == 2
    captured = capsys.readouterr()
    assert "[[tasks]] stance_tweets:" in captured.err and "more than the context" in captured.err
    assert "stance_climate:" in captured.out  # the task before it finished and is kept
