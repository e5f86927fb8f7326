"""The chunked (dask) and distributed analysis equals the in-memory one exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import hackrisk
from hackrisk import scale
from hackrisk.analysis import frequentist as fq
from hackrisk.analysis.risk import classify_errors, risk
from hackrisk.hypotheses import generate_hypotheses

from ._data import shared_data_dir as _data_dir

ODD_CHUNKS = {"task": 1, "model": 2, "prompt": 1, "temperature": 2, "item": 97}




@pytest.fixture(scope="module")
def sim():
    cube, _ = hackrisk.simulate_multiverse(rng=3, n_items=[300, 220], n_classes=[2, 3], models=3,
                                           n_prompts=2, temperatures=(0.0, 1.0))
    lab = cube["label"].values.copy()
    lab[0, 1, 0, 1, 5] = -1  # one configuration of task 0 not fully annotated
    lab[1, 0, 1, 0, :7] = -2  # answers outside the label set
    cube["label"] = (cube["label"].dims, lab)
    return cube


@pytest.fixture(scope="module")
def sim_store(sim, tmp_path_factory):
    path = tmp_path_factory.mktemp("scale") / "sim.zarr"
    hackrisk.save_cube(sim, path, item_chunk=128)
    return path


@pytest.fixture(scope="module")
def sim_ref(sim):
    hyps = generate_hypotheses(sim)
    return hyps, fq.test_hypotheses(sim, hyps)


def _assert_same_analysis(ref_tests, got_tests):
    xr.testing.assert_identical(ref_tests, got_tests)
    xr.testing.assert_identical(classify_errors(ref_tests), classify_errors(got_tests))
    xr.testing.assert_identical(risk(ref_tests, by="model", n_boot=30, rng=1),
                                risk(got_tests, by="model", n_boot=30, rng=1))


def test_chunked_equals_in_memory_simulated(sim, sim_ref):
    hyps, ref = sim_ref
    assert ref["annotated"].sum() < ref["annotated"].size  # the -1 label is exercised
    got = scale.test_hypotheses_chunked(sim, hyps, chunks=ODD_CHUNKS)
    _assert_same_analysis(ref, got)


def test_lazy_store_equals_in_memory(sim, sim_ref, sim_store):
    hyps, ref = sim_ref
    lazy = hackrisk.open_cube(sim_store)
    assert scale.is_lazy(lazy)
    assert lazy["label"].data.chunksize[-1] == 128
    # the pass reads the pristine store directly in analysis blocks; any selection falls back
    from hackrisk import _chunked

    dims = lazy["label"].dims
    assert _chunked._store_reader(lazy, dims) is not None
    assert _chunked._store_reader(lazy.isel(model=np.arange(lazy.sizes["model"])[::-1]), dims) is None
    assert _chunked._store_reader(lazy.assign(label=lazy["label"] + 0), dims) is None
    h_lazy = scale.generate_hypotheses_chunked(lazy)
    xr.testing.assert_identical(hyps, h_lazy)
    out = scale.analyze_chunked(lazy, n_boot=30, by="model", rng=1)
    added = [v for v in out["tests"].data_vars if v not in ref.data_vars]  # classify_errors' variables
    _assert_same_analysis(ref, out["tests"].drop_vars(added))
    xr.testing.assert_identical(out["risk"], risk(ref, by="model", n_boot=30, rng=1))
    assert scale.is_lazy(lazy)  # the input cube was not loaded


@pytest.mark.parametrize("zero_rule", ["firth", "exact"])
def test_zero_rules_and_alpha(sim, sim_ref, zero_rule):
    hyps, _ = sim_ref
    ref = fq.test_hypotheses(sim, hyps, zero_rule=zero_rule, alpha=0.01)
    got = scale.test_hypotheses_chunked(sim, hyps, zero_rule=zero_rule, alpha=0.01,
                                        chunks={"item": 150, "model": 3})
    xr.testing.assert_identical(ref, got)


def test_sample_dimension(sim, sim_ref):
    hyps, _ = sim_ref
    gen = np.random.default_rng(0)
    lab = sim["label"].values
    other = np.where(gen.random(lab.shape) < 0.1, 1 - np.clip(lab, 0, 1), lab).astype(np.int16)
    other[lab < 0] = lab[lab < 0]
    cube = sim.drop_vars("label").assign(
        label=(("task", "model", "prompt", "temperature", "item", "sample"), np.stack([lab, other], -1)))
    for s in (0, 1):
        ref = fq.test_hypotheses(cube, hyps, sample=s)
        got = scale.test_hypotheses_chunked(cube, hyps, sample=s, chunks={"item": 200})
        xr.testing.assert_identical(ref, got)
        got_h, got = scale.hypotheses_and_tests_chunked(cube, sample=s, chunks={"item": 200})
        xr.testing.assert_identical(hyps, got_h)
        xr.testing.assert_identical(ref, got)
    assert not np.array_equal(fq.test_hypotheses(cube, hyps, sample=1)["k_a"].values,
                              fq.test_hypotheses(cube, hyps, sample=0)["k_a"].values, equal_nan=True)
    with pytest.raises(ValueError, match="sample"):
        scale.test_hypotheses_chunked(cube, hyps)  # two draws, none chosen


def test_invalid_input_raises_like_in_memory(sim, sim_ref):
    hyps, _ = sim_ref
    lab = sim["label"].values.copy()
    lab[1, 2, 1, 0, 3] = 7  # task 1 has 3 classes
    bad = sim.assign(label=(sim["label"].dims, lab))
    with pytest.raises(ValueError) as ref_err:
        fq.test_hypotheses(bad, hyps)
    with pytest.raises(ValueError) as got_err:
        scale.test_hypotheses_chunked(bad, hyps, chunks={"item": 64})
    assert str(got_err.value) == str(ref_err.value)
    lab = sim["label"].values.copy()
    lab[1, 2, 0, 1, 250] = 0  # task 1 has 220 items: 250 is padding (outside the light copy)
    on_pad = sim.assign(label=(sim["label"].dims, lab))
    with pytest.raises(ValueError) as ref_err:
        fq.test_hypotheses(on_pad, hyps)
    for item_chunk in (64, 300):  # padding in several item blocks, and in one
        with pytest.raises(ValueError) as got_err:
            scale.test_hypotheses_chunked(on_pad, hyps, chunks={"item": item_chunk})
        assert str(got_err.value) == str(ref_err.value)
    with pytest.raises(ValueError, match="zero_rule"):
        scale.test_hypotheses_chunked(sim, hyps, zero_rule="nope")
    with pytest.raises(ValueError, match="items, the cube"):
        scale.test_hypotheses_chunked(sim, hyps.isel(item=slice(0, 10)))


def test_analysis_chunks(sim_store):
    lazy = hackrisk.open_cube(sim_store)
    ch = scale.analysis_chunks(lazy, max_labels=128 * 4)
    assert ch["item"] == 128 and ch["task"] == 1
    assert ch["temperature"] * ch["prompt"] * ch["model"] * ch["item"] <= 128 * 4
    ch = scale.analysis_chunks(lazy)
    assert (ch["model"], ch["prompt"], ch["temperature"]) == (3, 2, 2)  # every configuration in a block
    with pytest.raises(ValueError, match="max_labels"):
        scale.analysis_chunks(lazy, max_labels=0)


def _real_cube(rng=0) -> xr.Dataset:
    """relevance_tweets23 with simulated annotators (random and date-dependent systematic errors)."""
    df = pd.read_csv(_data_dir() / "llmhacking" / "relevance_tweets23.csv.gz")
    created = pd.to_datetime(df["created_at"])
    items = pd.DataFrame({"task": "relevance", "item_id": df["id"], "text": df["text"],
                          "truth": df["ground_truth"], "created_at": created})
    gen = np.random.default_rng(rng)
    truth = (df["ground_truth"] == "irrelevant").to_numpy().astype(int)
    late = (created >= pd.Timestamp("2023-01-16", tz="UTC")).to_numpy()
    rows = []
    for m, acc in enumerate([0.95, 0.75]):
        for p in range(2):
            for temp in (0.0, 1.0):
                lab = np.where(gen.random(len(df)) < (1 - acc) + 0.1 * temp, 1 - truth, truth)
                lab = np.where(late & (gen.random(len(df)) < 0.15 * m), 0, lab)
                rows.append(pd.DataFrame({"task": "relevance", "model": f"m{m}", "prompt": f"p{p}",
                                          "temperature": temp, "item_id": df["id"], "label": lab}))
    return hackrisk.make_cube(pd.concat(rows, ignore_index=True), items,
                              {"relevance": ["relevant", "irrelevant"]})


def test_real_data_lazy_equals_in_memory(tmp_path):
    cube = _real_cube()
    hyps = generate_hypotheses(cube)
    assert hyps.sizes["hypothesis"] >= 5
    ref = fq.test_hypotheses(cube, hyps)
    path = hackrisk.save_cube(cube, tmp_path / "relevance.zarr", item_chunk=100)
    lazy = hackrisk.open_cube(path)
    xr.testing.assert_identical(hyps, scale.generate_hypotheses_chunked(lazy))
    _assert_same_analysis(ref, scale.test_hypotheses_chunked(lazy, hyps))


def test_distributed_equals_threaded_and_in_memory(sim, sim_ref, sim_store):
    distributed = pytest.importorskip("distributed")
    hyps, ref = sim_ref
    lazy = hackrisk.open_cube(sim_store)
    threaded = scale.test_hypotheses_chunked(lazy, hyps, scheduler="threads")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="1GiB",
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        with distributed.get_task_stream(client) as stream:
            got = scale.test_hypotheses_chunked(lazy, hyps, chunks={"item": 128, "model": 1})
    workers = {t["worker"] for t in stream.data}
    assert len(workers) == 2  # both worker processes took part
    xr.testing.assert_identical(ref, got)
    xr.testing.assert_identical(threaded, got)


@pytest.mark.parametrize("direct", [True, False])
def test_no_task_holds_more_than_a_block(sim, sim_ref, sim_store, monkeypatch, direct):
    """Out-of-core: no task ever holds more labels than one block, whether the pass reads the
    store's chunk files itself (direct) or goes through the dataset's dask array."""
    from dask.callbacks import Callback

    from hackrisk import _chunked

    hyps, ref = sim_ref
    lazy = hackrisk.open_cube(sim_store)
    if not direct:  # any selection: the dataset's own dask array
        lazy = lazy.isel(model=np.arange(lazy.sizes["model"]))
    label_sizes = []

    class Watch(Callback):
        def _posttask(self, key, result, dsk, state, worker_id):
            if isinstance(result, np.ndarray) and result.dtype == np.int16:
                label_sizes.append(result.size)

    read, reads = _chunked._read_block, []

    def watched_read(*args, **kwargs):
        out = read(*args, **kwargs)
        label_sizes.append(out.size)
        reads.append(out.size)
        return out

    monkeypatch.setattr(_chunked, "_read_block", watched_read)
    chunks = {"item": 128, "model": 1, "prompt": 2, "temperature": 2}
    with Watch():
        got = scale.test_hypotheses_chunked(lazy, hyps, chunks=chunks, scheduler="threads")
    xr.testing.assert_identical(ref, got)
    # one read per block (2 tasks x 3 models x 3 item blocks), and one of the light copy's slice
    assert (len(reads) == 19) if direct else not reads
    assert len(label_sizes) >= 18  # the labels were read in many pieces ...
    # ... none larger than a block, or than the one-(model, temperature) slice used to validate
    # the small variables
    light = lazy.sizes["task"] * lazy.sizes["prompt"] * lazy.sizes["item"]
    assert max(label_sizes) <= max(128 * 1 * 2 * 2, light)
    assert max(label_sizes) * 5 < lazy["label"].size


def test_direct_read_any_chunking_and_damaged_store(sim, sim_ref, sim_store, tmp_path):
    """The pass's own chunk reader: blocks that cut through store chunks read the right labels,
    and a missing or corrupted chunk file is an error naming it, never fill values."""
    import shutil

    from hackrisk import _chunked
    from hackrisk.io import StoreError

    hyps, ref = sim_ref
    lazy = hackrisk.open_cube(sim_store)
    spec = _chunked._store_reader(lazy, lazy["label"].dims)
    lo, hi = (1, 0, 0, 1, 100), (2, 3, 2, 2, 290)  # item blocks of 128 cut at 100 and 290
    np.testing.assert_array_equal(_chunked._read_block(spec, lo, hi),
                                  sim["label"].values[tuple(slice(a, b) for a, b in zip(lo, hi))])
    xr.testing.assert_identical(ref, scale.test_hypotheses_chunked(lazy, hyps, chunks=ODD_CHUNKS))

    damaged = tmp_path / "damaged.zarr"
    shutil.copytree(sim_store, damaged)
    lazy = hackrisk.open_cube(damaged)
    chunk = damaged / "label" / "c" / "1" / "2" / "0" / "1" / "1"
    chunk.write_bytes(chunk.read_bytes()[:-9])  # truncated
    with pytest.raises(StoreError, match="c/1/2/0/1/1.*does not decode"):
        scale.test_hypotheses_chunked(lazy, hyps)
    chunk.unlink()  # deleted after the store was opened
    with pytest.raises(StoreError, match="c/1/2/0/1/1.*missing"):
        scale.test_hypotheses_chunked(lazy, hyps)


def test_chunk_run_reader(tmp_path, monkeypatch):
    """Whole chunks that follow each other in a block are read into one buffer and decoded by one
    zstd call: the labels zarr reads, also where the compressed bytes outgrow the first buffer; a
    chunk file holding a valid frame of another size is damage named by its path, in both readers."""
    import zarr
    from numcodecs.zstd import Zstd
    from zarr.codecs import BytesCodec, ZstdCodec

    from hackrisk import _chunked
    from hackrisk.io import StoreError

    values = np.random.default_rng(11).integers(-2**15, 2**15, size=(2, 3, 4, 20000), dtype=np.int16)
    path = tmp_path / "s.zarr" / "label"
    arr = zarr.create_array(str(path), shape=values.shape, chunks=(1, 1, 1, 20000), dtype="int16",
                            serializer=BytesCodec(), compressors=[ZstdCodec(level=1, checksum=True)],
                            fill_value=-1)
    arr[...] = values  # incompressible: more than the first buffer's quarter of the block
    spec = {"dir": str(path), "sep": "/", "chunk": (1, 1, 1, 20000), "dtype": "<i2", "shape": values.shape}
    one_call, runs = _chunked._read_chunk_run, []
    monkeypatch.setattr(_chunked, "_read_chunk_run", lambda *a: runs.append(one_call(*a)) or runs[-1])
    for lo, hi, fast in [((0, 0, 0, 0), (2, 3, 4, 20000), True), ((1, 1, 0, 0), (2, 3, 4, 20000), True),
                         ((0, 1, 2, 0), (1, 2, 3, 20000), True), ((0, 0, 0, 100), (2, 2, 4, 20000), False)]:
        runs.clear()
        for scratch in (None, _chunked._scratch_pool()):
            got = _chunked._read_block(spec, lo, hi, scratch=scratch)
            np.testing.assert_array_equal(got, values[tuple(slice(a, b) for a, b in zip(lo, hi))])
        assert runs == ([True, True] if fast else [])

    (path / "c" / "1" / "2" / "3" / "0").write_bytes(Zstd(level=1, checksum=True).encode(values[1, 2, 3, 1:]))
    for lo in ((0, 0, 0, 0), (0, 0, 0, 100)):
        runs.clear()
        with pytest.raises(StoreError, match="c/1/2/3/0.*does not decode.*39998 bytes where a chunk has 40000"):
            _chunked._read_block(spec, lo, (2, 3, 4, 20000))
        assert runs == ([False] if lo[-1] == 0 else [])


def test_count_by_group_reused_buffer():
    from hackrisk.analysis import _kernels as K

    gen = np.random.default_rng(5)
    lab = gen.integers(-2, 3, size=(7, 301)).astype(np.int16)
    member = gen.random((4, 301)) < 0.5
    expect = np.stack([(lab == c).astype(int) @ member.T.astype(int) for c in (0, 2)])
    work = np.full(7 * 301 * 3, 9.0, dtype=np.float32)  # larger than needed, stale values
    for got in (K.count_by_group(lab, member, [0, 2]), K.count_by_group(lab, member, [0, 2], work=work)):
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, expect)


def test_hypotheses_made_in_the_pass(sim, sim_ref, sim_store, monkeypatch):
    """hypotheses_and_tests_chunked (each task's hypotheses a task of the counting graph) gives the
    Datasets of generate_hypotheses + test_hypotheses, for 1 and 2 workers, odd chunks, and
    item slices of the block counting smaller than a block."""
    import threading
    import time

    import dask

    from hackrisk import _chunked

    hyps, ref = sim_ref
    lazy = hackrisk.open_cube(sim_store)
    monkeypatch.setattr(_chunked, "_SUB_ITEMS", 37)  # several matrix products per block
    spans, lock = [], threading.Lock()
    in_turn = _chunked._in_turn

    def timed(fn, t, previous):
        t0 = time.perf_counter()
        out = in_turn(fn, t, previous)
        with lock:
            spans.append((t, t0, time.perf_counter()))
        return out

    monkeypatch.setattr(_chunked, "_in_turn", timed)
    for workers in (1, 2):
        spans.clear()
        with dask.config.set(scheduler="threads", num_workers=workers):
            got_h, got = scale.hypotheses_and_tests_chunked(lazy, chunks=ODD_CHUNKS)
        xr.testing.assert_identical(hyps, got_h)
        _assert_same_analysis(ref, got)
        # one task's hypotheses at a time, the task with the fewest items first (no block can be
        # counted before the first one is made), also with two workers
        order = [s[0] for s in sorted(spans, key=lambda s: s[1])]
        assert order == np.argsort((lazy["item_id"].values != "").sum(1), kind="stable").tolist()
        assert order[0] != 0  # (the sim cube's first task is not its smallest)
        spans.sort(key=lambda s: s[1])
        assert all(a[2] <= b[1] for a, b in zip(spans, spans[1:]))
    # options of the generator pass through; the in-memory cube works too
    opts = {"groupings": ("random", "keyword"), "n_keywords": 2, "rng": 7}
    got_h, got = scale.hypotheses_and_tests_chunked(sim, alpha=0.1, **opts)
    ref_h = generate_hypotheses(sim, **opts)
    xr.testing.assert_identical(ref_h, got_h)
    xr.testing.assert_identical(fq.test_hypotheses(sim, ref_h, alpha=0.1), got)
    res = scale.analyze_chunked(lazy, n_boot=30, rng=1)
    xr.testing.assert_identical(res["hypotheses"], hyps)
    xr.testing.assert_identical(res["tests"], classify_errors(ref))


def test_hypotheses_made_in_the_pass_errors(sim):
    """The generator's and the tests' own errors, before any label is read."""
    with pytest.raises(ValueError, match="unknown grouping"):
        scale.hypotheses_and_tests_chunked(sim, groupings=("nope",))
    with pytest.raises(ValueError, match="alpha"):
        scale.hypotheses_and_tests_chunked(sim, alpha=2.0)
    with pytest.raises(TypeError):
        scale.hypotheses_and_tests_chunked(sim, not_an_option=1)
    unlabelled = sim.assign(truth=xr.full_like(sim["truth"], -1))
    with pytest.raises(ValueError, match="no task of the cube has human labels"):
        scale.hypotheses_and_tests_chunked(unlabelled)
    # nothing to test: the in-memory path's message
    with pytest.raises(ValueError, match="hypotheses is empty"):
        scale.hypotheses_and_tests_chunked(sim, groupings=("random",), min_group=10**6)


def test_scheduler_named_without_distributed(monkeypatch):
    """Until distributed is imported no Client can exist: the pass names the configured scheduler
    itself, so that dask does not import distributed (0.4 s) to look for one."""
    import sys

    import dask
    from dask import local, threaded

    from hackrisk._chunked import compute_kw

    monkeypatch.delitem(sys.modules, "distributed", raising=False)
    assert compute_kw() == {"scheduler": threaded.get}
    with dask.config.set(scheduler="sync"):
        assert compute_kw() == {"scheduler": local.get_sync}
    assert compute_kw("processes") == {"scheduler": "processes"}  # given: passed on
    monkeypatch.setitem(sys.modules, "distributed", object())
    assert compute_kw() == {}  # a Client may exist: dask finds the active scheduler


def test_first_lazy_analysis_does_not_import_distributed(sim, tmp_path):
    """A fresh process: open_cube (coordinates in memory) and the whole chunked analysis run without
    importing distributed, and give the in-memory result."""
    import subprocess
    import sys
    import textwrap

    store = tmp_path / "sized.zarr"
    hackrisk.save_cube(sim.assign_coords(model_size=("model", [1.0, 8.0, 70.0])), store, item_chunk=128)

    code = textwrap.dedent(f"""
        import sys
        import xarray as xr
        import hackrisk
        from hackrisk import scale
        from hackrisk.analysis import frequentist as fq
        from hackrisk.hypotheses import generate_hypotheses
        cube = hackrisk.open_cube({str(store)!r})
        assert type(cube["model_size"].data).__name__ == "ndarray", type(cube["model_size"].data)
        assert type(cube["label"].data).__name__ == "Array"
        out = scale.analyze_chunked(cube, n_boot=10, rng=1)
        assert "distributed" not in sys.modules, "distributed was imported"
        mem = cube.load()
        hyps = generate_hypotheses(mem)
        xr.testing.assert_identical(out["hypotheses"], hyps)
        ref = fq.test_hypotheses(mem, hyps)
        xr.testing.assert_identical(out["tests"][list(ref.data_vars)], ref)
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("ok")
