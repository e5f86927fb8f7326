"""Execution helpers of the chunked (dask) analysis: the one pass over a lazy ``label``.

Below the analyses that use it: :mod:`hackrisk.analysis.frequentist` (``test_hypotheses`` on a
lazy cube) and :mod:`hackrisk.hypotheses` call into this module, and this module imports neither
of them (nor :mod:`hackrisk.scale`, the public chunked API above them); the checks that belong to
the analyses are passed in as functions.  See :mod:`hackrisk.scale` for the method.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .cube import CONFIG_DIMS, LABEL_DIMS, NOT_ANNOTATED, OUTSIDE, validate_cube

log = logging.getLogger("hackrisk.scale")

_MAX_BLOCK_LABELS = 2**23  # labels per block: 16 MB of int16
_SUB_ITEMS = 8192  # items per matrix product within a block
_ONEHOT_BYTES = 8 << 20  # per worker, for the one-hot indicator of the block counting


def is_lazy(cube: xr.Dataset) -> bool:
    """Whether the cube's ``label`` is a dask array (opened lazily, e.g. by :func:`hackrisk.open_cube`)."""
    from dask.base import is_dask_collection

    return isinstance(cube, xr.Dataset) and "label" in cube and is_dask_collection(cube["label"].data)


def analysis_chunks(cube: xr.Dataset, *, max_labels: int = _MAX_BLOCK_LABELS) -> dict[str, int]:
    """Dask chunks of ``label`` for the analysis: one task, whole item chunks of the store, and as
    many configurations as fit in ``max_labels`` labels per block.

    A zarr store written by :func:`hackrisk.save_cube` keeps one configuration per chunk (so that
    annotation runners can write configurations independently); the analysis is faster on blocks
    that hold many configurations. Item chunks of the store are kept whole, so every stored chunk
    is read exactly once.

    Parameters
    ----------
    cube
        A label cube, in memory or lazy.
    max_labels
        Upper bound on the labels per block (default 2**23: 16 MB of int16).

    Returns
    -------
    dict
        ``{dim: chunk size}`` for ``task, model, prompt, temperature, item`` (and ``sample``).
    """
    if max_labels < 1:
        raise ValueError(f"analysis_chunks: max_labels={max_labels} must be >= 1.")
    lab = cube["label"]
    n_item = lab.sizes["item"]
    if lab.chunks is not None:
        item_chunk = int(lab.data.chunks[lab.get_axis_num("item")][0])
    else:
        item_chunk = min(n_item, 65536)
    item_chunk = max(1, min(item_chunk, n_item))
    out = {"task": 1, "item": item_chunk}
    if "sample" in lab.dims:
        out["sample"] = 1
    budget = max(1, max_labels // item_chunk)
    for dim in ("temperature", "prompt", "model"):  # innermost first
        size = max(1, min(lab.sizes[dim], budget))
        out[dim] = size
        budget = max(1, budget // size)
    return out


def compute_kw(scheduler: Any = None) -> dict[str, Any]:
    """``scheduler=`` for ``dask.compute``: the one given, else the active one, named directly.

    To find the active scheduler dask looks for a ``dask.distributed`` client on every compute,
    importing ``distributed`` whenever it is installed: 0.4 s, paid by the first compute of a
    process. A client can only exist once ``distributed`` has been imported, so until then the
    configured scheduler (``dask.config`` ``scheduler``; default: threads) is passed as the function
    dask would pick itself, and dask skips the import.
    """
    import sys

    if scheduler is not None:
        return {"scheduler": scheduler}
    if "distributed" in sys.modules:
        return {}
    import dask

    try:
        from dask.base import named_schedulers
    except ImportError:  # another dask layout: let dask find the scheduler
        return {}
    name = dask.config.get("scheduler", None) or "threads"
    if isinstance(name, str) and name.lower() in named_schedulers:
        return {"scheduler": named_schedulers[name.lower()]}
    return {}


def _scratch_pool() -> Callable[[str, tuple[int, ...], Any], np.ndarray]:
    """``get(name, shape, dtype)``: a buffer per (worker thread, name), reused from block to block.

    A pass allocates the same few block-sized arrays for every block; taking them fresh each time
    costs a page fault per 4 kB (a third of the pass's CPU on a 1e9-label cube when glibc hands
    large buffers straight back to the kernel). The pool lives as long as the pass's graph; on a
    distributed cluster every task gets its own (empty) copy, which is correct, just not reused.
    """
    import threading

    bufs: dict[tuple[int, str], np.ndarray] = {}

    def get(name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        n = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        key = (threading.get_ident(), name)
        buf = bufs.get(key)
        if buf is None or buf.size < n:
            buf = bufs[key] = np.empty(n, dtype=np.uint8)
        return buf[:n].view(dtype).reshape(shape)

    return get


def _distinct_rows(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of a boolean matrix (in order of first appearance) and, per input row, the
    index of its distinct row."""
    first: dict[bytes, int] = {}
    inv = np.array([first.setdefault(row.tobytes(), len(first)) for row in np.packbits(mask, axis=1)],
                   dtype=np.int64)
    keep = np.zeros(len(first), dtype=np.int64)
    keep[inv[::-1]] = np.arange(len(inv))[::-1]  # first input row of every distinct row
    return mask[keep], inv


def _block_partial(lab: np.ndarray, rows: np.ndarray | None, codes: np.ndarray | None, pad: np.ndarray,
                   n_class: int, sample: int | None, scratch: Callable | None = None) -> dict[str, Any]:
    """Everything one block of ``label`` contributes, so that each block is read by one task.

    ``lab``: (1, m, p, q, i) or (1, m, p, q, i, s); ``rows``: (r, i) float32 0/1, the distinct group
    memberships of the task's hypotheses (None: the task has none); ``pad``: the positions of the block's padding
    items (the others are real); ``scratch``: a :func:`_scratch_pool` for the block-sized
    temporaries.

    Returns partial ``counts`` (k, m*p*q, r) float64, ``missing`` (m, p, q) labels -1 on real
    items, ``labelled`` (p,) any label on a real item, ``bad`` > 0 when the block holds invalid
    codes (outside -2..K-1, or anything but -1 on a padding item).
    """
    from .analysis import _kernels as K

    # one pass for the -1 counts and a range check (two reductions, no temporaries); the
    # padding items are looked at on their own
    bad = int(lab.size > 0 and (lab.min() < OUTSIDE or lab.max() >= n_class))
    scratch = scratch or _scratch_pool()
    is_na = np.equal(lab, NOT_ANNOTATED, out=scratch("is_na", lab.shape, bool))
    missing = np.count_nonzero(is_na, axis=4)  # (1, m, p, q[, s]), padding included
    if pad.size:  # (into kept buffers: taken afresh for every block they cost page faults and unmaps)
        shape = (*lab.shape[:4], pad.size, *lab.shape[5:])
        on_pad = np.take(lab, pad, axis=4, out=scratch("on_pad", shape, lab.dtype), mode="clip")
        on_pad = np.not_equal(on_pad, NOT_ANNOTATED, out=scratch("on_pad_set", shape, bool))
        bad += int(np.count_nonzero(on_pad))
        missing = missing - (pad.size - np.count_nonzero(on_pad, axis=4))
    # labels on padding items are invalid anyway, so "labelled" looks at real items only
    labelled = (missing < lab.shape[4] - pad.size).any(axis=(0, 1, 3, 4) if lab.ndim == 6 else (0, 1, 3))
    if lab.ndim == 6:  # sample dimension: every draw validated, the chosen one counted
        lab, missing = lab[..., sample], missing[..., sample]
    lab = lab[0]
    out = {"bad": bad, "labelled": labelled, "missing": missing[0].astype(np.int64)}
    if rows is not None:
        flat = lab.reshape(-1, lab.shape[-1])
        n_cfg, n_item = flat.shape
        # the float32 one-hot of as many classes as fit in _ONEHOT_BYTES, over slices of _SUB_ITEMS
        # items: a few MB per worker, not 4 bytes per label and class of the block. Each product is
        # written to its own place and the slices summed once at the end (float32 sums of counts stay
        # exact integers below 2**24 items per group): few, long numpy calls, each releasing the GIL
        # once (a generator running next to the counting holds it between its own calls)
        width = max(1, min(_SUB_ITEMS, n_item))
        per_call = max(1, min(codes.size, _ONEHOT_BYTES // (4 * n_cfg * width)))
        parts = scratch("parts", (-(-n_item // width), codes.size * n_cfg, rows.shape[0]), np.float32)
        work = scratch("onehot", (per_call * n_cfg * width,), np.float32)
        for s, i0 in enumerate(range(0, n_item, width)):
            for j0 in range(0, codes.size, per_call):
                j1 = min(j0 + per_call, codes.size)
                K.count_by_group(flat[:, i0:i0 + width], rows[:, i0:i0 + width], codes[j0:j1], work=work,
                                 out=parts[s, j0 * n_cfg:j1 * n_cfg])
        out["counts"] = parts.sum(axis=0).reshape(codes.size, n_cfg, rows.shape[0]).astype(np.float64)
    return out


def _store_partial(spec: Mapping[str, Any], lo: tuple[int, ...], hi: tuple[int, ...], *args: Any,
                   scratch: Callable) -> dict[str, Any]:
    """:func:`_block_partial` of the block ``label[lo:hi]``, decoded from the store into a reused buffer."""
    lab = _read_block(spec, lo, hi, out=scratch("label", tuple(h - a for a, h in zip(lo, hi)), spec["dtype"]),
                      scratch=scratch)
    return _block_partial(lab, *args, scratch=scratch)


def _add_partials(*parts: dict[str, Any]) -> dict[str, Any]:
    """Sum of block partials over item blocks (``labelled`` is OR-ed)."""
    out = dict(parts[0])
    for part in parts[1:]:
        for key, val in part.items():
            out[key] = (out[key] | val) if key == "labelled" else out[key] + val
    return out


def _tree_sum(items: list, fan_in: int = 4):
    """Delayed tree reduction of block partials (bounded fan-in keeps memory flat)."""
    import dask

    add = dask.delayed(_add_partials, pure=True)
    while len(items) > 1:
        items = [add(*items[i:i + fan_in]) if len(items[i:i + fan_in]) > 1 else items[i]
                 for i in range(0, len(items), fan_in)]
    return items[0]


def _store_reader(cube: xr.Dataset, dims: tuple[str, ...]) -> dict[str, Any] | None:
    """How to read ``label`` straight from its zarr chunk files, or None.

    A store written by :func:`hackrisk.save_cube` holds one small zstd-compressed chunk per
    configuration. Through the dataset's dask array each of them costs a task and a zarr call,
    and zarr 3 runs every read on its single I/O event-loop thread, so two dask workers wait on
    each other. Instead, each analysis block reads its chunk files and decodes them in the
    worker's own thread (:func:`_read_block`: file reads and zstd release the GIL).

    Only for the pristine array of an opened store (its dask graph is the open itself: no
    selection, reordering or arithmetic since) stored in ``dims`` order as a zarr v3 array of
    regular chunks, default chunk keys and the ``bytes`` + ``zstd`` codecs that ``save_cube``
    writes; anything else returns None and the dataset's own array is used.
    """
    source = cube.encoding.get("source")
    data = cube["label"].data
    if not source or "chunks" not in cube["label"].encoding or tuple(cube["label"].dims) != tuple(dims):
        return None
    names = list(getattr(data, "dask", {}).layers) if hasattr(data, "dask") else []
    if len(names) > 2 or not str(getattr(data, "name", "")).startswith("open_dataset-"):
        return None
    from .io import _plain_layout

    layout = _plain_layout(source, "label", "BytesCodec")
    if layout is None:
        return None
    arr, chunk, sep = layout
    endian = arr.metadata.codecs[0].endian
    if str(getattr(endian, "value", endian)) not in ("little", "None") or tuple(arr.shape) != tuple(data.shape):
        return None
    return {"dir": str(Path(str(source)) / "label"), "sep": sep, "chunk": chunk,
            "dtype": np.dtype(arr.dtype).newbyteorder("<").str, "shape": tuple(arr.shape)}


def _read_block(spec: Mapping[str, Any], lo: tuple[int, ...], hi: tuple[int, ...],
                out: np.ndarray | None = None, scratch: Callable | None = None) -> np.ndarray:
    """``label[lo:hi]`` decoded from the store's chunk files in the calling thread (see :func:`_store_reader`).

    When the block is a run of whole chunks that follow each other in its memory (chunks of one
    item range, ``1`` along every other dimension, as :func:`hackrisk.save_cube` writes them),
    their files are read into one buffer and decoded by a single zstd call (:func:`_read_chunk_run`).
    Otherwise, and whenever that fails, chunk by chunk: a chunk that lies wholly inside the block
    is decoded in place, one that straddles its edge is decoded whole and the overlap copied.
    ``out``: where to decode (the block's shape and the store's dtype; default a new array);
    ``scratch``: a :func:`_scratch_pool` for the compressed bytes. A missing or undecodable chunk is
    a :class:`hackrisk.io.StoreError` naming its file (never fill values).
    """
    from numcodecs.zstd import Zstd

    from .io import _decode_chunk_file

    chunk = spec["chunk"]
    if out is None:
        out = np.empty([h - lo_ for lo_, h in zip(lo, hi, strict=True)], dtype=spec["dtype"])
    codec = Zstd()
    grid = [range(lo_ // c, (h - 1) // c + 1) for lo_, h, c in zip(lo, hi, chunk, strict=True)]
    if (all(c == 1 for c in chunk[:-1]) and lo[-1] % chunk[-1] == 0 and hi[-1] - lo[-1] == chunk[-1]
            and out.flags.c_contiguous and out.size
            and _read_chunk_run(spec, list(itertools.product(*grid)), out, scratch)):
        return out
    nbytes = int(np.prod(chunk)) * out.itemsize
    for coords in itertools.product(*grid):
        start = [k * c for k, c in zip(coords, chunk, strict=True)]
        src = tuple(slice(max(lo_, a) - a, min(h, a + c) - a) for lo_, h, a, c in zip(lo, hi, start, chunk))
        dst = tuple(slice(max(lo_, a) - lo_, min(h, a + c) - lo_) for lo_, h, a, c in zip(lo, hi, start, chunk))
        view = out[dst]
        if view.shape == chunk and view.flags.c_contiguous:
            decode = functools.partial(_decode_chunk, codec, nbytes, out=view)
            _decode_chunk_file(spec["dir"], spec["sep"], coords, "label", decode)
        else:
            raw = _decode_chunk_file(spec["dir"], spec["sep"], coords, "label",
                                     functools.partial(_decode_chunk, codec, nbytes))
            view[...] = np.frombuffer(raw, dtype=out.dtype).reshape(chunk)[src]
    return out


def _decode_chunk(codec: Any, nbytes: int, raw: bytes | bytearray, out: np.ndarray | None = None) -> Any:
    """One chunk file's bytes decoded; they must decode to a whole chunk of ``nbytes`` bytes (a frame
    of another size is a damaged or foreign file, whose bytes must not pass for the chunk's)."""
    declared = _frame_content_size(memoryview(raw), 0)
    if declared not in (-1, nbytes):
        raise ValueError(f"it holds {declared} bytes where a chunk has {nbytes}")
    data = codec.decode(raw, out=out)
    if out is None and len(data) != nbytes:
        raise ValueError(f"it holds {len(data)} bytes where a chunk has {nbytes}")
    return data


_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _frame_content_size(raw: memoryview, at: int) -> int:
    """The decompressed size that the zstd frame at ``raw[at]`` declares in its header; -1 if none."""
    if bytes(raw[at:at + 4]) != _ZSTD_MAGIC or len(raw) < at + 6:
        return -1
    desc = raw[at + 4]  # frame header descriptor: content-size flag, single segment, dictionary id size
    size_flag, single = desc >> 6, (desc >> 5) & 1
    pos = at + 5 + (0 if single else 1) + (0, 1, 2, 4)[desc & 3]
    n = (single, 2, 4, 8)[size_flag]
    if n == 0 or len(raw) < pos + n:
        return -1
    value = int.from_bytes(raw[pos:pos + n], "little")
    return value + 256 if n == 2 else value


def _read_chunk_run(spec: Mapping[str, Any], coords: list[tuple[int, ...]], out: np.ndarray,
                    scratch: Callable | None) -> bool:
    """Decode the chunks ``coords``, which fill ``out`` one after another, with one zstd call; False
    (and ``out`` to be read again) on a missing, short or undecodable chunk file.

    zstd decodes concatenated frames as one stream, so the files are read into one buffer and
    decoded at once: one call that releases the GIL instead of one per chunk (80 per block of the
    benchmark's cube), and none of the per-call Python. Each file must hold a frame that declares
    the size of a whole chunk (the checksums that ``save_cube`` writes are checked by zstd), so
    that no chunk can fill the place of another.
    """
    from numcodecs.zstd import Zstd

    from .io import _chunk_path

    want = out.nbytes // len(coords)
    size = max(out.nbytes // 4, 1 << 16)  # room for the compressed bytes; grows when they need more
    raw = scratch("raw", (size,), np.uint8) if scratch is not None else np.empty(size, np.uint8)
    at = 0
    for c in coords:
        try:  # open, read into the room left, close: a read returns less than asked only at the end of
            # the file (and should one return less, the frames no longer decode: read chunk by chunk)
            fd = os.open(_chunk_path(spec["dir"], spec["sep"], c), os.O_RDONLY)
        except OSError:
            return False
        begin = at
        try:
            while True:
                if at == raw.size:
                    grown = scratch("raw", (2 * at,), np.uint8) if scratch is not None else np.empty(2 * at, np.uint8)
                    grown[:at] = raw[:at]
                    raw = grown
                n = os.readv(fd, [memoryview(raw)[at:]])
                at += n
                if at < raw.size or n == 0:
                    break
        except OSError:
            return False
        finally:
            os.close(fd)
        if _frame_content_size(memoryview(raw), begin) != want:
            return False
    raw = raw[:at]
    try:
        Zstd().decode(raw, out=out.reshape(-1))
    except Exception:  # noqa: BLE001 (codec errors have many types): read chunk by chunk to name the file
        return False
    return True


def count_lazy(
    cube: xr.Dataset,
    hypotheses: xr.Dataset,
    *,
    check_hypotheses: Callable,
    label_array: Callable,
    sample: int | None = None,
    chunks: Mapping[str, int] | None = None,
    scheduler: str | None = None,
    task_parts: Callable[[int], tuple[np.ndarray, np.ndarray, Any]] | None = None,
    light: xr.Dataset | None = None,
) -> dict[str, Any]:
    """The counting pass of :func:`hackrisk.scale.count_hypotheses` (see there).

    ``check_hypotheses(cube, hypotheses) -> (t_idx, cls, group)`` and ``label_array(cube,
    sample)`` are the in-memory path's checks (:mod:`hackrisk.analysis.frequentist`), so both
    paths raise the same messages.

    ``task_parts`` (with ``hypotheses=None``): the hypotheses are made in the pass. ``task_parts(t)
    -> (group, cls, part)`` gives the hypotheses of task number ``t`` of this cube (``group`` int8
    hypothesis x cube item, ``cls`` their class codes, ``part`` anything); each task's call is a
    dask task that the counting of that task's blocks waits for, so one worker makes the next
    task's hypotheses while the other counts. The result then also holds ``parts`` (task order).
    The caller validates the cube and its ``(task, item)`` variables first (as ``task_parts``
    is made from them), on ``light`` (:func:`light_copy`), which it passes on.
    """
    import dask

    from .analysis import _kernels as K

    kw = compute_kw(scheduler)
    if task_parts is None:  # (with task_parts the caller has made these checks, on its light copy)
        validate_cube(cube, check_values=False)
        light = light_copy(cube, kw)
        validate_cube(light)  # every check that does not involve the labels; they are checked in the pass
        t_idx, cls, group = check_hypotheses(cube, hypotheses)
    elif light is None:
        light = light_copy(cube, kw)
    # checks sample= with the in-memory rules, on a one-label slice (same messages)
    label_array(light.isel({d: slice(0, 1) for d in LABEL_DIMS}), sample)
    s_idx = None if "sample" not in cube["label"].dims else (0 if sample is None else int(sample))

    lab = cube["label"]
    chunks = analysis_chunks(cube) | dict(chunks or {})
    chunks = {d: c for d, c in chunks.items() if d in lab.dims and d != "sample"}
    if "sample" in lab.dims:
        chunks["sample"] = -1  # every draw in the block: one reader per block
    lab = lab.variable.transpose(*LABEL_DIMS, ...)
    spec = _store_reader(cube, lab.dims)
    if spec is None:
        data = lab.chunk(chunks).data
        block_chunks = data.chunks
    else:  # blocks read straight from the store: only their bounds are needed (no rechunk graph)
        from dask.array.core import normalize_chunks

        block_chunks = normalize_chunks(tuple(chunks.get(d, -1) for d in lab.dims), lab.shape)
    n_task = lab.sizes["task"]
    cfg_shape = tuple(lab.sizes[d] for d in CONFIG_DIMS)
    n_cfg = int(np.prod(cfg_shape))
    real = np.asarray(cube["item_id"].values) != ""
    truth = np.asarray(cube["truth"].values)
    n_cls = np.asarray((cube["class_name"] != "").sum("class").values)

    # per task: distinct membership rows of its hypotheses (A, and A or B) and the classes to count
    if task_parts is None:
        plans = {int(t): (np.flatnonzero(t_idx == t), *_task_plan(group[t_idx == t], cls[t_idx == t]))
                 for t in np.unique(t_idx)}
        lazy_plans = [dask.delayed(plans[t][1:], pure=True) if t in plans else None for t in range(n_task)]
    else:  # made in the graph: a task's plan is None when it has no hypothesis
        # one task's hypotheses at a time, each after the previous one, so that the other workers count
        # the blocks of the tasks made before: made side by side, two tasks' hypotheses share the GIL
        # for their Python parts (1.2-1.3 s together for 1.6 s one after the other), while counting
        # scales 1.9x
        # smallest task first: no block can be counted before the first task's hypotheses are made
        made: list = [None] * n_task
        previous = None
        for t in np.argsort(real.sum(axis=1), kind="stable").tolist():  # pure=False: pure would hash the closure
            made[t] = previous = dask.delayed(_in_turn, pure=False)(task_parts, t, previous)
        lazy_plans = [dask.delayed(_part_plan, pure=True)(part) for part in made]

    bounds = [np.concatenate([[0], np.cumsum(c)]) for c in block_chunks]
    scratch = _scratch_pool()
    if spec is None:
        blocks = data.to_delayed(optimize_graph=True)  # (task, m, p, q, item[, sample]) blocks
        partial = dask.delayed(functools.partial(_block_partial, scratch=scratch), pure=True)
    else:  # each block is read by the task that counts it, decoding its chunk files in that thread
        read_partial = dask.delayed(functools.partial(_store_partial, scratch=scratch), pure=True)
        spec_d = dask.delayed(spec, pure=True)  # one graph node, not a dict traversed per block

        def partial(index, *args):
            return read_partial(spec_d, tuple(int(b[j]) for b, j in zip(bounds, index)),
                                tuple(int(b[j + 1]) for b, j in zip(bounds, index)), *args)
    lazy, where = [], []
    n_blocks = tuple(len(c) for c in block_chunks)
    for t_b in range(n_blocks[0]):
        t0, t1 = bounds[0][t_b], bounds[0][t_b + 1]
        if t1 - t0 != 1:
            raise ValueError(f"chunks: 'task' must be chunked 1 per block for the analysis, got {block_chunks[0]}. "
                             "Fix: pass chunks={'task': 1, ...} (the default).")
        item_args = []
        for i_b in range(n_blocks[4]):
            i0, i1 = bounds[4][i_b], bounds[4][i_b + 1]
            rows = dask.delayed(_plan_rows, pure=True)(lazy_plans[t0], i0, i1)
            item_args.append((rows, dask.delayed(np.flatnonzero(~real[t0, i0:i1]))))
        codes = dask.delayed(_plan_codes, pure=True)(lazy_plans[t0])
        for idx in np.ndindex(*n_blocks[1:4]):
            parts = []
            for i_b, (rows, pad_b) in enumerate(item_args):
                index = (t_b, *idx, i_b) if len(n_blocks) == 5 else (t_b, *idx, i_b, 0)
                parts.append(partial(index if spec is not None else blocks[index], rows, codes, pad_b,
                                     int(n_cls[t0]), s_idx))
            lazy.append(_tree_sum(parts))
            where.append((t0, *(slice(bounds[1 + a][j], bounds[1 + a][j + 1]) for a, j in enumerate(idx))))

    if task_parts is None:
        results = dask.compute(*lazy, **kw)
    else:
        results = dask.compute(*lazy, *made, *lazy_plans, **kw)
        results, made, done = results[:len(lazy)], results[len(lazy):len(lazy) + n_task], results[len(lazy) + n_task:]
        group = np.concatenate([p[0] for p in made])
        cls = np.concatenate([np.asarray(p[1], dtype=np.int64) for p in made])
        t_idx = np.repeat(np.arange(n_task), [len(p[1]) for p in made])
        plans = {t: (np.flatnonzero(t_idx == t), *plan) for t, plan in enumerate(done) if plan is not None}

    n_bad = 0
    labelled = np.zeros((n_task, lab.sizes["prompt"]), dtype=bool)
    missing = np.zeros((n_task, *cfg_shape), dtype=np.int64)
    counts = {t: np.zeros((p[3].size, *cfg_shape, p[1].shape[0])) for t, p in plans.items()}
    for (t, sm, sp, sq), res in zip(where, results, strict=True):
        n_bad += res["bad"]
        labelled[t, sp] |= res["labelled"]
        missing[t, sm, sp, sq] = res["missing"]
        if "counts" in res:
            c = res["counts"]
            shape = (c.shape[0], sm.stop - sm.start, sp.stop - sp.start, sq.stop - sq.start, c.shape[-1])
            counts[t][:, sm, sp, sq] = c.reshape(shape)
    if n_bad > 0 or _unused_prompt_labelled(cube, labelled):
        validate_cube(cube)  # raises the in-memory path's message (a full pass, on error only)
        raise ValueError("cube 'label' holds invalid codes (outside -2..K-1, or on padding items). "
                         "Fix: check the labels with hackrisk.validate_cube(cube.load()).")
    annotated_tc = missing.reshape(n_task, n_cfg) == 0

    n_h = group.shape[0]
    k_a = np.empty((n_h, n_cfg + 1), dtype=np.float64)
    k_b = np.empty_like(k_a)
    hn_a = np.empty(n_h, dtype=np.int64)
    hn_b = np.empty(n_h, dtype=np.int64)
    n_a, n_b = np.zeros(n_h, dtype=np.int64), np.zeros(n_h, dtype=np.int64)
    for t, (hs, rows, inv, codes, cls_pos) in plans.items():
        cnt = counts[t].reshape(codes.size, n_cfg, rows.shape[0])  # (k, C, r)
        tr = truth[t]
        hum = K.count_by_group(tr[None, :], rows, codes).astype(np.float64)  # (k, 1, r)
        both = np.concatenate([cnt, hum], axis=1)  # (k, C+1, r)
        ka = both[cls_pos, :, inv[: hs.size]]
        k_a[hs] = ka
        k_b[hs] = both[cls_pos, :, inv[hs.size:]] - ka
        hn_a[hs], hn_b[hs] = K.group_totals(rows, inv, tr >= 0)
        n_a[hs], n_b[hs] = K.group_totals(rows, inv)
    out = {"k_a": k_a, "k_b": k_b, "hn_a": hn_a, "hn_b": hn_b, "n_a": n_a, "n_b": n_b, "annotated_tc": annotated_tc,
           "t_idx": t_idx, "cls": cls, "group": group, "n_cfg": n_cfg, "cfg_shape": cfg_shape,
           "used_tasks": np.array(sorted(plans), dtype=np.int64)}
    if task_parts is not None:
        out["parts"] = [p[2] for p in made]
    return out


def light_copy(cube: xr.Dataset, kw: Mapping[str, Any] | None = None) -> xr.Dataset:
    """The cube in memory with the labels of one model and one temperature only: every ``(task, item)``
    variable, for the checks and the hypotheses, without reading the other labels. ``kw``: of
    ``dask.compute``.

    Slices, not lists: a list indexer builds a dask "take" over every store chunk. The labels of a
    pristine store are decoded from their chunk files in this thread (:func:`_store_reader`): zarr's
    own reads of these few dozen chunks took 0.2 s. The ``(task, item)`` variables of a lazy cube are
    the cube's own (``isel`` keeps those without model or temperature), so they are loaded in the
    cube too and later steps read them from memory.
    """
    kw = dict(compute_kw() if kw is None else kw)
    light = cube.isel(model=slice(0, 1), temperature=slice(0, 1))
    lab = light["label"]
    spec = _store_reader(cube, tuple(lab.dims)) if is_lazy(cube) else None
    if spec is None:
        return light.load(**kw)
    hi = tuple(1 if d in ("model", "temperature") else n for d, n in lab.sizes.items())
    data = _read_block(spec, (0,) * lab.ndim, hi)
    rest = light.drop_vars("label").load(**kw)  # (loads the cube's own variables, see above)
    return rest.assign(label=lab.copy(data=data))[list(light.data_vars)]


def _task_plan(group: np.ndarray, cls: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A task's counting plan: the distinct membership rows of its hypotheses (A, and A or B), each
    hypothesis' two rows (``inv``), the class codes to count and each hypothesis' code position."""
    rows, inv = _distinct_rows(np.concatenate([group == 1, group >= 0]))
    codes, cls_pos = np.unique(cls, return_inverse=True)
    return rows, inv, codes.astype(np.int16), cls_pos


def _in_turn(fn: Callable[[int], Any], t: int, _previous: Any) -> Any:
    return fn(t)


def _part_plan(part: tuple[np.ndarray, np.ndarray, Any]) -> tuple | None:
    return _task_plan(part[0], np.asarray(part[1], dtype=np.int64)) if len(part[1]) else None


def _plan_rows(plan: tuple | None, i0: int, i1: int) -> np.ndarray | None:
    """The plan's membership rows over items ``i0:i1``, as the float32 0/1 the counting multiplies
    (made once per task and item block, not in every block)."""
    return None if plan is None else plan[0][:, i0:i1].astype(np.float32)


def _plan_codes(plan: tuple | None) -> np.ndarray | None:
    return None if plan is None else plan[2]


def _unused_prompt_labelled(cube: xr.Dataset, labelled: np.ndarray) -> bool:
    """Labels exist for a (task, prompt) that has no template."""
    if "prompt_template" not in cube:
        return False
    unused = np.asarray(cube["prompt_template"].values) == ""
    return bool((unused & np.asarray(labelled)).any())


