"""Annotation engine: run the multiverse of models × prompts × temperatures into a label cube.

>>> from hackrisk.annotate import TaskSpec, annotate          # doctest: +SKIP
>>> spec = TaskSpec("relevance", ["relevant", "irrelevant"],
...                 ["Tweet: {text}\\nIs it about content moderation? Answer relevant or irrelevant."])
>>> cube = annotate(df, spec, temperatures=[0, 1], store="labels.zarr")   # embedded SmolLM2

Heavy libraries (torch, transformers, httpx) load only when a backend is created.
"""

from __future__ import annotations

from typing import Any

from .cache import ResultCache, cache_key
from .runner import (
    STATUS_EMPTY,
    STATUS_FAILED,
    STATUS_REPLACED,
    STATUS_TRUNCATED,
    annotate,
    labels_from_logp,
)
from .task import (
    CONFIDENCE_QUESTION,
    PAPER_CONFIDENCE_TEMPLATE,
    ParsedConfidence,
    ParsedReply,
    TaskSpec,
    paraphrase,
    parse_confidence,
    parse_response,
)

__all__ = [
    "TaskSpec",
    "annotate",
    "parse_response",
    "ParsedReply",
    "parse_confidence",
    "ParsedConfidence",
    "CONFIDENCE_QUESTION",
    "PAPER_CONFIDENCE_TEMPLATE",
    "paraphrase",
    "load_default_model",
    "load_model",
    "TransformersBackend",
    "OpenAIBackend",
    "ResultCache",
    "cache_key",
    "labels_from_logp",
    "STATUS_TRUNCATED",
    "STATUS_EMPTY",
    "STATUS_REPLACED",
    "STATUS_FAILED",
]


def load_default_model() -> Any:
    """The embedded SmolLM2-135M-Instruct as a :class:`TransformersBackend` (offline)."""
    from .backends.local import TransformersBackend

    return TransformersBackend.default()


def load_model(path: str, *, name: str | None = None, **kwargs: Any) -> Any:
    """A model folder or ``.gguf`` file as a :class:`TransformersBackend` (offline)."""
    from .backends.local import TransformersBackend

    return TransformersBackend.from_path(path, name=name, **kwargs)


def __getattr__(name: str) -> Any:
    if name == "TransformersBackend":
        from .backends.local import TransformersBackend

        return TransformersBackend
    if name == "OpenAIBackend":
        from .backends.openai import OpenAIBackend

        return OpenAIBackend
    raise AttributeError(name)
