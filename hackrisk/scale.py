"""Out-of-core and distributed analysis of label cubes with dask.

A cube opened with :func:`hackrisk.open_cube` keeps ``label`` on disk as a dask array. Only the
``label`` variable grows with the multiverse (tasks x configurations x items); everything else a
hypothesis test needs (texts, human labels, covariates, group memberships) lives on
``(task, item)`` or ``(hypothesis, item)`` and fits in memory. So the chunked path is:

1. **hypotheses** (:func:`generate_hypotheses_chunked`): the generator reads only the small
   ``(task, item)`` variables, so it runs on a light copy of the cube without touching the labels;
2. **counts** (:func:`count_hypotheses`): the expensive part, the class counts ``k_a`` / ``k_b`` of
   every (hypothesis, configuration), is additive over items. Each dask block of ``label`` (one
   task, a block of configurations, a block of items) is counted with the same kernel as the
   in-memory path (:func:`hackrisk.analysis._kernels.count_by_group`, float32 matrix products
   against the distinct group-membership rows of the task's hypotheses), and the per-block partial
   counts are summed over the item blocks by a dask tree reduction. The same pass counts missing
   labels (the ``annotated`` flag) and invalid codes (validation). :func:`hypotheses_and_tests_chunked`
   makes steps 1 and 2 one pass: each task's hypotheses are a dask task that the counting of that
   task's blocks waits for, so one worker generates while another counts;
3. **tests** (:func:`test_hypotheses_chunked`): the summed counts go through the same 2 x 2 test
   kernel (:func:`hackrisk.analysis._kernels.two_by_two`) as
   :func:`hackrisk.analysis.frequentist.test_hypotheses`. Counts are integers, exact in float32
   per block (fewer than 2**24 items) and in float64 once summed, so the result is *identical* to
   the in-memory path, whatever the chunking or the number of workers;
4. **errors and risk**: :func:`hackrisk.analysis.risk.classify_errors` and
   :func:`hackrisk.analysis.risk.risk` take the tests Dataset, whose size is (hypotheses x
   configurations) and does not grow with the number of items; they run unchanged
   (:func:`analyze_chunked` chains all four steps).

Every function computes with ``dask.compute``, i.e. on whatever scheduler is active: the local
threaded scheduler by default, or a ``dask.distributed`` cluster once a ``Client`` exists (the
store must then sit on storage that every worker can read). Peak memory is a few blocks per
worker thread: choose the blocks with ``chunks=`` (default :func:`analysis_chunks`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from ._chunked import analysis_chunks, compute_kw, count_lazy, is_lazy, light_copy
from .cube import validate_cube

__all__ = [
    "is_lazy",
    "analysis_chunks",
    "generate_hypotheses_chunked",
    "count_hypotheses",
    "test_hypotheses_chunked",
    "hypotheses_and_tests_chunked",
    "analyze_chunked",
]

log = logging.getLogger(__name__)


def generate_hypotheses_chunked(cube: xr.Dataset, **kwargs: Any) -> xr.Dataset:
    """:func:`hackrisk.hypotheses.generate_hypotheses` on a lazy cube, without reading its labels.

    The generator uses only ``(task, item)`` variables (texts, human labels, covariates), so it
    runs on a light in-memory copy holding the labels of a single (model, temperature) for
    validation. The result is identical to ``generate_hypotheses(cube.load(), **kwargs)``.

    Parameters
    ----------
    cube
        A label cube (lazy or in memory).
    **kwargs
        Options of :func:`hackrisk.hypotheses.generate_hypotheses`.
    """
    from .hypotheses import generate_hypotheses

    validate_cube(cube, check_values=False)
    return generate_hypotheses(light_copy(cube), **kwargs)


def count_hypotheses(
    cube: xr.Dataset,
    hypotheses: xr.Dataset,
    *,
    sample: int | None = None,
    chunks: Mapping[str, int] | None = None,
    scheduler: str | None = None,
) -> dict[str, Any]:
    """Class counts of every (hypothesis, configuration), computed block by block with dask.

    Each block of ``label`` (one task, a block of configurations, a block of items) is read once,
    by one task that counts its classes per distinct group-membership row
    (:func:`hackrisk.analysis._kernels.count_by_group`), its missing labels and its invalid codes;
    the partial results are summed over the item blocks by a tree reduction. Only these small
    partials are ever held, so memory stays at a few blocks per worker thread.

    Parameters
    ----------
    cube
        A label cube, lazy (e.g. :func:`hackrisk.open_cube`) or in memory (it is chunked).
    hypotheses
        Hypotheses on that cube (:func:`hackrisk.hypotheses.generate_hypotheses`).
    sample
        Draw of the cube's ``sample`` dimension (see :func:`hackrisk.analysis.frequentist.test_hypotheses`).
    chunks
        Dask chunks of ``label`` for the pass; dimensions not given take those of
        :func:`analysis_chunks` (``task`` must stay 1).
    scheduler
        Passed to ``dask.compute`` (default: the active one, e.g. a distributed ``Client``).

    Returns
    -------
    dict
        ``k_a``, ``k_b`` (hypothesis, configuration + 1) float64 (last column: human labels),
        ``hn_a``, ``hn_b``, ``n_a``, ``n_b`` (hypothesis,) int64, ``annotated_tc`` (task, configuration) bool,
        ``t_idx``, ``cls``, ``group`` as checked by the in-memory path, ``n_cfg``, ``cfg_shape``,
        ``used_tasks``. Configurations are flattened in (model, prompt, temperature) C order.

    Raises
    ------
    ValueError
        The errors of ``test_hypotheses`` (invalid cube, labels or hypotheses).
    """
    from .analysis import frequentist as F

    return count_lazy(cube, hypotheses, check_hypotheses=F._check_hypotheses, label_array=F._label_array,
                      sample=sample, chunks=chunks, scheduler=scheduler)


def test_hypotheses_chunked(
    cube: xr.Dataset,
    hypotheses: xr.Dataset,
    *,
    alpha: float = 0.05,
    zero_rule: str = "paper",
    method: str = "wald",
    sample: int | None = None,
    chunks: Mapping[str, int] | None = None,
    scheduler: str | None = None,
) -> xr.Dataset:
    """:func:`hackrisk.analysis.frequentist.test_hypotheses`, block by block with dask.

    One pass over ``label`` computes the class counts of every (hypothesis, configuration) per
    block and sums them over item blocks (:func:`count_hypotheses`); the 2 x 2 test kernel then
    runs on the summed counts. The result is identical to the in-memory ``test_hypotheses`` (same
    variables, dtypes, coords and attrs), for any chunking, scheduler or number of workers.

    Parameters
    ----------
    cube
        A label cube, lazy (:func:`hackrisk.open_cube`) or in memory.
    hypotheses
        Hypotheses on that cube.
    alpha, zero_rule, method, sample
        As in :func:`hackrisk.analysis.frequentist.test_hypotheses`.
    chunks
        Dask chunks of ``label`` for the pass (default :func:`analysis_chunks`): peak memory is
        about 3 bytes per label of a block plus a few MB, per worker thread.
    scheduler
        Passed to ``dask.compute``; default the active scheduler (a distributed ``Client`` if one
        exists, else threads).

    Returns
    -------
    xarray.Dataset
        See ``docs/results.md`` (Tests).

    Examples
    --------
    >>> cube = hackrisk.open_cube("multiverse.zarr")                 # doctest: +SKIP
    >>> hyps = generate_hypotheses_chunked(cube)                     # doctest: +SKIP
    >>> tests = test_hypotheses_chunked(cube, hyps)                  # doctest: +SKIP
    """
    _check_test_options(alpha, zero_rule, method)
    counts = count_hypotheses(cube, hypotheses, sample=sample, chunks=chunks, scheduler=scheduler)
    from .analysis.frequentist import tests_from_counts

    return tests_from_counts(cube, hypotheses, counts, alpha=alpha, zero_rule=zero_rule, method=method,
                              sample=sample)


def _check_test_options(alpha: float, zero_rule: str, method: str) -> None:
    from .analysis import _kernels as K

    if method != "wald":
        raise ValueError(f"method={method!r} is not supported; use one of ('wald',).")
    if zero_rule not in K.ZERO_RULES:
        raise ValueError(f"zero_rule={zero_rule!r} is not one of {K.ZERO_RULES}. Fix: use 'paper' (default), "
                         "'firth' or 'exact'.")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha} must lie in (0, 1).")


def hypotheses_and_tests_chunked(
    cube: xr.Dataset,
    *,
    alpha: float = 0.05,
    zero_rule: str = "paper",
    sample: int | None = None,
    chunks: Mapping[str, int] | None = None,
    scheduler: str | None = None,
    **kwargs: Any,
) -> tuple[xr.Dataset, xr.Dataset]:
    """Generate the hypotheses and test them in one pass, each task's hypotheses made as a dask task.

    The same result as ``hyps = generate_hypotheses_chunked(cube, **kwargs)`` followed by
    ``test_hypotheses_chunked(cube, hyps, ...)`` (identical Datasets), in less time with more
    than one worker: the generator's work per task (mostly finding the words of every text for
    the keyword groupings) runs in the counting graph, so one worker makes a task's hypotheses
    while the others count the labels of tasks whose hypotheses are ready. The hypotheses need
    no alignment check against the cube either, since they are made from it.

    Parameters
    ----------
    cube
        A label cube, lazy (:func:`hackrisk.open_cube`) or in memory.
    alpha, zero_rule, sample, chunks, scheduler
        As in :func:`test_hypotheses_chunked`.
    **kwargs
        Options of :func:`hackrisk.hypotheses.generate_hypotheses`.

    Returns
    -------
    (xarray.Dataset, xarray.Dataset)
        The hypotheses and their tests.
    """
    from . import hypotheses as H
    from .analysis import frequentist as F

    _check_test_options(alpha, zero_rule, "wald")
    validate_cube(cube, check_values=False)
    light = light_copy(cube, compute_kw(scheduler))
    plan = H._plan_hypotheses(light, **kwargs)

    def task_part(t: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        part = H._task_hypotheses(plan, t)
        return part["group"], np.array([m[2] for m in part["meta"]], dtype=np.int64), part

    counts = count_lazy(cube, None, check_hypotheses=F._check_hypotheses, label_array=F._label_array,
                        sample=sample, chunks=chunks, scheduler=scheduler, task_parts=task_part, light=light)
    hypotheses = H._assemble_hypotheses(plan, counts.pop("parts"))
    if hypotheses.sizes["hypothesis"] == 0:
        F._check_hypotheses(cube, hypotheses)  # the in-memory path's message for no hypothesis
    tests = F.tests_from_counts(cube, hypotheses, counts, alpha=alpha, zero_rule=zero_rule, method="wald",
                                sample=sample)
    return hypotheses, tests


test_hypotheses_chunked.__test__ = False  # a library function, not a pytest test


def analyze_chunked(
    cube: xr.Dataset,
    hypotheses: xr.Dataset | None = None,
    *,
    alpha: float = 0.05,
    zero_rule: str = "paper",
    by: str | list[str] | None = None,
    n_boot: int = 1000,
    rng: int | np.random.Generator | None = 0,
    chunks: Mapping[str, int] | None = None,
    scheduler: str | None = None,
    hypotheses_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, xr.Dataset]:
    """Hypotheses, tests, errors and risk of a (lazy) cube in one call.

    Parameters
    ----------
    cube
        A label cube, lazy or in memory.
    hypotheses
        Hypotheses to test (default: :func:`generate_hypotheses_chunked` with ``hypotheses_kwargs``).
    alpha, zero_rule
        Test options (:func:`test_hypotheses_chunked`).
    by, n_boot, rng
        Risk options (:func:`hackrisk.analysis.risk.risk`).
    chunks, scheduler
        Dask options (:func:`test_hypotheses_chunked`).
    hypotheses_kwargs
        Options of the hypothesis generator.

    Returns
    -------
    dict
        ``hypotheses``, ``tests`` (with ``error`` and ``type_m`` from
        :func:`hackrisk.analysis.risk.classify_errors`) and ``risk``.
    """
    from .analysis.risk import classify_errors, risk

    if hypotheses is None:  # made task by task inside the counting pass
        hypotheses, tests = hypotheses_and_tests_chunked(cube, alpha=alpha, zero_rule=zero_rule, chunks=chunks,
                                                         scheduler=scheduler, **dict(hypotheses_kwargs or {}))
    else:
        tests = test_hypotheses_chunked(cube, hypotheses, alpha=alpha, zero_rule=zero_rule, chunks=chunks,
                                        scheduler=scheduler)
    tests = classify_errors(tests)
    return {"hypotheses": hypotheses, "tests": tests, "risk": risk(tests, by=by, n_boot=n_boot, rng=rng)}
