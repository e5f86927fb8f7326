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

import itertools
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


def _table_for(cp: np.ndarray, buf: Callable[[str, int, Any], np.ndarray]) -> np.ndarray:
    """The class table, completed for the code points of ``cp`` not seen before."""
    high = np.greater_equal(cp, 128, out=buf("high", cp.size, bool))
    if high.any():
        high = np.unique(cp[high])
        new = high[_TABLE[high] == 0]
        if new.size:
            _TABLE[new] = [_classes(int(c)) for c in new]
    return _TABLE


_POWERS: list[np.ndarray] = [np.ones(1, np.uint64), np.ones(1, np.uint64)]


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``_BASE ** j`` and ``_BASE_INV ** j`` modulo 2**64 for ``j < n`` (kept for the next batch).

    The kept pair is read once into a local: another thread may replace it meanwhile (with a
    shorter pair, when it needed fewer).
    """
    pw = tuple(_POWERS)
    if pw[0].size < n:
        size = max(n, 2 * pw[0].size)  # grown geometrically: batches need a little more, now and then
        with np.errstate(over="ignore"):
            pw = tuple(np.concatenate([np.ones(1, np.uint64), np.cumprod(np.full(size - 1, b, dtype=np.uint64))])
                       for b in (_BASE, _BASE_INV))
        _POWERS[:] = pw
    return pw[0][:n], pw[1][:n]


_ARANGE: list[np.ndarray] = [np.arange(1)]


def _arange(n: int) -> np.ndarray:
    """``np.arange(n)`` (int64), a view of one kept for the next batch (read once, as in :func:`_powers`)."""
    a = _ARANGE[0]
    if a.size < n:
        a = _ARANGE[0] = np.arange(n + n // 4, dtype=np.int64)
    return a[:n]


def _buffers() -> Callable[[str, int, Any], np.ndarray]:
    """``get(name, n, dtype)``: an array of ``n`` elements, reused from batch to batch.

    Every array over a batch's characters or words comes from here. Taken afresh each time they
    cost page faults, and where glibc hands large blocks straight back to the system (as dask
    workers are advised to configure it) an ``munmap`` each, which interrupts every CPU running
    another thread of the process (block reading next to the scan used up to 50% more CPU).
    """
    bufs: dict[str, np.ndarray] = {}

    def get(name: str, n: int, dtype: Any) -> np.ndarray:
        need = max(int(n), 1) * np.dtype(dtype).itemsize
        b = bufs.get(name)
        if b is None or b.size < need:
            b = bufs[name] = np.empty(need + need // 2, dtype=np.uint8)  # room for larger batches
        return b[:need].view(dtype)[:n]

    return get


def _flag(cls: np.ndarray, bit: int, out: np.ndarray, tmp: np.ndarray) -> np.ndarray:
    """``(cls & bit) != 0`` into ``out``."""
    np.bitwise_and(cls, bit, out=tmp)
    return np.not_equal(tmp, 0, out=out)


def _url_starts(cp: np.ndarray, space: np.ndarray, buf: Callable[[str, int, Any], np.ndarray]) -> np.ndarray:
    """Positions where ``https?://`` or ``www.`` is followed by a non-space, in order.

    The character pairs ``ht`` and ``ww`` are found over the whole batch; the rest of each prefix
    is checked at those (few) places only. An index past a matched character is in range: a matched
    character is not the final ``"\n"``.
    """
    n = cp.size
    first, second = buf("url_first", n, bool), buf("url_second", n, bool)
    found = []
    for pair, rests in (("ht", ("tp://", "tps://")), ("ww", ("w.",))):
        np.equal(cp[:-1], ord(pair[0]), out=first[:-1])
        np.equal(cp[1:], ord(pair[1]), out=second[:-1])
        first[-1] = False
        cand = np.flatnonzero(np.logical_and(first, second, out=first))
        for rest in rests:
            pos = cand
            for k, ch in enumerate(rest, start=2):
                pos = pos[cp[pos + k] == ord(ch)]
            found.append(pos[~space[pos + 2 + len(rest)]])
    return np.sort(np.concatenate(found))


def _scan(cp: np.ndarray, starts: np.ndarray, buf: Callable[[str, int, Any], np.ndarray], runs: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The words (start, end, length, text, hash) of the joined texts ``cp``; runs per text into ``runs``.

    ``starts``: where each text begins in ``cp``; each text is followed by one ``"\n"``. Every
    array over the characters or the words is taken from ``buf`` (:func:`_buffers`) and written
    with ``out=``; only the positions that ``np.flatnonzero`` finds are new arrays (and the
    rare URLs, digit-led runs and apostrophes). The word arrays returned are ``buf``'s, valid
    until its next use.
    """
    n_cp = cp.size
    tmp = buf("tmp", n_cp, np.uint8)
    cp64 = buf("cp64", n_cp, np.int64)  # (indices and products are int64: as uint32, numpy would convert a copy)
    cp64[...] = cp
    cls = np.take(_table_for(cp, buf), cp64, out=buf("cls", n_cp, np.uint8), mode="clip")  # code points < 0x110000
    space = _flag(cls, _SPACE, buf("space", n_cp, bool), tmp)
    # whitespace-separated runs (a text starts after the previous text's "\n")
    # (int32 throughout: a reduction over bool would first cast the whole batch to a new array)
    run_start = np.logical_not(space, out=buf("run_start", n_cp, np.int32))
    np.logical_and(run_start[1:], space[:-1], out=run_start[1:])
    runs[...] = np.add.reduceat(run_start, starts, out=buf("runs", starts.size, np.int32))  # every text has its "\n"
    # URLs: a prefix followed by a non-space, up to the next whitespace
    keep = np.logical_not(space, out=buf("keep", n_cp, bool))
    u0 = _url_starts(cp, space, buf)
    if u0.size:
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
    edges = np.flatnonzero(edge)  # a run's start and its end (one past), alternately
    n_run = edges.size // 2
    run_a, run_b = buf("run_a", n_run, np.int64), buf("run_b", n_run, np.int64)
    run_a[...], run_b[...] = edges[0::2], edges[1::2]  # contiguous: indexing with a strided array copies it
    has = np.take(start_ok, run_a, out=buf("has", n_run, bool), mode="clip")
    digit_led = None
    if not has.all():  # runs that begin with a digit: look inside
        digit_led = np.flatnonzero(~has)
        first_start = buf("first_start", n_run, np.int64)
        np.copyto(first_start, run_a)
        first_start[digit_led] = -1
        length = run_b[digit_led] - run_a[digit_led]
        pos = _spans(run_a[digit_led], length)
        run = np.repeat(digit_led, length)
        ok = start_ok[pos]
        pos, run = pos[ok], run[ok]
        first = np.r_[True, run[1:] != run[:-1]] if run.size else np.zeros(0, dtype=bool)
        first_start[run[first]] = pos[first]
    # an apostrophe right after a run joins the run after it (which starts at the next character),
    # unless that run is an "s" that ends a word (the next character is no \w: neither a letter or
    # digit nor "_", or removed)
    apos = np.flatnonzero(np.equal(cp, ord("'"), out=eq[:n_cp]))
    apos = apos[apos > 0]
    apos = apos[alnum[apos - 1] & alnum[apos + 1]]  # apos + 1 < n_cp: the last character is "\n"
    a = apos + 1
    s_end = (cp[a] == ord("s")) & ~(((cls[a + 1] & _WORD) != 0) & keep[a + 1])
    linked = np.searchsorted(run_a, a[~s_end])  # the runs joined to the run before them
    if digit_led is None and not linked.size:  # every run is a word (the usual batch)
        tok_start, tok_end = run_a, run_b
    elif not linked.size:
        with_start = np.flatnonzero(first_start >= 0)
        tok_start = np.take(first_start, with_start, out=buf("tok_start", with_start.size, np.int64), mode="clip")
        tok_end = np.take(run_b, with_start, out=buf("tok_end", with_start.size, np.int64), mode="clip")
    else:
        if digit_led is None:
            first_start = run_a
        new_chain = buf("new_chain", n_run, bool)
        new_chain.fill(True)
        new_chain[linked] = False
        chain = np.cumsum(new_chain, dtype=np.int64, out=buf("chain", n_run, np.int64))
        np.subtract(chain, 1, out=chain)  # runs joined by apostrophes
        new_chain[:-1] = new_chain[1:]
        new_chain[-1] = True
        chain_last = np.flatnonzero(new_chain)  # the last run of each chain
        with_start = np.flatnonzero(first_start >= 0) if digit_led is not None else _arange(n_run)
        c_of = np.take(chain, with_start, out=buf("c_of", with_start.size, np.int64), mode="clip")
        lead_mask = buf("lead_mask", with_start.size, bool)
        lead_mask[:1] = True
        np.not_equal(c_of[1:], c_of[:-1], out=lead_mask[1:])
        lead = with_start[lead_mask]  # the first run with a word start of each chain
        tok_start = np.take(first_start, lead, out=buf("tok_start", lead.size, np.int64), mode="clip")
        last = np.take(chain_last, np.take(chain, lead, out=buf("lead_chain", lead.size, np.int64), mode="clip"),
                       out=buf("lead_last", lead.size, np.int64), mode="clip")
        tok_end = np.take(run_b, last, out=buf("tok_end", lead.size, np.int64), mode="clip")
    n_tok = tok_start.size
    tok_len = np.subtract(tok_end, tok_start, out=buf("tok_len", n_tok, np.int64))
    # text of each word: the number of texts (after the first) that start at or before it
    tok_doc = buf("tok_doc", n_tok, np.int64)
    tok_doc.fill(0)
    first_word = np.searchsorted(tok_start, starts[1:])
    np.add.at(tok_doc, first_word[first_word < n_tok], 1)
    np.cumsum(tok_doc, out=tok_doc)
    # hash of each word: sum of cp[j] * BASE**j over the word, shifted to its start
    pw, ipw = _powers(n_cp)
    idx = buf("idx", n_tok, np.int64)
    with np.errstate(over="ignore"):
        pref = np.multiply(cp64.view(np.uint64), pw, out=buf("pref", n_cp, np.uint64))
        np.cumsum(pref, out=pref)  # pref[j]: the sum up to and including j
        tok_hash = np.take(pref, np.subtract(tok_end, 1, out=idx), out=buf("tok_hash", n_tok, np.uint64), mode="clip")
        before = np.take(pref, np.subtract(tok_start, 1, out=idx), out=buf("before", n_tok, np.uint64), mode="clip")
        if n_tok and tok_start[0] == 0:  # (words are in order: only the first can start at 0)
            before[0] = 0
        np.subtract(tok_hash, before, out=tok_hash)
        np.multiply(tok_hash, np.take(ipw, tok_start, out=before, mode="clip"), out=tok_hash)
        np.add(tok_hash, tok_len.view(np.uint64), out=tok_hash)
    return tok_start, tok_end, tok_len, tok_doc, tok_hash


def _spans(start: np.ndarray, length: np.ndarray, out: np.ndarray | None = None,
           buf: Callable[[str, int, Any], np.ndarray] | None = None) -> np.ndarray:
    """Positions ``start[i] + k`` for ``k < length[i]``, all ``i`` in order (int64; into ``out`` if given;
    temporaries from ``buf`` if given)."""
    total = int(length.sum())
    pos = np.empty(total, dtype=np.int64) if out is None else out[:total]
    if total == 0:
        return pos
    if not length.all():
        start, length = start[length > 0], length[length > 0]
    n = start.size
    get = buf or (lambda name, k, dtype: np.empty(k, dtype))
    # a running sum of steps: 1 within a span, at a span's first position the jump from the last one
    first = np.cumsum(length, out=get("span_first", n, np.int64))
    np.subtract(first, length, out=first)
    step = np.add(start[:-1], length[:-1], out=get("span_step", n - 1, np.int64))
    np.subtract(start[1:], step, out=step)
    pos.fill(1)
    pos[first[1:]] = np.add(step, 1, out=step)
    pos[0] = start[0]
    return np.cumsum(pos, out=pos)


def _grown(a: np.ndarray, n: int) -> np.ndarray:
    """``a``, or a copy of it with room for at least ``n`` elements (twice the room, at least)."""
    if a.size >= n:
        return a
    b = np.empty(max(n, 2 * a.size), dtype=a.dtype)
    b[:a.size] = a
    return b


def scan_texts(texts: Sequence[str], *, batch_chars: int = 1 << 18
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]] | None:
    """The distinct words of every text, as ``set(tokenize(t))`` for each ``t`` gives them, in compact form.

    Parameters
    ----------
    texts
        Strings (anything else is passed through ``str``).
    batch_chars
        Characters per scanned batch (memory: about 60 bytes per character of a batch, at once).
        A batch makes about a hundred numpy calls, each over all its characters or words, and
        the Python between them holds the GIL; with the default the calls are long enough that
        another thread of the process (reading blocks of labels) is seldom kept waiting. Arrays
        over a batch come from buffers kept for the next batch, so glibc maps few new blocks
        even where it maps every block over 64 kB afresh (``MALLOC_MMAP_THRESHOLD_=65536``).

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
    doc, word, n_pair = np.zeros(1 << 12, np.int64), np.zeros(1 << 12, np.int64), 0  # distinct (text, word) pairs
    index: dict[int, int] = {}  # word hash -> id
    vocab: list[str] = []
    rep = np.zeros(1 << 12, dtype=np.uint32)  # the code points of word w: rep[off[w]:off[w + 1]]
    off = np.zeros(1 << 10, dtype=np.int64)
    start, per_batch = 0, 1024
    buf = _buffers()
    while start < n_text:
        low = [str(t).lower() for t in texts[start:start + per_batch]]
        stop = start + len(low)
        lens = np.fromiter(map(len, low), dtype=np.int64, count=len(low))
        # next batch: as many texts as fill batch_chars at this batch's mean length
        per_batch = int(min(max(batch_chars * len(low) // max(int(lens.sum()), 1), 1), 1 << 20))
        low.append("")
        joined = "\n".join(low)  # every text followed by "\n"
        cp = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        starts = np.zeros(len(lens), dtype=np.int64)
        np.cumsum(lens[:-1] + 1, out=starts[1:])
        tok_start, tok_end, tok_len, tok_doc, tok_hash = _scan(cp, starts, buf, runs[start:stop])
        n_tok = tok_start.size
        inv, uniq = pd.factorize(tok_hash)  # in order of first occurrence in the batch
        # codes count up in that order: a word's first occurrence is where the running maximum grows
        top = np.maximum.accumulate(inv, out=buf("top", n_tok, np.int64))
        grows = buf("grows", n_tok, bool)
        grows[:1] = True
        np.greater(top[1:], top[:-1], out=grows[1:])
        first = np.flatnonzero(grows)
        ids_u = np.fromiter(map(index.get, uniq.tolist(), itertools.repeat(-1)), dtype=np.int64, count=uniq.size)
        new = np.flatnonzero(ids_u < 0)
        if new.size:
            n_old, n_rep = len(vocab), int(off[len(vocab)])
            ids_u[new] = np.arange(n_old, n_old + new.size)
            index.update(zip(uniq[new].tolist(), range(n_old, n_old + new.size)))
            f = first[new]
            vocab.extend(joined[a:b] for a, b in zip(tok_start[f].tolist(), tok_end[f].tolist()))
            new_len = tok_len[f]
            n_new = int(new_len.sum())
            rep = _grown(rep, n_rep + n_new)
            np.take(cp, _spans(tok_start[f], new_len), out=rep[n_rep:n_rep + n_new], mode="clip")
            off = _grown(off, len(vocab) + 1)
            np.cumsum(new_len, out=off[n_old + 1:len(vocab) + 1])
            off[n_old + 1:len(vocab) + 1] += n_rep
        ids = np.take(ids_u, inv, out=buf("ids", n_tok, np.int64), mode="clip")
        # every word equals the first word of its id: no hash collision merged two words
        at = np.take(off, ids, out=buf("at", n_tok, np.int64), mode="clip")
        size = np.take(off[1:], ids, out=buf("size", n_tok, np.int64), mode="clip")
        np.subtract(size, at, out=size)
        if not np.equal(size, tok_len, out=buf("same", n_tok, bool)).all():
            return None
        n_chars = int(tok_len.sum())
        span = buf("span", n_chars, np.int64)
        here = np.take(cp, _spans(tok_start, tok_len, span, buf), out=buf("here", n_chars, np.uint32), mode="clip")
        there = np.take(rep, _spans(at, tok_len, span, buf), out=buf("there", n_chars, np.uint32), mode="clip")
        if not np.equal(here, there, out=buf("same", n_chars, bool)).all():
            return None
        # distinct (text, word) pairs, in order of first occurrence
        key = np.add(tok_doc, start, out=tok_doc)
        np.multiply(key, len(vocab), out=key)
        np.add(key, ids, out=key)
        _, pair = pd.factorize(key)
        doc, word = _grown(doc, n_pair + pair.size), _grown(word, n_pair + pair.size)
        np.divmod(pair, len(vocab), out=(doc[n_pair:n_pair + pair.size], word[n_pair:n_pair + pair.size]))
        n_pair += pair.size
        start = stop
    indptr = np.zeros(n_text + 1, dtype=np.int64)
    np.cumsum(np.bincount(doc[:n_pair], minlength=n_text), out=indptr[1:])
    return runs, indptr, word[:n_pair].copy(), vocab
