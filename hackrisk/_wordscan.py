"""Vectorised word scanner: :func:`hackrisk.hypotheses.tokenize` for many texts at once.

The keyword groupings need the words of every text. The regular-expression tokenizer costs about
10 us of interpreter time per text (4 s for 370,000 texts) and holds the GIL throughout, so
nothing else of an analysis runs meanwhile. Here the texts of a batch are lower-cased by Python
(``str.lower`` per text, as ``tokenize`` does), joined with ``"\\n"`` into one array of code
points, and the words are found by whole-array numpy operations (which release the GIL), exactly
as the two regular expressions of ``tokenize`` find them:

* URLs first (``https?://\\S+|www\\.\\S+``): a URL runs from its prefix to the next whitespace,
  so the union of the spans that start at every match of a prefix followed by a non-space is
  what ``re.sub`` removes, leftmost match first;
* words (``[^\\W\\d_][^\\W_]*(?:'(?!s\\b)[^\\W_]+)*``), outside the URLs: within a run of letters
  and digits a word starts at the first character that is not a digit and takes the rest of the
  run; an apostrophe joins the next run to it, unless that run is an ``s`` that ends a word
  (``"friend's"`` gives ``friend``, ``s``); a run joined to a run without a word joins nothing;
* and the number of whitespace-separated runs per text (``len(text.split())``).

The joining ``"\\n"`` is whitespace and not a word character, so each text ends as a string
does. The character classes are Python's own (``str.isalnum``, ``str.isdecimal``,
``str.isspace``: the definitions ``re`` uses for ``\\w``, ``\\d`` and ``\\s``), computed for every
code point that occurs. Lower-casing maps whitespace to whitespace and everything else to
non-whitespace, so the run count of the lower-cased text is the one of the text
(``tests/test_hypotheses.py`` checks this for every code point, and the scanner against
``tokenize`` on random Unicode and on the real datasets).

Words get integer ids by a 64-bit polynomial hash of their code points; every word is then
compared with the first word of its id, so a hash collision cannot merge two words
(:func:`scan_texts` returns None then, and the caller uses ``tokenize``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

_ALNUM, _START, _WORD, _SPACE, _KNOWN = 1, 2, 4, 8, 16
_N_CODE = 0x110000
_BASE = 0x100000001B3  # odd: invertible modulo 2**64
_BASE_INV = pow(_BASE, -1, 2**64)


def _classes(code: int) -> int:
    ch = chr(code)
    alnum = ch.isalnum()
    return (_KNOWN | (_ALNUM if alnum else 0) | (_START if alnum and not ch.isdecimal() else 0)
            | (_WORD if alnum or ch == "_" else 0) | (_SPACE if ch.isspace() else 0))


_TABLE = np.zeros(_N_CODE, dtype=np.uint8)
_TABLE[:128] = [_classes(c) for c in range(128)]


def _table_for(cp: np.ndarray) -> np.ndarray:
    """The class table, completed for the code points of ``cp`` not seen before."""
    high = np.unique(cp[cp >= 128])
    new = high[_TABLE[high] == 0]
    if new.size:
        _TABLE[new] = [_classes(int(c)) for c in new]
    return _TABLE


_POWERS: list[np.ndarray] = [np.ones(1, np.uint64), np.ones(1, np.uint64)]


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``_BASE ** j`` and ``_BASE_INV ** j`` modulo 2**64 for ``j < n`` (kept for the next batch)."""
    if _POWERS[0].size < n:
        with np.errstate(over="ignore"):
            _POWERS[:] = [np.concatenate([np.ones(1, np.uint64), np.cumprod(np.full(n - 1, b, dtype=np.uint64))])
                          for b in (_BASE, _BASE_INV)]
    return _POWERS[0][:n], _POWERS[1][:n]


def _buffers() -> Callable[[str, int, Any], np.ndarray]:
    """``get(name, n, dtype)``: an array of ``n`` elements, reused from batch to batch.

    A batch needs a dozen arrays as long as its text. Taken afresh each time they cost page
    faults, and where glibc hands large blocks straight back to the system (as dask workers are
    advised to configure it) an ``munmap`` that interrupts the other threads: the scan took 2.5
    times as long that way.
    """
    bufs: dict[str, np.ndarray] = {}

    def get(name: str, n: int, dtype: Any) -> np.ndarray:
        need = max(int(n), 1) * np.dtype(dtype).itemsize
        b = bufs.get(name)
        if b is None or b.size < need:
            b = bufs[name] = np.empty(need + need // 4, dtype=np.uint8)
        return b[:need].view(dtype)[:n]

    return get


def _flag(cls: np.ndarray, bit: int, out: np.ndarray, tmp: np.ndarray) -> np.ndarray:
    """``(cls & bit) != 0`` into ``out``."""
    np.bitwise_and(cls, bit, out=tmp)
    return np.not_equal(tmp, 0, out=out)


def _scan(cp: np.ndarray, starts: np.ndarray, buf: Callable[[str, int, Any], np.ndarray]
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Runs per text and the words (start, end, text, hash) of the joined texts ``cp``.

    ``starts``: where each text begins in ``cp``; each text is followed by one ``"\n"``. Arrays
    over every character are bool or int8, and taken from ``buf`` (:func:`_buffers`).
    """
    n_cp = cp.size
    tmp = buf("tmp", n_cp, np.uint8)
    cls = np.take(_table_for(cp), cp, out=buf("cls", n_cp, np.uint8), mode="clip")  # code points < 0x110000
    space = _flag(cls, _SPACE, buf("space", n_cp, bool), tmp)
    # whitespace-separated runs (a text starts after the previous text's "\n")
    run_start = np.logical_not(space, out=buf("run_start", n_cp, bool))
    np.logical_and(run_start[1:], space[:-1], out=run_start[1:])
    runs = np.add.reduceat(run_start, starts)  # every text has at least its "\n"
    # URLs: a prefix followed by a non-space, up to the next whitespace (looked at where an h or w is;
    # positions past the end read the final "\n", which is neither a prefix character nor a non-space)
    hw_mask = np.equal(cp, ord("h"), out=buf("hw", n_cp, bool))
    hw = np.flatnonzero(np.logical_or(hw_mask, np.equal(cp, ord("w"), out=tmp.view(bool)), out=hw_mask))

    def at(k: int, ch: str) -> np.ndarray:
        return cp[np.minimum(hw + k, n_cp - 1)] == ord(ch)

    def after(k: int) -> np.ndarray:
        return ~space[np.minimum(hw + k, n_cp - 1)]

    http = at(0, "h") & at(1, "t") & at(2, "t") & at(3, "p")
    url_at = ((http & at(4, ":") & at(5, "/") & at(6, "/") & after(7))
              | (http & at(4, "s") & at(5, ":") & at(6, "/") & at(7, "/") & after(8))
              | (at(0, "w") & at(1, "w") & at(2, "w") & at(3, ".") & after(4)))
    keep = np.logical_not(space, out=buf("keep", n_cp, bool))
    if url_at.any():
        u0 = hw[url_at]
        gaps = np.flatnonzero(space)
        u1 = gaps[np.searchsorted(gaps, u0)]  # the next whitespace (there is one: the last "\n")
        keep[_spans(u0, u1 - u0)] = False  # removed, as by re.sub (overlapping spans end alike)
    alnum = _flag(cls, _ALNUM, buf("alnum", n_cp, bool), tmp)
    np.logical_and(alnum, keep, out=alnum)
    start_ok = _flag(cls, _START, buf("start_ok", n_cp, bool), tmp)
    np.logical_and(start_ok, keep, out=start_ok)
    # runs of letters and digits, and the first word-starting character of each
    a8 = alnum.view(np.int8)
    edge = buf("edge", n_cp + 1, np.int8)  # alnum[j] - alnum[j - 1], alnum 0 outside
    edge[0], edge[n_cp] = a8[0], -a8[-1]
    np.subtract(a8[1:], a8[:-1], out=edge[1:n_cp])
    eq = buf("eq", n_cp + 1, bool)
    run_a = np.flatnonzero(np.equal(edge, 1, out=eq))
    run_b = np.flatnonzero(np.equal(edge, -1, out=eq))
    first_start = np.where(start_ok[run_a], run_a, -1)
    digit_led = np.flatnonzero(first_start < 0)  # runs that begin with a digit (rare): look inside
    if digit_led.size:
        length = run_b[digit_led] - run_a[digit_led]
        pos = _spans(run_a[digit_led], length)
        run = np.repeat(digit_led, length)
        ok = start_ok[pos]
        pos, run = pos[ok], run[ok]
        first = np.r_[True, run[1:] != run[:-1]] if run.size else np.zeros(0, dtype=bool)
        first_start[run[first]] = pos[first]
    # an apostrophe right after run r - 1 joins run r, unless run r is an "s" that ends a word (the
    # next character is no \w: neither a letter or digit nor "_", or removed)
    link = np.zeros(run_a.size, dtype=bool)
    if run_a.size > 1:
        q, a = run_b[:-1], run_a[1:]
        ends_word = ~(((cls[a + 1] & _WORD) != 0) & keep[a + 1])
        link[1:] = (a == q + 1) & (cp[q] == ord("'")) & ~((cp[a] == ord("s")) & ends_word)
    chain = np.cumsum(~link) - 1  # runs joined by apostrophes
    chain_last = np.r_[np.flatnonzero(np.diff(chain)), run_a.size - 1] if run_a.size else np.zeros(0, np.int64)
    with_start = np.flatnonzero(first_start >= 0)
    c_of = chain[with_start]
    lead = with_start[np.r_[True, c_of[1:] != c_of[:-1]]] if with_start.size else with_start
    tok_start = first_start[lead]
    tok_end = run_b[chain_last[chain[lead]]]
    tok_doc = np.searchsorted(starts, tok_start, side="right") - 1  # text of each word
    # hash of each word: sum of cp[j] * BASE**j over the word, shifted to its start
    pw, ipw = _powers(n_cp)
    with np.errstate(over="ignore"):
        pref = np.multiply(cp, pw, out=buf("pref", n_cp, np.uint64))
        np.cumsum(pref, out=pref)  # pref[j]: the sum up to and including j
        before = np.where(tok_start > 0, pref[np.maximum(tok_start - 1, 0)], np.uint64(0))
        tok_hash = (pref[tok_end - 1] - before) * ipw[tok_start] + (tok_end - tok_start).astype(np.uint64)
    return runs, tok_start, tok_end, tok_doc, tok_hash


def _spans(start: np.ndarray, length: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Positions ``start[i] + k`` for ``k < length[i]``, all ``i`` in order (int64; into ``out`` if given)."""
    total = int(length.sum())
    pos = np.empty(total, dtype=np.int64) if out is None else out[:total]
    if total == 0:
        return pos
    start, length = start[length > 0], length[length > 0]
    pos.fill(1)
    # a running sum of steps: 1 within a span, at a span's first position the jump from the last one
    first = np.cumsum(length) - length
    pos[first[1:]] = start[1:] - (start[:-1] + length[:-1] - 1)
    pos[0] = start[0]
    return np.cumsum(pos, out=pos)


def scan_texts(texts: Sequence[str], *, batch_chars: int = 1 << 15
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]] | None:
    """The distinct words of every text, as ``set(tokenize(t))`` for each ``t`` gives them, in compact form.

    Parameters
    ----------
    texts
        Strings (anything else is passed through ``str``).
    batch_chars
        Characters per scanned batch (memory: about 60 bytes per character of a batch, at once).
        The default keeps the arrays over a batch's words (8 bytes a word) under 64 kB, which glibc
        serves from its heap even where it maps larger blocks afresh each time (dask workers'
        ``MALLOC_MMAP_THRESHOLD_``; 2.5 times faster there than batches of 256 kB, within 20% of
        them elsewhere), and a batch's character arrays in the core's own cache.

    Returns
    -------
    tuple or None
        ``runs`` (int64, per text: ``len(text.split())``), ``indptr`` (int64, texts + 1) and
        ``words`` (int64): the ids of the distinct words of text ``j`` are
        ``words[indptr[j]:indptr[j + 1]]``, in order of first occurrence; ``vocab``: the word of
        each id, in order of first occurrence. None on a hash collision.
    """
    n_text = len(texts)
    runs = np.zeros(n_text, dtype=np.int64)
    docs, words = [], []
    index: dict[int, int] = {}
    vocab: list[str] = []
    rep = np.zeros(0, dtype=np.uint32)  # the code points of every word of vocab, one after the other
    rep_off = [0]
    start, per_batch = 0, 1024
    buf = _buffers()
    while start < n_text:
        low = [str(t).lower() for t in texts[start:start + per_batch]]
        stop = start + len(low)
        lens = np.fromiter(map(len, low), dtype=np.int64, count=len(low))
        # next batch: as many texts as fill batch_chars at this batch's mean length
        per_batch = int(min(max(batch_chars * len(low) // max(int(lens.sum()), 1), 1), 1 << 20))
        joined = "\n".join(low) + "\n"
        cp = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        starts = np.concatenate([[0], np.cumsum(lens + 1)[:-1]])
        runs[start:stop], tok_start, tok_end, tok_doc, tok_hash = _scan(cp, starts, buf)
        inv, uniq = pd.factorize(tok_hash)  # in order of first occurrence in the batch
        # codes count up in that order: a word's first occurrence is where the running maximum grows
        first = np.flatnonzero(np.diff(np.maximum.accumulate(inv), prepend=-1) > 0)
        ids_u = np.empty(uniq.size, dtype=np.int64)
        new_pos = []
        for u, (h, f) in enumerate(zip(uniq.tolist(), first.tolist(), strict=True)):
            g = index.get(h)
            if g is None:
                g = index[h] = len(vocab)
                vocab.append(joined[tok_start[f]:tok_end[f]])
                new_pos.append(f)
            ids_u[u] = g
        if new_pos:
            new_pos = np.asarray(new_pos)
            new_len = tok_end[new_pos] - tok_start[new_pos]
            rep = np.concatenate([rep, cp[_spans(tok_start[new_pos], new_len)]])
            rep_off.extend((rep_off[-1] + np.cumsum(new_len)).tolist())
        ids = ids_u[inv]
        # every word equals the first word of its id: no hash collision merged two words
        off = np.asarray(rep_off)
        tok_len = tok_end - tok_start
        if not (off[ids + 1] - off[ids] == tok_len).all():
            return None
        n_chars = int(tok_len.sum())
        here = np.take(cp, _spans(tok_start, tok_len, buf("span", n_chars, np.int64)), out=buf("here", n_chars, np.uint32))
        there = np.take(rep, _spans(off[ids], tok_len, buf("span", n_chars, np.int64)),
                        out=buf("there", n_chars, np.uint32))
        if not np.array_equal(here, there):
            return None
        # distinct (text, word) pairs, in order of first occurrence
        key = (tok_doc + start) * np.int64(len(vocab)) + ids
        _, pair = pd.factorize(key)
        docs.append(pair // len(vocab))
        words.append(pair % len(vocab))
        start = stop
    doc = np.concatenate(docs) if docs else np.zeros(0, dtype=np.int64)
    indptr = np.zeros(n_text + 1, dtype=np.int64)
    np.cumsum(np.bincount(doc, minlength=n_text), out=indptr[1:])
    return runs, indptr, np.concatenate(words) if words else np.zeros(0, dtype=np.int64), vocab
