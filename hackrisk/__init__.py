"""hackrisk: measure and manage LLM hacking risk in LLM-annotated text analyses.

The one data object is the *label cube* (an ``xarray.Dataset``, see :mod:`hackrisk.cube`).
Importing hackrisk loads neither torch, pymc nor matplotlib.
"""

from . import accessor as _accessor  # noqa: F401  (registers the `.hackrisk` accessor)
from . import datasets, tasks  # noqa: F401  (hackrisk.tasks: the paper's task registry)
from .cube import (
    from_long,
    items_table,
    make_cube,
    to_long,
    validate_cube,
)
from .datasets import list_tasks, load_table, load_task
from .human import add_human_labels
from .hypotheses import generate_hypotheses, hypotheses_table, skipped_table
from .io import open_cube, save_cube, write_labels
from .package import package, verify_package
from .simulate import simulate_multiverse

__version__ = "0.1.0"


def load_ipython_extension(ipython):
    """``%load_ext hackrisk``: rich HTML views of cubes and results and the ``%hackrisk`` magic."""
    from .ipython import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython):
    """Undo :func:`load_ipython_extension`."""
    from .ipython import unload_ipython_extension as _unload

    _unload(ipython)

__all__ = [
    "make_cube",
    "from_long",
    "to_long",
    "items_table",
    "validate_cube",
    "open_cube",
    "save_cube",
    "write_labels",
    "simulate_multiverse",
    "generate_hypotheses",
    "hypotheses_table",
    "skipped_table",
    "add_human_labels",
    "datasets",
    "list_tasks",
    "load_task",
    "load_table",
    "package",
    "verify_package",
]
