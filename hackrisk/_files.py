"""Where hackrisk keeps its caches, and file checksums (shared by datasets and models)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

ENV_CACHE = "HACKRISK_CACHE"


def cache_root() -> Path:
    """Root of hackrisk's caches: ``$HACKRISK_CACHE``, else ``~/.cache/hackrisk``."""
    value = os.environ.get(ENV_CACHE, "").strip()
    return Path(value).expanduser() if value else Path.home() / ".cache" / "hackrisk"


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file, read in 4 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()
