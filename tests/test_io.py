"""zarr / netCDF round trips, lazy opening and region writes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from hackrisk import make_cube, open_cube, save_cube, simulate_multiverse, to_long, write_labels
from hackrisk.cube import items_table
from tests.test_cube import small_tables


@pytest.fixture(scope="module")
def cube():
    labels, items, classes, prompts = small_tables()
    return make_cube(labels, items, classes, prompts=prompts, attrs={"source": "unit test"})


@pytest.mark.parametrize("suffix", [".zarr", ".nc"])
def test_round_trip_exact(cube, tmp_path, suffix):
    path = save_cube(cube, tmp_path / f"cube{suffix}")
    back = open_cube(path, lazy=False)
    xr.testing.assert_identical(back, cube)
    # strings come back as plain Python str, padding intact
    assert type(back["task"].values[0]) is str and back["task"].dtype == object
    assert back["item_id"].sel(task="frame").values[-1] == ""
    # long -> cube -> store -> cube -> long is exact
    pd.testing.assert_frame_equal(to_long(back), to_long(cube))
    pd.testing.assert_frame_equal(items_table(back), items_table(cube))


@pytest.mark.parametrize("suffix", [".zarr", ".nc"])
def test_simulated_round_trip(tmp_path, suffix):
    sim, _ = simulate_multiverse(n_tasks=2, n_items=[50, 30], n_classes=[2, 3], rng=3)
    back = open_cube(save_cube(sim, tmp_path / f"sim{suffix}"), lazy=False)
    xr.testing.assert_identical(back, sim)


def test_lazy_open_is_dask(cube, tmp_path):
    path = save_cube(cube, tmp_path / "cube.zarr")
    lazy = open_cube(path)
    assert lazy["label"].chunks is not None
    xr.testing.assert_identical(lazy.load(), cube)


def test_refuses_overwrite_and_missing(cube, tmp_path):
    path = save_cube(cube, tmp_path / "c.zarr")
    with pytest.raises(ValueError, match="exists"):
        save_cube(cube, path)
    save_cube(cube, path, mode="w")
    with pytest.raises(ValueError, match="does not exist"):
        open_cube(tmp_path / "nope.zarr")


def test_write_one_configuration(cube, tmp_path):
    empty = cube.copy(deep=True)
    empty["label"][:] = -1
    path = save_cube(empty, tmp_path / "c.zarr")
    block = cube["label"].sel(task=["stance"], model=["m2"], prompt=["p1"], temperature=[1.0])
    write_labels(path, block)
    back = open_cube(path, lazy=False)
    np.testing.assert_array_equal(
        back["label"].sel(task="stance", model="m2", prompt="p1", temperature=1.0).values,
        cube["label"].sel(task="stance", model="m2", prompt="p1", temperature=1.0).values,
    )
    others = back["label"].drop_sel(model="m2")
    assert (others == -1).all()
    # writing every block reproduces the cube exactly
    for m in cube.model.values:
        for p in cube.prompt.values:
            for t in cube.temperature.values:
                write_labels(path, cube["label"].sel(model=[m], prompt=[p], temperature=[t]))
    xr.testing.assert_identical(open_cube(path, lazy=False), cube)


def test_write_labels_errors(cube, tmp_path):
    path = save_cube(cube, tmp_path / "c.zarr")
    block = cube["label"].sel(task=["stance"], model=["m2"], prompt=["p1"], temperature=[1.0])
    with pytest.raises(ValueError, match="not in the store"):
        write_labels(path, block.assign_coords(model=["other"]))
    with pytest.raises(ValueError, match="contiguous"):
        write_labels(path, cube["label"].sel(task=["stance"], model=["m1"], prompt=["p0"], temperature=[0.0, 1.0]).isel(temperature=[1, 0]))
    with pytest.raises(ValueError, match="zarr"):
        write_labels(tmp_path / "c.nc", block)


# ---- storage safety (issue 17, cases 5 and 6) ------------------------------------------------------


def _chunk_files(path, var):
    return sorted(p for p in (path / var).rglob("*") if p.is_file() and p.name != "zarr.json")


def test_label_fill_value_is_not_annotated(cube, tmp_path):
    import zarr

    path = save_cube(cube, tmp_path / "c.zarr")
    assert zarr.open_array(str(path / "label"), mode="r").metadata.fill_value == -1
    assert zarr.open_array(str(path / "truth"), mode="r").metadata.fill_value == -1


@pytest.mark.parametrize("damage", ["delete", "truncate", "corrupt", "empty"])
@pytest.mark.parametrize("var", ["label", "truth", "prob", "text", "item_id"])
def test_damaged_chunk_is_a_named_error(tmp_path, damage, var):
    """Fault injection: every damaged chunk is a StoreError naming its path; none reads as data."""
    from hackrisk.io import StoreError

    sim, _ = simulate_multiverse(n_tasks=1, n_items=40, n_classes=3, rng=1)
    sim["prob"] = xr.zeros_like(sim["label"], dtype=np.float32).expand_dims(
        **{"class": sim.sizes["class"]}, axis=-1).copy() + np.float32(1 / 3)
    path = save_cube(sim, tmp_path / "c.zarr")
    files = _chunk_files(path, var)
    assert files
    victim = files[len(files) // 2]
    raw = victim.read_bytes()
    if damage == "delete":
        victim.unlink()
    elif damage == "truncate":
        victim.write_bytes(raw[: len(raw) // 2])
    elif damage == "empty":
        victim.write_bytes(b"")
    else:
        bad = bytearray(raw)
        bad[len(bad) // 2] ^= 0xFF
        victim.write_bytes(bytes(bad))
    with pytest.raises(StoreError) as err:
        open_cube(path, lazy=False)
    assert str(victim) in str(err.value) and "Fix:" in str(err.value)
    if damage == "delete":  # a missing chunk is found without reading any data, also when lazy
        with pytest.raises(StoreError, match="missing"):
            open_cube(path)
    else:  # verify=True checks decoding of a lazy open too
        with pytest.raises(StoreError, match="does not decode"):
            open_cube(path, verify=True)
    if var in ("text", "item_id") and damage != "delete":  # read at any open: named too
        with pytest.raises(StoreError, match="does not decode") as err:
            open_cube(path)
        assert str(victim) in str(err.value)


def test_every_chunk_is_written_even_when_all_fill(cube, tmp_path):
    empty = cube.copy(deep=True)
    empty["label"][:] = -1  # every chunk equals the fill value: still written, so absence is damage
    path = save_cube(empty, tmp_path / "c.zarr")
    n_chunks = int(np.prod([empty.sizes[d] for d in ("task", "model", "prompt", "temperature")]))
    assert len(_chunk_files(path, "label")) == n_chunks
    block = cube["label"].sel(task=["stance"], model=["m2"], prompt=["p1"], temperature=[1.0])
    write_labels(path, xr.full_like(block, -1))  # region writes keep all-fill chunks too
    assert len(_chunk_files(path, "label")) == n_chunks
    open_cube(path, lazy=False)


@pytest.mark.parametrize("suffix", [".zarr", ".nc"])
def test_mode_w_never_deletes_other_files(cube, tmp_path, suffix):
    """save_cube(mode='w') replaces a previous cube, but never a folder or file of anything else."""
    folder = tmp_path / f"mydir{suffix}"
    if suffix == ".zarr":
        folder.mkdir()
        (folder / "thesis.tex").write_text("years of work")
    else:
        folder.write_text("not a cube")
    for mode in ("w-", "w"):
        with pytest.raises(ValueError, match="not a label cube") as err:
            save_cube(cube, folder, mode=mode)
        assert "mode='w'" not in str(err.value).split("Fix:")[1]
    if suffix == ".zarr":
        assert (folder / "thesis.tex").read_text() == "years of work"
    else:
        assert folder.read_text() == "not a cube"
    # a previous cube is replaced, atomically and completely
    path = save_cube(cube, tmp_path / f"c{suffix}")
    changed = cube.copy(deep=True)
    changed["label"] = changed["label"].where(changed["label"] < 0, 0).astype(np.int16)
    with pytest.raises(ValueError, match="already exists.*mode='w'"):
        save_cube(changed, path)
    save_cube(changed, path, mode="w")
    xr.testing.assert_identical(open_cube(path, lazy=False), changed)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporaries left
    # an empty folder may be written into
    (tmp_path / "empty.zarr").mkdir()
    save_cube(cube, tmp_path / "empty.zarr")


def test_second_writer_gets_a_lock_error(cube, tmp_path):
    import subprocess
    import sys

    from hackrisk.io import StoreLockedError, store_lock

    path = save_cube(cube, tmp_path / "c.zarr")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from hackrisk.io import store_lock\n"
         f"with store_lock({str(path)!r}):\n    print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreLockedError, match=rf"being written by another run \(pid {holder.pid}"):
            save_cube(cube, path, mode="w")
        with pytest.raises(StoreLockedError, match="Fix:"), store_lock(path):
            pass
    finally:
        holder.kill()
        holder.wait()
    with store_lock(path), store_lock(path):  # free again, and re-entrant within a process
        save_cube(cube, path, mode="w")
