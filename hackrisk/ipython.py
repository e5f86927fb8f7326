"""IPython extension: rich HTML views of cubes and results, and the ``%hackrisk`` line magic.

``%load_ext hackrisk`` calls :func:`load_ipython_extension`, which

* registers an HTML formatter for ``xarray.Dataset`` that recognises hackrisk objects — label
  cubes, hypotheses, tests / errors, risk results — and shows their sizes, configuration space
  and headline risks (other Datasets keep xarray's own view);
* registers the line magic ``%hackrisk``::

      %hackrisk open PATH [as NAME]     open a cube store (zarr / netCDF) or a saved result
      %hackrisk risk [VAR] [by DIM]      risk of a tests result (default variable: tests)
      %hackrisk explore [VAR | PATH]     open the explorer widget on a tests result
      %hackrisk report VAR PATH          write the self-contained HTML report
      %hackrisk help
"""

from __future__ import annotations

import html
import shlex
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .cube import CONFIG_DIMS, LABEL_DIMS

__all__ = ["load_ipython_extension", "unload_ipython_extension", "dataset_kind", "dataset_html", "hackrisk_magic"]

USAGE = __doc__.split("::", 1)[1].strip("\n")
_STYLE = ("<style>.hackrisk-repr{font-family:system-ui,sans-serif;font-size:12px}"
          ".hackrisk-repr table{border-collapse:collapse}.hackrisk-repr td,.hackrisk-repr th"
          "{padding:1px 8px;text-align:left;border-bottom:1px solid #ddd}"
          ".hackrisk-repr h4{margin:4px 0}</style>")


def dataset_kind(ds: Any) -> str | None:
    """``"cube"``, ``"hypotheses"``, ``"tests"``, ``"risk"`` or ``None`` for other objects."""
    if not isinstance(ds, xr.Dataset):
        return None
    if "label" in ds and set(LABEL_DIMS) <= set(ds["label"].dims):
        return "cube"
    if "conclusion" in ds and "human_conclusion" in ds:
        return "tests"
    if "type_i" in ds and "ci" in ds.dims:
        return "risk"
    if "group" in ds and "hypothesis" in ds.dims:
        return "hypotheses"
    return None


def _e(x: Any) -> str:
    return html.escape(str(x))


def _pct(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{100 * x:.1f}%"


def _rows(rows: list[tuple[Any, ...]]) -> str:
    return "<table>" + "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows) + "</table>"


def _levels(ds: xr.Dataset, dim: str, limit: int = 12) -> str:
    vals = [str(v) for v in ds[dim].values]
    return ", ".join(vals[:limit]) + (f", … ({len(vals)})" if len(vals) > limit else "")


def _config_rows(ds: xr.Dataset) -> list[tuple[Any, ...]]:
    rows = []
    for dim in ("task", *CONFIG_DIMS):
        if dim in ds.dims:
            rows.append((dim, ds.sizes[dim], _levels(ds, dim)))
    return rows


def _risk_rows(r: xr.Dataset) -> list[tuple[Any, ...]]:
    out = []
    for var, name in (("risk_pooled", "overall risk"), ("type_i", "Type I"), ("type_ii", "Type II"),
                      ("type_s", "Type S")):
        if var in r:
            v = r[var]
            if set(v.dims) == {"ci"}:
                lo, hi = float(v.sel(ci="lower")), float(v.sel(ci="upper"))
                ci = f"[{_pct(lo)}, {_pct(hi)}]" if np.isfinite(lo) else ""
                out.append((name, _pct(float(v.sel(ci="estimate"))), ci))
    return out


def dataset_html(ds: xr.Dataset) -> str | None:
    """HTML summary of a hackrisk Dataset (``None`` when ``ds`` is not one)."""
    kind = dataset_kind(ds)
    if kind is None:
        return None
    parts = [_STYLE, "<div class='hackrisk-repr'>"]
    if kind == "cube":
        lab = ds["label"]
        n_cells = int(lab.size)
        done = int((lab >= 0).sum()) if n_cells else 0
        n_items = int((ds["item_id"] != "").sum()) if "item_id" in ds else ds.sizes["item"]
        n_cfg = int(np.prod([ds.sizes[d] for d in CONFIG_DIMS]))
        parts.append(f"<h4>hackrisk label cube</h4><p>{n_items:,} items · {n_cfg} configurations · "
                     f"{done:,} of {n_cells:,} labels annotated ({_pct(done / n_cells if n_cells else np.nan)})</p>")
        parts.append(_rows([("dimension", "size", "levels"), *_config_rows(ds)]))
        if "truth" in ds:
            parts.append(f"<p>human labels: {int((ds['truth'] >= 0).sum()):,}</p>")
    elif kind == "hypotheses":
        parts.append(f"<h4>hackrisk hypotheses</h4><p>{ds.sizes['hypothesis']} hypotheses, "
                     f"{len(ds.attrs.get('skipped', []))} candidates skipped</p>")
        if "kind" in ds.coords and "task" in ds.coords:
            tab = {}
            for t, k in zip(ds["task"].values, ds["kind"].values, strict=True):
                tab[(str(t), str(k))] = tab.get((str(t), str(k)), 0) + 1
            parts.append(_rows([("task", "kind", "hypotheses"), *[(t, k, n) for (t, k), n in sorted(tab.items())]]))
    elif kind == "tests":
        from .analysis.risk import risk

        n_h = ds.sizes["hypothesis"]
        n_sig = int((ds["human_conclusion"] != 0).sum())
        parts.append(f"<h4>hackrisk tests</h4><p>{n_h} hypotheses ({n_sig} significant on human labels) × "
                     f"{int(np.prod([ds.sizes[d] for d in CONFIG_DIMS if d in ds.dims]))} configurations · "
                     f"method {_e(ds.attrs.get('method', '?'))} · α = {_e(ds.attrs.get('alpha', '?'))}</p>")
        parts.append(_rows([("dimension", "size", "levels"), *_config_rows(ds)]))
        try:
            r = risk(ds, n_boot=0)
            parts.append("<h4>headline risks (point estimates; CIs: %hackrisk risk)</h4>" + _rows(_risk_rows(r)))
        except ValueError as exc:
            parts.append(f"<p>risk not available: {_e(exc)}</p>")
    else:
        dims = [d for d in ds["type_i"].dims if d != "ci"]
        parts.append(f"<h4>hackrisk risk{' by ' + ', '.join(dims) if dims else ''}</h4>")
        if not dims:
            parts.append(_rows([("metric", "estimate", "95% CI"), *_risk_rows(ds)]))
        else:
            parts.append(f"<p>{', '.join(f'{d}: {ds.sizes[d]}' for d in dims)} levels</p>")
    try:
        inner = ds._repr_html_()
        parts.append(f"<details><summary>xarray view</summary>{inner}</details>")
    except Exception:  # noqa: BLE001  (the summary above is enough)
        pass
    parts.append("</div>")
    return "".join(parts)


def _html_formatter(ds: xr.Dataset) -> str | None:
    out = dataset_html(ds)
    if out is None:
        return ds._repr_html_()
    return out


# --------------------------------------------------------------------------- magic
def _resolve(shell, name_or_path: str) -> xr.Dataset:
    ns = shell.user_ns if shell is not None else {}
    if name_or_path in ns:
        return ns[name_or_path]
    path = Path(name_or_path).expanduser()
    if path.exists():
        return _open(path)
    from IPython.core.error import UsageError

    raise UsageError(f"%hackrisk: {name_or_path!r} is neither a variable nor an existing path.")


def _open(path: Path) -> xr.Dataset:
    from .io import open_cube

    try:
        return open_cube(path)
    except ValueError:  # not a cube: a saved result
        from .io import cube_format

        if cube_format(path) == "netcdf":
            return xr.load_dataset(path)
        return xr.open_zarr(path).load()


def hackrisk_magic(line: str, shell=None) -> Any:
    """The ``%hackrisk`` line magic (see the module docstring for the commands)."""
    from IPython.core.error import UsageError

    args = shlex.split(line)
    if not args or args[0] in ("help", "-h", "--help"):
        return _Usage()
    cmd, rest = args[0], args[1:]
    ns = shell.user_ns if shell is not None else {}
    if cmd == "open":
        if not rest:
            raise UsageError("%hackrisk open PATH [as NAME]")
        explicit = len(rest) >= 3 and rest[1] == "as"
        ds = _open(Path(rest[0]).expanduser())
        name = rest[2] if explicit else ("tests" if dataset_kind(ds) == "tests" else "cube")
        ns[name] = ds
        return ds
    if cmd == "risk":
        from .analysis.risk import risk

        target = rest[0] if rest and rest[0] != "by" else "tests"
        by = rest[rest.index("by") + 1] if "by" in rest and rest.index("by") + 1 < len(rest) else None
        ds = _resolve(shell, target)
        if dataset_kind(ds) != "tests":
            raise UsageError(f"%hackrisk risk: {target!r} is not a tests result (test_hypotheses output).")
        return risk(ds, by=by, n_boot=200)
    if cmd == "explore":
        from .widgets import explore

        ds = _resolve(shell, rest[0] if rest else "tests")
        return explore(ds)
    if cmd == "report":
        if len(rest) != 2:
            raise UsageError("%hackrisk report VAR PATH")
        from .report import write_report

        path = write_report(_resolve(shell, rest[0]), rest[1])
        return path
    raise UsageError(f"%hackrisk: unknown command {cmd!r}.\n{USAGE}")


class _Usage:
    def _repr_html_(self) -> str:
        return f"<pre>{_e(USAGE)}</pre>"

    def __repr__(self) -> str:
        return USAGE


def load_ipython_extension(ipython) -> None:
    """Register the HTML views and the ``%hackrisk`` magic (``%load_ext hackrisk``)."""
    fmt = ipython.display_formatter.formatters["text/html"]
    fmt.for_type(xr.Dataset, _html_formatter)

    def _magic(line: str):
        return hackrisk_magic(line, ipython)

    _magic.__doc__ = USAGE
    ipython.register_magic_function(_magic, magic_kind="line", magic_name="hackrisk")


def unload_ipython_extension(ipython) -> None:
    """Remove the HTML views (the magic stays registered until the kernel restarts)."""
    fmt = ipython.display_formatter.formatters["text/html"]
    fmt.type_printers.pop(xr.Dataset, None)
