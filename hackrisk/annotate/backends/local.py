"""Local backend on ``transformers``: any causal LM, two modes.

``score``
    One forward pass per item gives the log-probability of every answer key as the start of the
    reply. Multi-token keys are scored by their full sequence log-probability; all keys are
    appended after the prompt in the *same* pass, each attending only to the prompt and to its own
    earlier tokens (a tree attention mask), so a K-class task costs one pass, not K. Spelling
    variants of a key (``relevant`` / ``Relevant``) are summed. The rendered prompt prefix that
    precedes the text (system turn, instructions) is computed once and its KV cache reused by
    every batch.
``generate``
    Free generation (batched, left padded) whose replies are parsed, as in the paper.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["TransformersBackend", "key_forms"]

log = logging.getLogger(__name__)

_SENTINEL = "\u2063HACKRISK_TEXT\u2063"


def key_forms(key: str) -> list[str]:
    """Spelling variants of an answer key that count as that key (as-is, Capitalised, lower)."""
    out: list[str] = []
    for f in (key, key[:1].upper() + key[1:], key.lower()):
        if f and f not in out:
            out.append(f)
    return out


def _lcp(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class TransformersBackend:
    """A causal LM from ``transformers`` used as an annotator.

    Parameters
    ----------
    model, tokenizer
        A loaded causal LM and its tokenizer (see :func:`hackrisk.annotate.load_model`).
    name
        Model name (the cube's ``model`` coordinate).
    revision
        Weights revision / content hash for the cache key; default: hash of the parameters.
    max_length
        Context length in tokens; default the model's ``max_position_embeddings`` (capped at 4096).
    batch_size
        Items per forward pass at most.
    max_batch_tokens
        Padded tokens per forward pass at most (long texts go in smaller batches).
    num_threads
        ``torch.set_num_threads`` value while running (default: leave torch's setting).
    """

    def __init__(self, model: Any, tokenizer: Any, *, name: str, revision: str | None = None,
                 max_length: int | None = None, batch_size: int = 16, num_threads: int | None = None,
                 max_batch_tokens: int = 1024):
        import torch

        self.model = model.eval()
        self.tok = tokenizer
        self.name = str(name)
        self.batch_size = int(batch_size)
        self.max_batch_tokens = int(max_batch_tokens)
        self.num_threads = num_threads
        cfg_len = int(getattr(model.config, "max_position_embeddings", 2048) or 2048)
        self.max_length = int(max_length or min(cfg_len, 4096))
        if revision is None:
            h = hashlib.sha256()
            with torch.no_grad():
                for k, v in sorted(model.state_dict().items()):
                    h.update(k.encode())
                    h.update(v.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
            revision = h.hexdigest()
        self.revision = str(revision)
        self.identity = f"{self.name}@{self.revision}"
        self._chat = getattr(tokenizer, "chat_template", None) is not None
        self._prefix_cache: dict[tuple[int, ...], Any] = {}
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
        self.pad_id = int(pad)

    @classmethod
    def from_path(cls, path: str, *, name: str | None = None, **kwargs: Any) -> TransformersBackend:
        """Load a model folder or ``.gguf`` file (offline) as a backend."""
        from pathlib import Path

        from ..models import load_model

        model, tok, rev = load_model(path)
        return cls(model, tok, name=name or Path(path).stem, revision=rev, **kwargs)

    @classmethod
    def default(cls, **kwargs: Any) -> TransformersBackend:
        """The embedded SmolLM2-135M-Instruct."""
        from ..models import DEFAULT_MODEL_NAME, load_default_model

        model, tok, rev = load_default_model()
        return cls(model, tok, name=kwargs.pop("name", DEFAULT_MODEL_NAME), revision=rev, **kwargs)

    # -- rendering ------------------------------------------------------------------------------
    def render(self, messages: Sequence[dict[str, str]]) -> str:
        """Prompt string of a chat (the tokenizer's chat template, generation prompt added)."""
        if self._chat:
            return self.tok.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        return "\n\n".join(m["content"] for m in messages) + "\n"

    def _encode(self, s: str) -> list[int]:
        return list(self.tok(s, add_special_tokens=not self._chat)["input_ids"])

    def prepare_texts(self, texts: Sequence[str], messages_fn: Callable[[str], list[dict[str, str]]], *,
                      reserve: int = 32) -> tuple[list[str], np.ndarray]:
        """Truncate texts so that prompt + text + ``reserve`` answer tokens fit ``max_length``.

        Returns the (possibly shortened) texts and a boolean mask of truncated ones.
        """
        overhead = len(self._encode(self.render(messages_fn(""))))
        budget = self.max_length - overhead - reserve
        if budget < 1:
            raise ValueError(f"model {self.name!r}: the prompt alone takes {overhead} tokens, more than the "
                             f"context of {self.max_length}. Fix: shorten the template or raise max_length.")
        out, cut = [], np.zeros(len(texts), dtype=bool)
        for i, t in enumerate(texts):
            ids = self.tok(t, add_special_tokens=False)["input_ids"]
            if len(ids) > budget:
                t = self.tok.decode(ids[:budget], skip_special_tokens=True)
                cut[i] = True
            out.append(t)
        if cut.any():  # never silent: the runner also marks each such item (annotate_status bit 1)
            log.warning("model %r: %d of %d texts cut to %d tokens to fit its context of %d tokens (prompt %d "
                        "tokens, %d reserved for the answer)", self.name, int(cut.sum()), len(texts), budget,
                        self.max_length, overhead, reserve)
        return out, cut

    def _batches(self, lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
        """Items sorted by length, cut into batches of at most ``batch_size`` items and
        ``max_batch_tokens`` padded tokens (so one long text does not pad a whole batch)."""
        order = np.argsort(np.asarray(lengths), kind="stable")
        out, cur, longest = [], [], 0
        for i in order:
            n = max(int(lengths[i]), 1)
            if cur and (len(cur) >= batch_size or max(longest, n) * (len(cur) + 1) > self.max_batch_tokens):
                out.append(np.array(cur))
                cur, longest = [], 0
            cur.append(int(i))
            longest = max(longest, n)
        if cur:
            out.append(np.array(cur))
        return out

    # -- score ----------------------------------------------------------------------------------
    def _key_ids(self, keys: Sequence[str]) -> tuple[list[list[int]], list[int]]:
        forms, owner = [], []
        seen: dict[tuple[int, ...], int] = {}
        for k, key in enumerate(keys):
            for f in key_forms(str(key)):
                ids = tuple(self.tok(f, add_special_tokens=False)["input_ids"])
                if not ids:
                    raise ValueError(f"answer key {key!r} encodes to no token. Fix: use another key.")
                if ids in seen:
                    if seen[ids] != k:
                        raise ValueError(f"answer keys {keys[seen[ids]]!r} and {key!r} collide after tokenisation "
                                         f"(both {list(ids)}). Fix: choose keys that tokenise differently.")
                    continue
                seen[ids] = k
                forms.append(list(ids))
                owner.append(k)
        return forms, owner

    def _prefix_kv(self, prefix: tuple[int, ...]):
        import torch

        if prefix not in self._prefix_cache:
            self._prefix_cache.clear()  # keep one prefix: templates are processed one after another
            with torch.inference_mode():
                out = self.model.get_decoder()(input_ids=torch.tensor([prefix]), use_cache=True)
            self._prefix_cache[prefix] = _out_cache(out)
        return self._prefix_cache[prefix]

    def score(self, messages_list: Sequence[Sequence[dict[str, str]]], keys: Sequence[str], *,
              sentinel: Sequence[dict[str, str]] | None = None, reuse_prefix: bool = True) -> np.ndarray:
        """Log-probability that the reply starts with each key.

        Parameters
        ----------
        messages_list
            One chat per item.
        keys
            The K answer keys.
        sentinel
            The same chat with the text replaced by :data:`SENTINEL`; its part before the text is
            the shared prefix whose KV cache is reused.
        reuse_prefix
            Set ``False`` to compute every prompt in full (for checks and benchmarks).

        Returns
        -------
        numpy.ndarray
            ``(n, K)`` float64 log-probabilities (variants of a key summed).
        """
        import torch

        forms, owner = self._key_ids(keys)
        ids = [self._encode(self.render(m)) for m in messages_list]
        prefix: tuple[int, ...] = ()
        if reuse_prefix and sentinel is not None:
            s = self.render(sentinel)
            if _SENTINEL in s:
                prefix = tuple(self._encode(s.split(_SENTINEL, 1)[0]))
        out = np.full((len(ids), len(keys)), -np.inf)
        old = torch.get_num_threads()
        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        try:
            for idx in self._batches([len(x) - len(prefix) for x in ids], self.batch_size):
                lp = self._score_batch([ids[i] for i in idx], prefix, forms)
                for f, k in enumerate(owner):
                    out[idx, k] = np.logaddexp(out[idx, k], lp[:, f])
        finally:
            torch.set_num_threads(old)
        return out

    def _score_batch(self, seqs: list[list[int]], prefix: tuple[int, ...], forms: list[list[int]]) -> np.ndarray:
        import torch

        p = min([_lcp(s, prefix) for s in seqs] + [len(prefix)])
        p = min(p, min(len(s) for s in seqs) - 1)
        past = None
        if p > 0:
            past = copy.deepcopy(self._prefix_kv(prefix))
            if p < len(prefix):
                past.crop(p - len(prefix))  # negative: drop that many tokens (all versions)
            past.batch_repeat_interleave(len(seqs))
        rest = [s[p:] for s in seqs]
        b = len(rest)
        lens = np.array([len(r) for r in rest])
        L = int(lens.max())
        flen = [len(f) for f in forms]
        F = int(sum(flen))
        Q = L + F
        inp = torch.full((b, Q), self.pad_id, dtype=torch.long)
        pos = torch.zeros((b, Q), dtype=torch.long)
        allow = torch.zeros((b, Q, p + Q), dtype=torch.bool)
        allow[:, :, :p] = True
        causal = torch.tril(torch.ones(L, L, dtype=torch.bool))
        fstart = np.cumsum([0, *flen])[:-1]
        for i, r in enumerate(rest):
            n = len(r)
            inp[i, :n] = torch.tensor(r)
            pos[i, :n] = torch.arange(p, p + n)
            allow[i, :n, p:p + n] = causal[:n, :n]
            for f, toks in enumerate(forms):
                a = L + int(fstart[f])
                m = len(toks)
                inp[i, a:a + m] = torch.tensor(toks)
                pos[i, a:a + m] = torch.arange(p + n, p + n + m)
                allow[i, a:a + m, p:p + n] = True
                allow[i, a:a + m, p + a:p + a + m] = torch.tril(torch.ones(m, m, dtype=torch.bool))
        diag = torch.arange(Q)
        allow[:, diag, p + diag] = True  # padding queries attend to themselves (no empty rows)
        dtype = next(self.model.parameters()).dtype
        mask = torch.zeros(allow.shape, dtype=dtype).masked_fill_(~allow, torch.finfo(dtype).min)[:, None]
        # logits needed: last text token (first key token) and each key token but the last
        rows, cols, tgt, which = [], [], [], []
        for i in range(b):
            n = int(lens[i])
            for f, toks in enumerate(forms):
                a = L + int(fstart[f])
                srcs = [n - 1] + [a + j for j in range(len(toks) - 1)]
                rows += [i] * len(toks)
                cols += srcs
                tgt += toks
                which += [(i, f)] * len(toks)
        with torch.inference_mode():
            body = self.model.get_decoder()(input_ids=inp, attention_mask=mask, position_ids=pos,
                                            use_cache=past is not None, **_cache_kw(self.model, past))
            h = body.last_hidden_state[torch.tensor(rows), torch.tensor(cols)]
            logits = self.model.get_output_embeddings()(h).float()
            lp = torch.log_softmax(logits, -1)[torch.arange(len(tgt)), torch.tensor(tgt)].double().numpy()
        res = np.zeros((b, len(forms)))
        np.add.at(res, (np.array([w[0] for w in which]), np.array([w[1] for w in which])), lp)
        return res

    # -- generate -------------------------------------------------------------------------------
    def generate(self, messages_list: Sequence[Sequence[dict[str, str]]], *, temperature: float = 0.0,
                 max_new_tokens: int = 20, seed: int = 0, batch_size: int | None = None) -> list[str]:
        """Free replies (greedy at temperature 0, else sampled with ``seed``)."""
        import torch

        bs = batch_size or self.batch_size
        ids = [self._encode(self.render(m)) for m in messages_list]
        out: list[str] = [""] * len(ids)
        old = torch.get_num_threads()
        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        try:
            for start, idx in enumerate(self._batches([len(x) + max_new_tokens for x in ids], bs)):
                L = max(len(ids[i]) for i in idx)
                inp = torch.full((len(idx), L), self.pad_id, dtype=torch.long)
                att = torch.zeros((len(idx), L), dtype=torch.long)
                for r, i in enumerate(idx):
                    inp[r, L - len(ids[i]):] = torch.tensor(ids[i])
                    att[r, L - len(ids[i]):] = 1
                kw: dict[str, Any] = {"do_sample": False}
                if temperature > 0:
                    kw = {"do_sample": True, "temperature": float(temperature), "top_k": 0, "top_p": 1.0}
                    torch.manual_seed(int(seed) + start)  # per batch
                with torch.inference_mode():
                    gen = self.model.generate(input_ids=inp, attention_mask=att, max_new_tokens=max_new_tokens,
                                              pad_token_id=self.pad_id, **kw)
                for r, i in enumerate(idx):
                    out[i] = self.tok.decode(gen[r, L:], skip_special_tokens=True)
        finally:
            torch.set_num_threads(old)
        return out


SENTINEL = _SENTINEL


def _cache_kw(model: Any, past: Any) -> dict[str, Any]:
    """``cache=`` (transformers >= 5.2x) or ``past_key_values=`` (older)."""
    import inspect

    params = inspect.signature(model.get_decoder().forward).parameters
    return {"cache" if "cache" in params else "past_key_values": past}


def _out_cache(out: Any) -> Any:
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values
