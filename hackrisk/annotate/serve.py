"""A minimal OpenAI-compatible chat-completions server for a local ``transformers`` model.

Meant for tests and demos on loopback (``127.0.0.1``) when no llama.cpp / vLLM server is at hand::

    python -m hackrisk.annotate.serve --model default --port 8123

Endpoints: ``POST /v1/chat/completions`` (``messages``, ``temperature``, ``max_tokens``, ``seed``,
``logprobs`` / ``top_logprobs`` of the first reply token) and ``GET /v1/models``.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["make_server", "main"]

log = logging.getLogger(__name__)


def _first_token_logprobs(backend: Any, messages: list[dict[str, str]], k: int) -> dict[str, Any]:
    import torch

    ids = backend._encode(backend.render(messages))
    with torch.inference_mode():
        logits = backend.model(input_ids=torch.tensor([ids])).logits[0, -1].float()
    lp = torch.log_softmax(logits, -1)
    top = torch.topk(lp, k)
    alts = [{"token": backend.tok.decode([int(i)]), "logprob": float(v)} for v, i in zip(top.values, top.indices)]
    return {"content": [{**alts[0], "top_logprobs": alts}]}


def make_server(backend: Any, *, host: str = "127.0.0.1", port: int = 0, api_key: str | None = None,
                fault: Callable[[int], int | None] | None = None) -> ThreadingHTTPServer:
    """An HTTP server answering chat completions with ``backend`` (a TransformersBackend).

    Only loopback hosts are accepted. Requests are served one at a time on the model.

    Parameters
    ----------
    api_key
        When given, requests without ``Authorization: Bearer <api_key>`` get HTTP 401.
    fault
        Called with the number of each chat request (1, 2, ...); a status code it returns (e.g.
        429, 503, 400) is answered instead of the completion (fault injection for tests).

    The server counts the completions it answered in ``server.n_answered``.
    """
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"host {host!r}: this test server only binds loopback. Fix: use 127.0.0.1.")
    lock = threading.Lock()
    counter = threading.Lock()
    state = {"n": 0, "answered": 0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args: Any) -> None:  # quiet; never logs headers
            log.debug("serve: " + fmt, *args)

        def _send(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": backend.name, "object": "model"}]})
            else:
                self._send(404, {"error": {"message": "not found"}})

        def do_POST(self) -> None:  # noqa: N802
            n = int(self.headers.get("Content-Length", 0))
            try:
                req = json.loads(self.rfile.read(n) or b"{}")
            except ValueError:
                self._send(400, {"error": {"message": "invalid JSON"}})
                return
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send(404, {"error": {"message": "not found"}})
                return
            if api_key is not None and self.headers.get("Authorization", "") != f"Bearer {api_key}":
                self._send(401, {"error": {"message": "invalid or missing API key"}})
                return
            with counter:
                state["n"] += 1
                n = state["n"]
            code = fault(n) if fault is not None else None
            if code:
                self._send(code, {"error": {"message": f"injected HTTP {code}"}})
                return
            msgs = req.get("messages")
            if not isinstance(msgs, list) or not msgs:
                self._send(400, {"error": {"message": "messages required"}})
                return
            with lock:
                text = backend.generate([msgs], temperature=float(req.get("temperature", 0.0) or 0.0),
                                        max_new_tokens=int(req.get("max_tokens", 16) or 16),
                                        seed=int(req.get("seed", 0) or 0))[0]
                choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text},
                                          "finish_reason": "length"}
                if req.get("logprobs"):
                    choice["logprobs"] = _first_token_logprobs(backend, msgs, int(req.get("top_logprobs", 5) or 5))
            with counter:
                state["answered"] += 1
            self._send(200, {"id": "cmpl-local", "object": "chat.completion", "model": backend.name,
                             "choices": [choice]})

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        @property
        def n_answered(self) -> int:
            return state["answered"]

    return Server((host, port), Handler)


def main(argv: list[str] | None = None) -> None:
    """Command line: serve a model folder, a ``.gguf`` file or ``default`` on loopback."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="default")
    ap.add_argument("--name", default=None)
    ap.add_argument("--port", type=int, default=8123)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    from .backends.local import TransformersBackend

    if args.model == "default":
        be = TransformersBackend.default(num_threads=args.threads)
    else:
        be = TransformersBackend.from_path(args.model, name=args.name, num_threads=args.threads)
    if args.name:
        be.name = args.name
    srv = make_server(be, port=args.port)
    logging.basicConfig(level=logging.INFO)
    log.info("serving %s on http://127.0.0.1:%d/v1", be.name, srv.server_address[1])
    srv.serve_forever()


if __name__ == "__main__":
    main()
