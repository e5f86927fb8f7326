"""The `hackrisk` command against the local fake OpenAI server (issue 17, cases 1, 2 and 9).

A tiny random model behind :func:`hackrisk.annotate.serve.make_server`, which checks the API key
(HTTP 401 otherwise) and injects 429 / 503 answers. The command runs in-process (``main``).
"""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("httpx")

import hackrisk  # noqa: E402
from hackrisk.annotate import ResultCache  # noqa: E402
from hackrisk.cli import main  # noqa: E402

KEY = "sk-right-key-0123456789"
PASSWORD = "hunter2-secret"

STUDY = """\
[study]
name = "srv"
output = "out"

[data]
path = "items.csv"
text = "text"
label = "label"
id = "id"

[task]
labels = ["neg", "pos"]
prompts = ["Label: {{text}}", "Sentiment of: {{text}}"]

[annotate]
temperatures = [0.0, 1.0]
mode = "generate"
batch_size = 4
max_new_tokens = 3

[[models]]
name = "srv"
backend = "openai"
model = "tiny"
base_url = "http://{userinfo}127.0.0.1:{port}/v1"
api_key_env = "HACKRISK_TEST_KEY"
max_retries = {retries}
timeout = 20

[hypotheses]
groupings = "random"

[analysis]
budgets = []
n_boot = 20
"""


def write_items(folder, edit=False):
    rows = ["id,text,label"]
    for k in range(24):
        text = f"item {k} says {'good' if k % 3 else 'bad'} things {'again' * (k % 4)}"
        label = ["neg", "pos"][k % 2]
        if edit and k == 5:
            text = "an edited text"
        if edit and k == 8:
            label = "pos"
        rows.append(f"{k:03d},{text},{label}")
    (folder / "items.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def server():
    from hackrisk.annotate.backends.local import TransformersBackend
    from hackrisk.annotate.models import tiny_random_model
    from hackrisk.annotate.serve import make_server

    try:
        net, tok = tiny_random_model(seed=0)
    except (ValueError, OSError) as err:
        pytest.skip(f"tiny model unavailable: {err}")
    be = TransformersBackend(net, tok, name="tiny", batch_size=4, max_length=256)
    faults = {"on": False, "fn": None}

    def fault(n):
        if faults["fn"] is not None:
            return faults["fn"](n)
        return (429 if n % 5 == 0 else 503 if n % 7 == 0 else None) if faults["on"] else None

    srv = make_server(be, api_key=KEY, fault=fault)
    srv.faults = faults
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()


def study_file(folder, port, retries=8, userinfo=""):
    write_items(folder)
    path = folder / "study.toml"
    path.write_text(STUDY.format(port=port, userinfo=userinfo, retries=retries), encoding="utf-8")
    return path


def test_401_stops_before_any_label_then_right_key_annotates_all(server, tmp_path, monkeypatch, capsys):
    path = study_file(tmp_path, server.server_address[1])
    store = tmp_path / "out" / "cube.zarr"
    for key in ("wrong-key", None):
        if key is None:
            monkeypatch.delenv("HACKRISK_TEST_KEY", raising=False)
        else:
            monkeypatch.setenv("HACKRISK_TEST_KEY", key)
        answered = server.n_answered
        assert main(["annotate", "-q", str(path)]) == 2  # was: exit 0 with every label -1
        err = capsys.readouterr().err
        assert "HTTP 401" in err and "HACKRISK_TEST_KEY" in err and "api_key_env" in err
        assert ("is not set" in err) == (key is None)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert server.n_answered == answered
        assert not store.exists() or (hackrisk.open_cube(store, lazy=False)["label"].values == -1).all()
        assert len(ResultCache(tmp_path / "out" / "cube.zarr.cache.sqlite")) == 0  # nothing cached
    # the right key, with 429 / 503 injected: retried, every label there
    monkeypatch.setenv("HACKRISK_TEST_KEY", KEY)
    server.faults["on"] = True
    try:
        assert main(["annotate", "-q", str(path)]) == 0, capsys.readouterr().err
    finally:
        server.faults["on"] = False
    cube = hackrisk.open_cube(store, lazy=False)
    assert (cube["label"].values != -1).all()
    assert main(["analyze", "-q", str(path)]) == 0, capsys.readouterr().err
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert KEY.encode() not in f.read_bytes(), f


def test_edited_data_and_interrupted_annotation(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HACKRISK_TEST_KEY", KEY)
    path = study_file(tmp_path, server.server_address[1])
    assert main(["annotate", "-q", str(path)]) == 0, capsys.readouterr().err
    assert main(["analyze", "-q", str(path)]) == 0, capsys.readouterr().err
    # case 1: the CSV is edited (one text, one human label)
    write_items(tmp_path, edit=True)
    assert main(["analyze", "-q", str(path)]) == 2  # was: old texts and labels analysed, exit 0
    err = capsys.readouterr().err
    assert "data changed since they were annotated (2 item(s)" in err and "'005'" in err and "'008'" in err
    answered = server.n_answered
    assert main(["annotate", "-q", str(path)]) == 0
    assert server.n_answered - answered == 4  # only item 005: 2 prompts x 2 temperatures
    cube = hackrisk.open_cube(tmp_path / "out" / "cube.zarr", lazy=False)
    assert cube["text"].values[0, 5] == "an edited text" and cube["truth"].values[0, 8] == 1
    assert main(["analyze", "-q", str(path)]) == 0
    # case 9: one configuration loses its labels (an interrupted run)
    block = cube["label"].isel(model=[0], prompt=[1], temperature=[1])
    hackrisk.write_labels(tmp_path / "out" / "cube.zarr", block * 0 - 1)
    capsys.readouterr()
    assert main(["analyze", str(path)]) == 2
    err = capsys.readouterr().err
    assert "24 label(s) are missing in 1 of 4 configuration(s): srv/p1/T=1 (24 of 24)" in err
    assert "--allow-incomplete" in err
    assert main(["analyze", "--allow-incomplete", str(path)]) == 0
    out = capsys.readouterr().out
    assert "× 3 configurations" in out and "only 3 of 4 configurations" in out  # was: "× 4 configurations"
    head = json.loads((tmp_path / "out" / "headline.json").read_text())
    assert head["n_configurations"] == 3 and head["n_configurations_total"] == 4
    assert main(["report", "-q", "--allow-incomplete", str(path)]) == 0
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Incomplete annotation:</b> only 3 of 4 configurations" in html


def test_unreachable_server_is_exit_2_with_a_fix_the_study_accepts(tmp_path, monkeypatch, capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HACKRISK_TEST_KEY", KEY)
    path = study_file(tmp_path, port, retries=1, userinfo=f"user:{PASSWORD}@")
    assert main(["annotate", "-q", str(path)]) == 2  # was: a BackendError traceback, exit 1
    err = capsys.readouterr().err
    assert "failed 2 times" in err and "[[models]] base_url" in err and "timeout / max_retries" in err
    assert PASSWORD not in err and "Traceback" not in err
    from hackrisk.study import load_study

    load_study(path)  # max_retries, named in the fix, is a key the study file accepts
    assert np.all(hackrisk.open_cube(tmp_path / "out" / "cube.zarr", lazy=False)["label"].values == -1)


def test_password_in_base_url_is_never_shown(caplog):
    from hackrisk.annotate.backends.openai import OpenAIBackend, redact_url

    assert redact_url(f"https://me:{PASSWORD}@host:8080/v1") == "https://me:***@host:8080/v1"
    assert redact_url("http://127.0.0.1:8080/v1") == "http://127.0.0.1:8080/v1"
    be = OpenAIBackend("m", base_url=f"https://me:{PASSWORD}@host/v1")
    assert PASSWORD not in repr(be) and PASSWORD not in be.safe_url


def test_permanent_failures_are_reported_and_retried_next_run(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HACKRISK_TEST_KEY", KEY)
    path = study_file(tmp_path, server.server_address[1])
    start = [None]

    def reject_two(n):  # the 6th and 9th request of this run are refused (HTTP 400), the rest answered
        start[0] = n if start[0] is None else start[0]
        return 400 if n - start[0] in (5, 8) else None

    server.faults["fn"] = reject_two
    try:
        assert main(["annotate", "-q", str(path)]) == 2  # was: exit 0, the rejections cached as answers
    finally:
        server.faults["fn"] = None
    err = capsys.readouterr().err
    assert "annotate finished with 2 label(s) missing in" in err and "re-run `hackrisk annotate`" in err
    cube = hackrisk.open_cube(tmp_path / "out" / "cube.zarr", lazy=False)
    assert int((cube["label"] == -1).sum()) == 2 and int((cube["annotate_status"] & 8).astype(bool).sum()) == 2
    assert main(["analyze", "-q", str(path)]) == 2 and "missing" in capsys.readouterr().err
    answered = server.n_answered
    assert main(["annotate", "-q", str(path)]) == 0
    assert server.n_answered - answered == 2  # exactly the two failures are asked again
    assert (hackrisk.open_cube(tmp_path / "out" / "cube.zarr", lazy=False)["label"].values != -1).all()
