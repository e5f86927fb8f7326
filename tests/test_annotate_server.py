"""OpenAI-compatible backend against a real local server on 127.0.0.1.

The server is llama.cpp's (``llama-cpp-python[server]``) serving the SmolLM2 GGUF when that package
is installed, else hackrisk's own ``hackrisk.annotate.serve`` serving the same model converted to
transformers. A proxy started by the test injects 429 / 5xx answers, and the server is killed
(SIGKILL) and restarted in the middle of a run.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("httpx")

from hackrisk.annotate import TaskSpec, annotate  # noqa: E402
from hackrisk.annotate.backends.openai import BackendError, OpenAIBackend  # noqa: E402
from tests._data import relevance_csv  # noqa: E402

pytestmark = [pytest.mark.model, pytest.mark.xdist_group("smollm2")]

# HACKRISK_TEST_SERVER=builtin forces hackrisk's own server even where llama.cpp is installed
HAVE_LLAMA_CPP = (importlib.util.find_spec("llama_cpp") is not None
                  and os.environ.get("HACKRISK_TEST_SERVER", "llama_cpp") != "builtin")
SPEC = TaskSpec("relevance", ["relevant", "irrelevant"], [[
    {"role": "system", "content": "You label tweets. A tweet is relevant if it is about content moderation."},
    {"role": "user", "content": "Tweet: Twitter suspended my account for no reason."},
    {"role": "assistant", "content": "relevant"},
    {"role": "user", "content": "Tweet: I had pasta for lunch today."},
    {"role": "assistant", "content": "irrelevant"},
    {"role": "user", "content": "Tweet: {text}"}]])


def real_items(n: int) -> pd.DataFrame:
    path = relevance_csv()
    return pd.read_csv(path).head(n)[["id", "text"]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """The model server as a subprocess that can be killed and restarted on the same port."""

    def __init__(self):
        from hackrisk.annotate.models import (
            default_gguf_path,
            default_model_dir,
            load_default_model,
        )

        self.port = free_port()
        if HAVE_LLAMA_CPP:
            self.cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(default_gguf_path()),
                        "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", "2048",
                        "--n_threads", "2", "--model_alias", "smollm2"]
        else:
            load_default_model()  # make sure the converted folder exists
            self.cmd = [sys.executable, "-m", "hackrisk.annotate.serve", "--model", str(default_model_dir()),
                        "--name", "smollm2", "--port", str(self.port), "--threads", "2"]
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env={**os.environ, "HF_HUB_OFFLINE": "1"})
        t0 = time.time()
        while time.time() - t0 < 180:
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/v1/models")
                if c.getresponse().status == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.cmd}")
            time.sleep(0.2)
        raise RuntimeError("server did not start within 180 s")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


@pytest.fixture(scope="module")
def server():
    srv = Server()
    yield srv
    srv.kill()


class FaultyProxy:
    """Forwards to the server; every ``every_429``-th request gets 429 and every ``every_5xx``-th a 503.

    Records the Authorization headers it saw (to check that the key is sent).
    """

    def __init__(self, upstream_port: int, every_429: int = 4, every_5xx: int = 5):
        self.n = 0
        self.injected = 0
        self.auth: list[str] = []
        self.on_request = None
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _reply(self, code, body, headers=()):
                self.send_response(code)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    proxy.n += 1
                    n = proxy.n
                    proxy.auth.append(self.headers.get("Authorization", ""))
                if proxy.on_request:
                    proxy.on_request(n)
                if n % every_429 == 0:
                    proxy.injected += 1
                    return self._reply(429, b'{"error": "rate limited"}', [("Retry-After", "0")])
                if n % every_5xx == 0:
                    proxy.injected += 1
                    return self._reply(503, b'{"error": "overloaded"}')
                try:
                    c = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=120)
                    c.request("POST", self.path, body, {"Content-Type": "application/json"})
                    r = c.getresponse()
                    data = r.read()
                    return self._reply(r.status, data, [("Content-Type", "application/json")])
                except OSError:  # server down (killed): a gateway error, as a real proxy would say
                    return self._reply(502, b'{"error": "bad gateway"}')

        lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


def backend(port: int, **kw) -> OpenAIBackend:
    opts = {"base_url": f"http://127.0.0.1:{port}/v1", "api_key_env": "HACKRISK_TEST_KEY", "name": "smollm2",
            "revision": "smollm2-135m-q4_1", "concurrency": 2, "timeout": 60, "max_retries": 8,
            "backoff": 0.05, "max_backoff": 1.0, "rng": 0}
    opts.update(kw)
    return OpenAIBackend("smollm2", **opts)


def test_generate_through_faults_and_restart(server, tmp_path, monkeypatch, caplog):
    secret = "sk-test-DO-NOT-LEAK-1234567890"
    monkeypatch.setenv("HACKRISK_TEST_KEY", secret)
    items = real_items(8)
    clean = annotate(items, SPEC, models=backend(server.port), mode="generate", max_new_tokens=6,
                     progress=False, cache=None)
    assert (clean["label"].values != -1).all()

    proxy = FaultyProxy(server.port)
    restarted = threading.Event()

    def chaos(n):  # at the 7th request: kill the server, restart it in the background
        if n == 7:
            server.kill()
            threading.Thread(target=lambda: (time.sleep(0.5), server.start(), restarted.set()), daemon=True).start()

    proxy.on_request = chaos
    be = backend(proxy.port, max_retries=40)
    store = tmp_path / "http.zarr"
    try:
        cube = annotate(items, SPEC, models=be, mode="generate", max_new_tokens=6, progress=False, store=store)
    finally:
        proxy.close()
    assert restarted.is_set() and proxy.injected >= 2 and be.n_retries >= proxy.injected
    np.testing.assert_array_equal(cube["label"].values, clean["label"].values)  # greedy: same labels
    assert (cube["annotate_status"].values == 0).all()
    # the key was sent, and is nowhere else
    assert all(a == f"Bearer {secret}" for a in proxy.auth)
    assert secret not in repr(be) and secret not in json.dumps(cube.attrs, default=str)
    assert secret not in str(cube["model"].values) and secret not in str(cube["identity"].values)
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f
    assert secret not in caplog.text


def test_score_with_logprobs(server):
    items = real_items(6)
    cube = annotate(items, SPEC, models=backend(server.port), temperatures=[0, 1], progress=False, cache=None)
    prob = cube["prob"].values[0, 0, 0, 0]
    assert np.isfinite(prob).all()
    np.testing.assert_array_equal(cube["label"].values[0, 0, 0, 0], prob.argmax(-1))
    assert (cube["label_mass"].values > 0.05).all()  # the keys carry real probability mass


def test_unreachable_server_fails_clearly_and_resumably(tmp_path):
    import hackrisk

    be = backend(free_port(), max_retries=2, timeout=2)
    store = tmp_path / "down.zarr"
    t0 = time.time()
    with pytest.raises(BackendError, match="failed 3 times.*re-run resumes"):
        annotate(["a tweet", "another"], SPEC, models=be, mode="generate", store=store, progress=False)
    assert time.time() - t0 < 30
    cube = hackrisk.open_cube(store, lazy=False)  # a complete, valid store: nothing half-written
    assert (cube["label"].values == -1).all()
