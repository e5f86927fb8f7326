"""Backend for any OpenAI-compatible chat-completions server (OpenAI, vLLM, llama.cpp, Ollama...).

* bounded concurrency (a thread pool of ``concurrency`` workers sharing one ``httpx.Client``);
* exponential back-off with full jitter on 429, 5xx, time-outs and connection errors (honouring
  ``Retry-After``), a per-request time-out, and a clear :class:`BackendError` once the retries are
  spent;
* HTTP 401 / 403 raise :class:`BackendAuthError` at once (no label is ever made of a refusal);
  other rejections (400, 404, 422, ...) and replies without the expected fields are *failures*:
  ``None`` replies / NaN score rows, never answers, with the reason in :attr:`last_failure`;
* a password in ``base_url`` is never shown (messages, logs and ``repr`` redact it);
* the API key is read from an environment variable at request time and is never stored on the
  object, logged, put in a cache key or written to the cube;
* ``score`` uses the server's ``top_logprobs`` of the first reply token (an approximation for
  multi-token keys: the first token that is a prefix of exactly one key's spelling counts for it).
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .local import key_forms

__all__ = ["OpenAIBackend", "BackendError", "BackendAuthError", "redact_url"]

log = logging.getLogger(__name__)

_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class BackendError(RuntimeError):
    """The server could not be reached or kept failing after all retries."""


class BackendAuthError(BackendError):
    """The server refused the credentials (HTTP 401 / 403)."""


def redact_url(url: str) -> str:
    """``url`` with any password (``https://user:secret@host``) replaced by ``***``."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(str(url))
    except ValueError:
        return "<unparsable url>"
    if parts.password is None and "@" not in parts.netloc:
        return str(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}" if user else f"***@{host}"))


def _server_message(r: Any) -> str:
    try:
        js = r.json()
        err = js.get("error", js) if isinstance(js, dict) else js
        msg = err.get("message", err) if isinstance(err, dict) else err
        return str(msg)[:200]
    except Exception:  # noqa: BLE001 (any body)
        return r.text[:200] if hasattr(r, "text") else ""


class OpenAIBackend:
    """A model behind an OpenAI-compatible ``/chat/completions`` endpoint.

    Parameters
    ----------
    model
        Model name sent to the server.
    base_url
        Server URL up to ``/v1`` (e.g. ``http://127.0.0.1:8080/v1``).
    api_key_env
        Environment variable holding the key (sent as ``Authorization: Bearer``); unset = no key.
    name
        The cube's ``model`` coordinate (default ``model``).
    revision
        Weights revision / version string; part of the cache key (default ``model``).
    concurrency
        Requests in flight at once.
    timeout
        Per-request time-out in seconds.
    max_retries
        Retries per request on 429 / 5xx / time-out / connection errors.
    backoff, max_backoff
        First back-off and its cap, in seconds (doubling, full jitter).
    max_chars
        Truncate texts to this many characters (``None``: never).
    batch_size
        Items per runner batch (one cache transaction).
    top_logprobs
        Alternatives asked for in ``score`` mode.
    """

    def __init__(self, model: str, *, base_url: str = "https://api.openai.com/v1",
                 api_key_env: str | None = "OPENAI_API_KEY", name: str | None = None,
                 revision: str | None = None, concurrency: int = 4, timeout: float = 60.0,
                 max_retries: int = 6, backoff: float = 0.5, max_backoff: float = 30.0,
                 max_chars: int | None = None, batch_size: int = 32, top_logprobs: int = 20,
                 rng: Any = None):
        import httpx

        if concurrency < 1:
            raise ValueError(f"concurrency={concurrency} must be >= 1.")
        self.model = str(model)
        self.base_url = str(base_url).rstrip("/")
        self.api_key_env = api_key_env
        self.name = str(name or model)
        self.revision = str(revision or model)
        self.identity = f"openai:{self.model}@{self.revision}"
        self.concurrency = int(concurrency)
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.max_chars = max_chars
        self.batch_size = int(batch_size)
        self.top_logprobs = int(top_logprobs)
        self._rand = random.Random(rng)
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=httpx.Timeout(self.timeout),
                                    limits=httpx.Limits(max_connections=self.concurrency))
        self.n_retries = 0  # retries done so far (for diagnostics and tests)
        self.last_failure: str | None = None  # why the last failed request failed (no secrets)

    @property
    def safe_url(self) -> str:
        """``base_url`` with any password redacted."""
        return redact_url(self.base_url)

    def __repr__(self) -> str:  # never shows the key or a password in the URL
        return f"OpenAIBackend(model={self.model!r}, base_url={self.safe_url!r}, name={self.name!r})"

    def close(self) -> None:
        self._client.close()

    # -- HTTP -----------------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            h["Authorization"] = f"Bearer {key}"
        return h

    def _sleep_for(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(self.max_backoff, max(0.0, float(retry_after)))
            except ValueError:
                pass
        with self._lock:
            return self._rand.uniform(0, min(self.max_backoff, self.backoff * 2**attempt))

    def _post(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        """POST with retries. ``None`` for a request the server rejects (4xx other than 401/403/429).

        Raises
        ------
        BackendAuthError
            HTTP 401 / 403: the key is missing or wrong; retrying cannot help.
        BackendError
            The server could not be reached, or kept failing, after all retries.
        """
        import httpx

        url = f"{self.base_url}/chat/completions"
        last = ""
        for attempt in range(self.max_retries + 1):
            retry_after = None
            try:
                r = self._client.post(url, json=payload, headers=self._headers())
            except (httpx.TimeoutException, httpx.TransportError) as err:
                last = f"{type(err).__name__}"
            else:
                if r.status_code == 200:
                    try:
                        return r.json()
                    except ValueError:
                        last = "invalid JSON in the reply"
                elif r.status_code in (401, 403):
                    env = self.api_key_env
                    state = ("is not set" if env and not os.environ.get(env) else "is set, but the server refused it")
                    raise BackendAuthError(
                        f"server {self.safe_url} refused the request: HTTP {r.status_code} "
                        f"({_server_message(r)}). The API key comes from the environment variable "
                        f"{env!r}, which {state}. Fix: export {env}=<your key> (or name another variable in "
                        "the study file: [[models]] api_key_env = \"...\") and re-run; no label was stored.")
                elif r.status_code in _RETRY_STATUS:
                    last = f"HTTP {r.status_code}"
                    retry_after = r.headers.get("retry-after")
                else:
                    reason = f"HTTP {r.status_code}: {_server_message(r)}"
                    with self._lock:
                        self.last_failure = f"server {self.safe_url} rejected the request ({reason})"
                    log.warning("server %s rejected a request: %s", self.safe_url, reason)
                    return None
            if attempt < self.max_retries:
                with self._lock:
                    self.n_retries += 1
                time.sleep(self._sleep_for(attempt, retry_after))
        raise BackendError(f"server {self.safe_url} failed {self.max_retries + 1} times (last: {last}). Fix: check "
                           "that the server runs and is reachable at that address (study file: [[models]] "
                           "base_url), or raise [[models]] timeout / max_retries; completed batches are cached "
                           "and a re-run resumes.")

    def _map(self, fn: Callable[[Any], Any], args: Sequence[Any]) -> list[Any]:
        if self.concurrency == 1 or len(args) <= 1:
            return [fn(a) for a in args]
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(fn, args))

    # -- backend API ----------------------------------------------------------------------------
    def prepare_texts(self, texts: Sequence[str], messages_fn: Any = None, **_: Any) -> tuple[list[str], np.ndarray]:
        """Cut texts longer than ``max_chars`` (the server's tokenizer is unknown here)."""
        cut = np.array([self.max_chars is not None and len(t) > self.max_chars for t in texts], dtype=bool)
        return [t[: self.max_chars] if c else t for t, c in zip(texts, cut, strict=True)], cut

    def generate(self, messages_list: Sequence[Sequence[dict[str, str]]], *, temperature: float = 0.0,
                 max_new_tokens: int = 20, seed: int = 0, **_: Any) -> list[str | None]:
        """Replies (``None`` where the server rejected the request)."""

        def one(arg: tuple[int, Sequence[dict[str, str]]]) -> str | None:
            i, msgs = arg
            js = self._post({"model": self.model, "messages": list(msgs), "temperature": float(temperature),
                             "max_tokens": int(max_new_tokens), "seed": int(seed) + i})
            if js is None:
                return None
            try:
                return str(js["choices"][0]["message"]["content"] or "")
            except (KeyError, IndexError, TypeError):
                with self._lock:
                    self.last_failure = f"server {self.safe_url} replied without choices[0].message.content"
                return None

        return self._map(one, list(enumerate(messages_list)))

    def score(self, messages_list: Sequence[Sequence[dict[str, str]]], keys: Sequence[str], **_: Any) -> np.ndarray:
        """First-token log-probabilities of the keys from ``top_logprobs``.

        ``-inf`` for a key the server gave no probability; a row of NaN where the request failed
        (rejected, or a reply without logprobs): a failure, not an answer.
        """
        forms = [[f.lower() for f in key_forms(k)] for k in keys]

        def owner(token: str) -> int | None:
            t = token.strip().lower()
            if not t:
                return None
            hits = {k for k, fs in enumerate(forms) if any(f.startswith(t) for f in fs)}
            return hits.pop() if len(hits) == 1 else None

        def one(msgs: Sequence[dict[str, str]]) -> np.ndarray:
            out = np.full(len(keys), -np.inf)
            js = self._post({"model": self.model, "messages": list(msgs), "temperature": 0.0, "max_tokens": 1,
                             "logprobs": True, "top_logprobs": self.top_logprobs})
            if js is None:
                return np.full(len(keys), np.nan)
            try:
                content = js["choices"][0]["logprobs"]["content"][0]
                alts = content.get("top_logprobs") or [content]
            except (KeyError, IndexError, TypeError, AttributeError):
                with self._lock:
                    self.last_failure = (f"server {self.safe_url} replied without logprobs (it may not support "
                                         "them). Fix: use mode = \"generate\" in [annotate]")
                return np.full(len(keys), np.nan)
            seen: set[str] = set()
            for alt in alts:
                tok, lp = str(alt.get("token", "")), alt.get("logprob")
                k = owner(tok)
                if k is None or lp is None or tok in seen or not math.isfinite(float(lp)):
                    continue
                seen.add(tok)
                out[k] = np.logaddexp(out[k], float(lp))
            return out

        return np.stack(self._map(one, list(messages_list))) if messages_list else np.zeros((0, len(keys)))
