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
