"""Build a 10-million-label cube from the long format and through zarr, against a pandas pivot.

Prints seconds and peak memory per million labels for ``hackrisk.make_cube`` and for a plain
``DataFrame.pivot`` of the same table (the peer), then the zarr write + read. Peak memory is the
tracemalloc peak above the memory already held by the input table (numpy and pandas report their
buffers to tracemalloc). Targets: no slower than the pivot (ratio >= 1) and < 60 bytes per label.

Usage: python benchmarks/cube_build.py [--labels 10_000_000]
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

import hackrisk


def long_table(n_labels: int, rng: int = 0):
    """Tasks × models × prompts × temperatures × items, with dictionary-encoded key columns."""
    gen = np.random.default_rng(rng)
    n_task, n_model, n_prompt, n_temp = 4, 10, 5, 2
    n_item = n_labels // (n_task * n_model * n_prompt * n_temp)
    tasks = [f"task{t}" for t in range(n_task)]
    shape = (n_task, n_model, n_prompt, n_temp, n_item)
    grid = np.indices(shape).reshape(len(shape), -1)
    item_ids = np.array([f"i{i:07d}" for i in range(n_item)], dtype=object)
    labels = pd.DataFrame(
        {
            "task": pd.Categorical.from_codes(grid[0], tasks),
            "model": pd.Categorical.from_codes(grid[1], [f"model{m}" for m in range(n_model)]),
            "prompt": pd.Categorical.from_codes(grid[2], [f"p{p}" for p in range(n_prompt)]),
            "temperature": np.array([0.0, 1.0])[grid[3]],
            "item_id": pd.Categorical.from_codes(grid[4], item_ids),
            "label": gen.integers(0, 2, grid.shape[1]).astype(np.int16),
        }
    )
    items = pd.DataFrame(
        {
            "task": np.repeat(tasks, n_item),
            "item_id": np.tile(item_ids, n_task),
            "text": "some text",
            "truth": gen.integers(0, 2, n_task * n_item),
        }
    )
    classes = {t: ["no", "yes"] for t in tasks}
    prompts = {t: [f"Paraphrase {p}: {{text}}" for p in range(n_prompt)] for t in tasks}
    return labels, items, classes, prompts


def timed(fn, repeat: int = 3):
    best = np.inf
    out = None
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def peak_bytes(fn) -> int:
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    out = fn()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    del out
    return peak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--labels", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    labels, items, classes, prompts = long_table(args.labels)
    n = len(labels)
    per_m = 1e6 / n

    def ours():
        return hackrisk.make_cube(labels, items, classes, prompts=prompts)

    def pivot():
        return labels.pivot(index=["task", "model", "prompt", "temperature"], columns="item_id",
                            values="label")

    s_ours, cube = timed(ours, args.repeat)
    s_pivot, wide = timed(pivot, args.repeat)
    assert int((cube["label"] >= 0).sum()) == n and wide.size == n
    del wide
    b_ours = peak_bytes(ours)
    b_pivot = peak_bytes(pivot)

    tmp = Path(tempfile.mkdtemp())
    try:
        t0 = time.perf_counter()
        hackrisk.save_cube(cube, tmp / "cube.zarr")
        s_write = time.perf_counter() - t0
        t0 = time.perf_counter()
        back = hackrisk.open_cube(tmp / "cube.zarr", lazy=False)
        s_read = time.perf_counter() - t0
        assert back["label"].equals(cube["label"])
        bytes_disk = sum(f.stat().st_size for f in (tmp / "cube.zarr").rglob("*") if f.is_file())
    finally:
        shutil.rmtree(tmp)

    print(f"labels: {n:,}")
    print(f"make_cube   {s_ours * per_m:7.3f} s per million labels, peak {b_ours / n:6.1f} bytes per label")
    print(f"pd.pivot    {s_pivot * per_m:7.3f} s per million labels, peak {b_pivot / n:6.1f} bytes per label")
    print(f"zarr write  {s_write * per_m:7.3f} s per million labels; read {s_read * per_m:.3f} s; "
          f"{bytes_disk / n:.2f} bytes per label on disk")
    ratio = s_pivot / s_ours
    print(f"speed ratio (pivot / make_cube): {ratio:.2f}  (target >= 1);  "
          f"memory {b_ours / n:.1f} B/label (target < 60)")
    print(json.dumps({
        "benchmark": "cube_build",
        "ratio": round(ratio, 3),
        "target": 1.0,
        "n_labels": n,
        "seconds_make_cube": round(s_ours, 4),
        "seconds_pandas_pivot": round(s_pivot, 4),
        "seconds_per_million_make_cube": round(s_ours * per_m, 4),
        "seconds_zarr_write": round(s_write, 4),
        "seconds_zarr_read": round(s_read, 4),
        "bytes_peak_make_cube": int(b_ours),
        "bytes_peak_pandas_pivot": int(b_pivot),
        "bytes_per_label_make_cube": round(b_ours / n, 2),
        "bytes_per_label_target": 60,
        "memory_ratio": round(b_pivot / b_ours, 3),
        "bytes_on_disk": int(bytes_disk),
    }))


if __name__ == "__main__":
    main()
