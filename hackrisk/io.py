"""Saving and opening label cubes: zarr (default) and netCDF, and region writes.

A zarr store keeps ``label`` (and ``prob``) in one chunk per configuration and item block, so
that :func:`write_labels` can write one configuration's labels without touching the rest; several
writers may fill disjoint configurations of one store.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .cube import CONFIG_DIMS, validate_cube

__all__ = ["save_cube", "open_cube", "write_labels", "cube_format"]

_ITEM_CHUNK = 65536


def cube_format(path: str | os.PathLike) -> str:
    """``"netcdf"`` for ``.nc`` / ``.nc4`` / ``.h5`` paths, else ``"zarr"``."""
    return "netcdf" if Path(path).suffix.lower() in (".nc", ".nc4", ".h5", ".netcdf") else "zarr"


def _encodable(cube: xr.Dataset) -> xr.Dataset:
    """Copy whose attrs survive netCDF/zarr (lists and dicts become JSON strings)."""
    out = cube.copy()
    for var in [out, *out.variables.values()]:
        for key, val in list(var.attrs.items()):
            if isinstance(val, (list, tuple, dict)):
                var.attrs[key] = "json:" + json.dumps(val)
            elif isinstance(val, (bool, np.bool_)):
                var.attrs[key] = int(val)
    for name in list(out.data_vars):
        if out[name].dtype == bool:  # netCDF has no bool type
            out[name] = out[name].astype(np.int8).assign_attrs(out[name].attrs, hackrisk_bool=1)
    return out


def _decoded(cube: xr.Dataset) -> xr.Dataset:
    """Undo :func:`_encodable` and turn any fixed-width / StringDType text back into ``str`` objects."""
    for var in [cube, *cube.variables.values()]:
        for key, val in list(var.attrs.items()):
            if isinstance(val, str) and val.startswith("json:"):
                var.attrs[key] = json.loads(val[5:])
    for name in list(cube.data_vars):
        if cube[name].attrs.pop("hackrisk_bool", 0):
            cube[name] = cube[name].astype(bool)
    replace = {}
    for name, var in cube.variables.items():
        if var.dtype.kind in ("U", "S", "T") or (var.dtype == object and name in cube.coords):
            values = np.asarray(var.values)
            if var.dtype.kind == "S":
                values = np.char.decode(values, "utf-8")
            replace[name] = var.copy(data=np.array(values.tolist(), dtype=object).reshape(values.shape))
    for name, var in replace.items():
        if name in cube.indexes:
            cube = cube.assign_coords({name: var})
        else:
            cube[name] = var
    return cube


def save_cube(cube: xr.Dataset, path: str | os.PathLike, *, format: str | None = None,
              mode: str = "w-", item_chunk: int = _ITEM_CHUNK) -> Path:
    """Write a cube to ``path`` (zarr directory or netCDF file).

    Parameters
    ----------
    cube
        A valid label cube.
    path
        Target. ``.nc`` means netCDF (h5netcdf engine), anything else a zarr store.
    format
        ``"zarr"`` or ``"netcdf"``, overriding the suffix.
    mode
        ``"w-"`` (default) refuses to overwrite, ``"w"`` overwrites.
    item_chunk
        Items per chunk of ``label`` / ``prob`` in zarr (one chunk per configuration otherwise).
    """
    validate_cube(cube)
    path = Path(path)
    fmt = format or cube_format(path)
    if mode not in ("w", "w-"):
        raise ValueError(f"save_cube: mode must be 'w' or 'w-', got {mode!r}.")
    if path.exists() and mode == "w-":
        raise ValueError(f"save_cube: {path} exists. Fix: pass mode='w' to overwrite, or another path.")
    enc_cube = _encodable(cube)
    if fmt == "netcdf":
        if path.exists():
            path.unlink()
        enc_cube.to_netcdf(path, engine="h5netcdf")
        return path
    if fmt != "zarr":
        raise ValueError(f"save_cube: unknown format {fmt!r}; use 'zarr' or 'netcdf'.")
    encoding: dict[str, Any] = {}
    for name in ("label", "prob"):
        if name in enc_cube:
            dims = enc_cube[name].dims
            chunks = tuple(
                min(item_chunk, enc_cube.sizes[d]) if d == "item"
                else (enc_cube.sizes[d] if d in ("class", "sample") else 1)
                for d in dims
            )
            encoding[name] = {"chunks": chunks}
    for var in enc_cube.variables.values():
        var.encoding.pop("chunks", None)
        var.encoding.pop("preferred_chunks", None)
    enc_cube.to_zarr(path, mode="w", encoding=encoding, consolidated=False)
    return path


def open_cube(path: str | os.PathLike, *, lazy: bool = True, chunks: dict | str | None = None,
              format: str | None = None) -> xr.Dataset:
    """Open a cube saved by :func:`save_cube`.

    Parameters
    ----------
    path
        zarr store or netCDF file.
    lazy
        Keep the data on disk as dask arrays (chunked along ``task`` and ``item``); ``False``
        loads everything into memory.
    chunks
        Dask chunks when ``lazy``; default: the chunks of the store.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"open_cube: {path} does not exist. Fix: check the path, or create the "
                         "store with hackrisk.save_cube(cube, path).")
    fmt = format or cube_format(path)
    chunks = ({} if chunks is None else chunks) if lazy else None
    if fmt == "netcdf":
        ds = xr.open_dataset(path, engine="h5netcdf", chunks=chunks)
    else:
        ds = xr.open_zarr(path, chunks=chunks, consolidated=False)
    ds = _decoded(ds)
    if not lazy:
        ds = ds.load()
    # text-like variables are small: always in memory as Python str
    for name in ("text", "item_id", "class_name", "prompt_template"):
        if name in ds and ds[name].dtype != object:
            ds[name] = ds[name].copy(data=np.asarray(ds[name].values).astype(object))
    validate_cube(ds, check_values=not lazy)
    return ds


def write_labels(path: str | os.PathLike, labels: xr.DataArray, *, prob: xr.DataArray | None = None,
                 extra: dict[str, xr.DataArray] | None = None) -> None:
    """Write the labels of one or more configurations into an existing zarr store.

    Parameters
    ----------
    path
        A zarr store written by :func:`save_cube` (all configurations allocated).
    labels
        int16 labels with dims ``task, model, prompt, temperature, item`` (+ ``sample``); each of
        ``task, model, prompt, temperature`` must have coordinates that form a contiguous block
        of the store's (typically one value each), ``item`` must be complete.
    prob
        Optional per-class probabilities for the same block.
    extra
        Further per-configuration variables already allocated in the store (e.g. timings).

    Only the chunks of that block are rewritten, so concurrent writers of disjoint configurations
    do not interfere.
    """
    path = Path(path)
    if cube_format(path) != "zarr":
        raise ValueError("write_labels: region writes need a zarr store. Fix: save the cube as .zarr.")
    store = xr.open_zarr(path, consolidated=False)
    store = _decoded(store)
    region: dict[str, slice] = {}
    for dim in ("task", *CONFIG_DIMS):
        if dim not in labels.dims:
            raise ValueError(f"write_labels: labels lack dimension {dim!r}. Fix: expand_dims it.")
        have = list(store[dim].values)
        try:
            pos = [have.index(v) for v in labels[dim].values]
        except ValueError as err:
            raise ValueError(f"write_labels: a {dim} value of the labels is not in the store "
                             f"({labels[dim].values!r} vs {have!r}). Fix: allocate it with save_cube.") from err
        if pos != list(range(pos[0], pos[0] + len(pos))):
            raise ValueError(f"write_labels: {dim} values must be contiguous in the store, got positions {pos}.")
        region[dim] = slice(pos[0], pos[0] + len(pos))
    if labels.sizes["item"] != store.sizes["item"]:
        raise ValueError("write_labels: labels must cover every item of the store (padding included).")
    region["item"] = slice(0, store.sizes["item"])
    if "sample" in labels.dims:
        region["sample"] = slice(0, store.sizes["sample"])
    variables = {"label": labels.astype(np.int16)}
    if prob is not None:
        variables["prob"] = prob.astype(np.float32)
    if extra:
        variables.update(extra)
    for name, var in variables.items():
        if name not in store:
            raise ValueError(f"write_labels: the store has no variable {name!r} to write into.")
        var = var.transpose(*store[name].dims)
        sub = {d: region[d] for d in var.dims if d in region}
        if "class" in var.dims:
            sub["class"] = slice(0, store.sizes["class"])
        ds = xr.Dataset({name: (var.dims, np.asarray(var.values))})
        ds.to_zarr(path, region=sub, mode="r+", consolidated=False)
