"""Saving and opening label cubes: zarr (default) and netCDF, and region writes.

A zarr store keeps ``label`` (and ``prob``) in one chunk per configuration and item block, so
that :func:`write_labels` can write one configuration's labels without touching the rest; several
writers may fill disjoint configurations of one store.

Nothing on disk is read silently wrong:

* every zarr chunk is written (also chunks that hold only the fill value) and compressed with a
  zstd content checksum, and the fill value of ``label`` is ``-1`` (not annotated);
* :func:`open_cube` checks that every chunk of every variable is present, and (when it loads the
  data) that every chunk decodes; a missing, truncated or corrupted chunk is a :class:`StoreError`
  naming the chunk's path;
* :func:`save_cube` with ``mode="w"`` only replaces a previous label cube (never a folder or file
  of anything else), and replaces it atomically;
* :func:`store_lock` gives one process at a time the right to write a store; a second writer
  gets a :class:`StoreLockedError` naming the process that holds it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .cube import CONFIG_DIMS, validate_cube

__all__ = ["save_cube", "open_cube", "write_labels", "cube_format", "store_lock", "is_label_cube",
           "verify_store", "StoreError", "StoreLockedError"]

_ITEM_CHUNK = 65536
_FILL = {"label": -1, "truth": -1}  # on-disk fill values: "not annotated" / "no human label"


class StoreError(ValueError):
    """A saved cube is damaged (a chunk is missing, truncated or corrupted)."""


class StoreLockedError(ValueError):
    """Another process is writing the store."""


_HELD: dict[str, Any] = {}  # lock files held by this process: path -> [file object, depth]


def _lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


@contextlib.contextmanager
def store_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold the write lock of the store at ``path`` (a ``<path>.lock`` file next to it).

    Re-entrant within a process. A second process asking for the lock of the same store gets
    :class:`StoreLockedError` at once (it never waits and never writes).
    """
    path = Path(path).absolute()
    key = str(path)
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield
        finally:
            _HELD[key][1] -= 1
        return
    lock = _lock_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fh = open(lock, "a+", encoding="utf-8")  # noqa: SIM115 (held for the whole block)
    try:
        import fcntl
    except ImportError:  # pragma: no cover (Windows: no advisory locks; run one writer at a time)
        fcntl = None
    if fcntl is not None:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown process"
            fh.close()
            raise StoreLockedError(
                f"store {path} is being written by another run ({holder}). Fix: wait until that run "
                "finishes (or stop it), or give this run another output folder / store path.") from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}")
    fh.flush()
    _HELD[key] = [fh, 1]
    try:
        yield
    finally:
        del _HELD[key]
        with contextlib.suppress(OSError):
            fh.seek(0)
            fh.truncate()
        fh.close()  # closing releases the flock


def is_label_cube(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a label cube written by :func:`save_cube` (zarr or netCDF)."""
    path = Path(path)
    try:
        if path.is_dir():
            meta = path / "zarr.json"
            if meta.is_file():
                attrs = json.loads(meta.read_text(encoding="utf-8")).get("attributes", {})
                return "schema_version" in attrs and (path / "label").is_dir()
            zattrs = path / ".zattrs"
            return zattrs.is_file() and "schema_version" in json.loads(zattrs.read_text(encoding="utf-8")) \
                and (path / "label").is_dir()
        if path.is_file() and cube_format(path) == "netcdf":
            import h5netcdf

            with h5netcdf.File(path, "r") as f:
                return "schema_version" in f.attrs and "label" in f.variables
    except (OSError, ValueError):
        return False
    return False


def _as_path(path: Any, func: str) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{func}: path must be a str or pathlib.Path, got {type(path).__name__}. Fix: pass the "
                        "path of the store, e.g. 'labels.zarr' or 'labels.nc'.")
    return Path(path)


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


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


def _decoded(cube: xr.Dataset, path: Path | None = None) -> xr.Dataset:
    """Undo :func:`_encodable` and turn any fixed-width / StringDType text back into ``str`` objects.

    ``path``: the zarr store the cube was opened from; its text variables are then read by
    :func:`_read_strings` where their layout allows.
    """
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
            direct = _read_strings(path, str(name), var.shape) if path is not None and name not in cube.coords else None
            if direct is not None:
                replace[name] = xr.Variable(var.dims, direct, var.attrs, var.encoding, fastpath=True)
                continue
            values = np.asarray(var.values)
            if var.dtype.kind == "S":
                values = np.char.decode(values, "utf-8")
            data = np.array(values.tolist(), dtype=object).reshape(values.shape)
            # fastpath: the data are str objects already; without it xarray passes every object array
            # through pandas (datetime inference), 0.5 s for the texts of 400,000 items
            kind = xr.IndexVariable if name in cube.indexes else xr.Variable
            replace[name] = kind(var.dims, data, var.attrs, var.encoding, fastpath=True)
    for name, var in replace.items():
        if name in cube.indexes:
            cube = cube.assign_coords({name: var})
        else:
            cube[name] = var
    return cube


def _plain_layout(store: str | os.PathLike, name: str, first_codec: str) -> tuple[Any, tuple[int, ...], str] | None:
    """``(zarr array, chunk shape, chunk-key separator)`` of variable ``name`` when it has the layout
    :func:`save_cube` writes (zarr v3, regular chunks, default chunk keys, codecs ``first_codec`` +
    ``zstd``), so that its chunk files can be read directly; None for any other layout."""
    try:
        import zarr

        arr = zarr.open_array(str(store), path=name, mode="r")
        meta = arr.metadata
        codecs = meta.codecs
        if (meta.zarr_format == 3 and type(meta.chunk_grid).__name__ == "RegularChunkGrid"
                and meta.chunk_key_encoding.name == "default" and len(codecs) == 2
                and type(codecs[0]).__name__ == first_codec and type(codecs[1]).__name__ == "ZstdCodec"):
            return arr, tuple(int(c) for c in meta.chunk_grid.chunk_shape), str(meta.chunk_key_encoding.separator)
    except Exception:  # noqa: BLE001 - any other layout: zarr's own reading
        pass
    return None


def _chunk_path(directory: str | os.PathLike, sep: str, coords: Any) -> str:
    """The file of chunk ``coords`` of the zarr v3 array stored in ``directory`` (default chunk keys
    with separator ``sep``)."""
    return os.path.join(str(directory), sep.join(["c", *map(str, coords)]))


def _decode_chunk_file(directory: str | os.PathLike, sep: str, coords: tuple[int, ...], name: str,
                       decode: Any) -> Any:
    """``decode(bytes of chunk coords)`` of the array stored in ``directory`` (default chunk keys with
    separator ``sep``, :func:`_plain_layout`); a missing or undecodable chunk is a :class:`StoreError`
    naming the file (never fill values)."""
    file = _chunk_path(directory, sep, coords)
    try:
        # os calls: 4 system calls a file where open().read() makes 9, each releasing the GIL (a chunk
        # is ~30 kB; the analysis reads 10,000s of them next to other Python threads)
        fd = os.open(file, os.O_RDONLY)
        try:
            raw = bytearray(os.fstat(fd).st_size)
            view, got = memoryview(raw), 0
            while got < len(raw):
                n = os.readv(fd, [view[got:]])
                if n == 0:  # shorter than its size: left zeros, which do not decode
                    break
                got += n
        finally:
            os.close(fd)
    except FileNotFoundError as err:
        raise StoreError(f"{file}: chunk {coords} of variable {name!r} is missing, so part of the store would "
                         "read as fill values. Fix: restore the store from a copy, or delete it and run the "
                         "annotation again (cached answers are reused).") from err
    try:
        return decode(raw)
    except Exception as err:  # noqa: BLE001 (codec errors have many types)
        raise StoreError(f"{file}: chunk {coords} of variable {name!r} does not decode (truncated or corrupted: "
                         f"{err}). Fix: restore the store from a copy, or delete it and run the annotation "
                         "again (cached answers are reused).") from err


def _read_strings(path: Path, name: str, shape: tuple[int, ...]) -> np.ndarray | None:
    """The strings of variable ``name`` of a zarr store as an object array, read from its chunk files
    in this thread, or None for a layout other than the one ``save_cube`` writes (:func:`_plain_layout`
    with ``vlen-utf8``).

    Through xarray and zarr 3 the strings are decoded on zarr's event-loop thread into a numpy
    ``StringDType`` array and then copied into ``str`` objects: three times as long (0.4 s for the
    texts and ids of 400,000 items). A missing or undecodable chunk is a :class:`StoreError`.
    """
    from numcodecs.vlen import VLenUTF8
    from numcodecs.zstd import Zstd

    layout = _plain_layout(path, name, "VLenUTF8Codec")
    if layout is None or tuple(layout[0].shape) != tuple(shape) or len(shape) == 0:
        return None
    _, chunk, sep = layout
    out = np.empty(shape, dtype=object)
    zstd, vlen = Zstd(), VLenUTF8()
    for coords in itertools.product(*[range(-(-n // c)) for n, c in zip(shape, chunk, strict=True)]):
        block = _decode_chunk_file(path / name, sep, coords, name, lambda raw: vlen.decode(zstd.decode(raw)))
        if block.size != int(np.prod(chunk)):
            return None
        dst = tuple(slice(k * c, min(n, (k + 1) * c)) for k, c, n in zip(coords, chunk, shape, strict=True))
        out[dst] = block.reshape(chunk)[tuple(slice(0, d.stop - d.start) for d in dst)]
    return out


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
        ``"w-"`` (default) refuses to overwrite; ``"w"`` replaces a label cube saved there
        before (atomically), but never a folder or file that is not a label cube.
    item_chunk
        Items per chunk of ``label`` / ``prob`` in zarr (one chunk per configuration otherwise).

    Raises
    ------
    ValueError
        When ``path`` exists (``mode="w-"``), or holds something other than a label cube.
    StoreLockedError
        When another process is writing the store.
    """
    validate_cube(cube)
    path = _as_path(path, "save_cube")
    fmt = format or cube_format(path)
    if mode not in ("w", "w-"):
        raise ValueError(f"save_cube: mode must be 'w' or 'w-', got {mode!r}.")
    if fmt not in ("zarr", "netcdf"):
        raise ValueError(f"save_cube: unknown format {fmt!r}; use 'zarr' or 'netcdf'.")
    if path.exists() and not _is_empty_dir(path):
        if not is_label_cube(path):
            kind = "folder" if path.is_dir() else "file"
            raise ValueError(f"save_cube: {path} is an existing {kind} that is not a label cube; it is left "
                             "untouched (mode='w' only replaces a cube saved by save_cube). Fix: give a new path.")
        if mode == "w-":
            raise ValueError(f"save_cube: a label cube already exists at {path}. Fix: pass mode='w' to "
                             "replace it, or give another path.")
    enc_cube = _encodable(cube)
    with store_lock(path):
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        _remove(tmp)
        try:
            if fmt == "netcdf":
                enc_cube.to_netcdf(tmp, engine="h5netcdf", encoding=_netcdf_encoding(enc_cube))
            else:
                enc_cube.to_zarr(tmp, mode="w", encoding=_zarr_encoding(enc_cube, item_chunk),
                                 consolidated=False, write_empty_chunks=True)
            if path.exists():  # a label cube (checked above) or an empty folder: swap it out
                old = path.with_name(f".{path.name}.old-{os.getpid()}")
                _remove(old)
                os.rename(path, old)
                os.rename(tmp, path)
                _remove(old)
            else:
                os.rename(tmp, path)  # atomic: the store appears complete or not at all
        finally:
            _remove(tmp)
    return path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _zarr_encoding(enc_cube: xr.Dataset, item_chunk: int) -> dict[str, Any]:
    """Chunks, fill values and checksummed compression of every variable."""
    from zarr.codecs import ZstdCodec

    encoding: dict[str, Any] = {}
    for name, var in enc_cube.variables.items():
        var.encoding.pop("chunks", None)
        var.encoding.pop("preferred_chunks", None)
        for key in ("compressors", "compressor", "filters", "serializer", "fill_value", "_FillValue"):
            var.encoding.pop(key, None)
        enc: dict[str, Any] = {}
        if var.dtype.kind not in ("M", "m"):  # numbers and text (datetimes keep xarray's own encoding)
            enc["compressors"] = [ZstdCodec(level=1, checksum=True)]
        if name in _FILL and var.dtype.kind == "i":
            enc["fill_value"] = _FILL[name]
        if name in ("label", "prob"):
            enc["chunks"] = tuple(
                min(item_chunk, enc_cube.sizes[d]) if d == "item"
                else (enc_cube.sizes[d] if d in ("class", "sample") else 1)
                for d in var.dims
            )
        if enc:
            encoding[str(name)] = enc
    return encoding


def _netcdf_encoding(enc_cube: xr.Dataset) -> dict[str, Any]:
    """HDF5 Fletcher-32 checksums on the numeric data variables."""
    out: dict[str, Any] = {}
    for name, var in enc_cube.data_vars.items():
        if var.dtype.kind in "iuf" and var.ndim and all(n > 0 for n in var.shape):
            out[str(name)] = {"fletcher32": True, "chunksizes": var.shape}
            if name in _FILL:
                out[str(name)]["_FillValue"] = None
    return out


def verify_store(path: str | os.PathLike, *, decode: bool = True) -> None:
    """Check that every chunk of every array of a zarr store is present (and, with ``decode``, decodes).

    Raises
    ------
    StoreError
        Naming the path of the first missing, truncated or corrupted chunk, and the fix.
    """
    import zarr

    path = Path(path)
    try:
        group = zarr.open_group(str(path), mode="r")
        arrays = list(group.arrays())
    except Exception as err:  # noqa: BLE001 (any failure to read the metadata is a damaged store)
        raise StoreError(f"{path}: the store's metadata cannot be read ({type(err).__name__}: {err}). "
                         "Fix: restore the store from a copy, or delete it and run the annotation again "
                         "(the cache next to it keeps every answer).") from err
    for name, arr in arrays:
        grid = [range(n) for n in arr.cdata_shape] if arr.ndim else [range(1)]
        base = os.path.join(str(path), arr.path)  # strings, not Path: 10,000s of chunks
        enc = getattr(arr.metadata, "chunk_key_encoding", None)
        default = arr.ndim and getattr(enc, "name", None) == "default" and arr.metadata.zarr_format == 3
        for coords in itertools.product(*grid):
            # the default keys built directly: zarr's encoder per chunk took half the time
            chunk = (_chunk_path(base, str(enc.separator), coords) if default else
                     os.path.join(base, arr.metadata.encode_chunk_key(tuple(coords) if arr.ndim else ())))
            if not os.path.isfile(chunk):
                raise StoreError(f"{chunk}: chunk {tuple(coords)} of variable {name!r} is missing, so part of "
                                 "the store would read as fill values. Fix: restore the store from a copy, or "
                                 "delete it and run the annotation again (cached answers are reused).")
            if decode:
                try:
                    arr.get_block_selection(tuple(coords)) if arr.ndim else arr[...]
                except Exception as err:  # noqa: BLE001 (codec errors have many types)
                    raise StoreError(f"{chunk}: chunk {tuple(coords)} of variable {name!r} does not decode "
                                     f"(truncated or corrupted: {err}). Fix: restore the store from a copy, "
                                     "or delete it and run the annotation again (cached answers are "
                                     "reused).") from err


def open_cube(path: str | os.PathLike, *, lazy: bool = True, chunks: dict | str | None = None,
              format: str | None = None, verify: bool | str = "auto") -> xr.Dataset:
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
    verify
        zarr only. ``"auto"`` (default): check that every chunk is present, and when ``lazy`` is
        ``False`` name the chunk that does not decode (reading is checked by the zstd checksum of
        every chunk); ``True``: also decode every chunk up front, also when lazy; ``False``: no
        check (a missing chunk would read as fill values: -1 for labels).

    Raises
    ------
    StoreError
        A chunk is missing, truncated or corrupted (the message names its path).
    """
    path = _as_path(path, "open_cube")
    if not path.exists():
        raise ValueError(f"open_cube: {path} does not exist. Fix: check the path, or create the "
                         "store with hackrisk.save_cube(cube, path).")
    fmt = format or cube_format(path)
    if fmt == "zarr" and not (path / "zarr.json").is_file() and not (path / ".zgroup").is_file():
        raise ValueError(f"open_cube: {path} is not a zarr store (no zarr.json). Fix: give the path of a "
                         "cube saved with hackrisk.save_cube, or a .nc file.")
    chunks = ({} if chunks is None else chunks) if lazy else None
    if fmt == "netcdf":
        try:
            ds = xr.open_dataset(path, engine="h5netcdf", chunks=chunks)
            if not lazy:
                ds = ds.load()
        except OSError as err:
            raise StoreError(f"{path}: the netCDF file cannot be read ({err}). Fix: restore it from a copy "
                             "or save the cube again.") from err
    else:
        if verify:  # every chunk present (cheap); with verify=True every chunk decodes, also when lazy
            verify_store(path, decode=verify is True)
        ds = xr.open_zarr(path, chunks=chunks, consolidated=False)
        if not lazy:
            try:
                ds = ds.load()
            except Exception:
                if verify:  # name the chunk that does not decode
                    verify_store(path, decode=True)
                raise
    ds = _decoded(ds, path if fmt == "zarr" and lazy else None)
    if not lazy:
        ds = ds.load()
    else:  # coordinates (model_size, ...) are small: in memory, read in one go
        from dask.base import is_dask_collection

        from ._chunked import compute_kw

        names = [k for k, v in ds.coords.items() if is_dask_collection(v.data)]
        if names:
            ds = ds.assign_coords(ds[names].load(**compute_kw()).coords)
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
    path = _as_path(path, "write_labels")
    if not isinstance(labels, xr.DataArray):
        raise TypeError(f"write_labels: labels must be an xarray.DataArray with dims {('task', *CONFIG_DIMS, 'item')}, "
                        f"got {type(labels).__name__}. Fix: pass a block of a cube, e.g. cube['label'].sel(model=['m']).")
    if cube_format(path) != "zarr":
        raise ValueError("write_labels: region writes need a zarr store. Fix: save the cube as .zarr.")
    if not path.is_dir():
        raise ValueError(f"write_labels: {path} does not exist. Fix: allocate the store with hackrisk.save_cube first.")
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
        ds.to_zarr(path, region=sub, mode="r+", consolidated=False, write_empty_chunks=True)
