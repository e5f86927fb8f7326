"""Content-addressed, crash-safe result cache (SQLite in WAL mode).

Keys are SHA-256 digests of everything that determines a result: the model identity (name and
weights revision), the exact rendered prompt, the decoding parameters, the seed and the text.
Values are the per-class log-probabilities (``score``) or the raw reply (``generate``), plus a
per-item status. Each batch is one transaction (``synchronous=FULL``): a ``kill -9`` loses at
most the batch in flight, and a key is stored once (primary key), so nothing is duplicated.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ResultCache", "cache_key"]


def cache_key(*parts: Any) -> str:
    """SHA-256 of the JSON encoding of ``parts`` (strings, numbers, lists, dicts)."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()


class ResultCache:
    """Key → ``{"logp": [...] | None, "reply": str | None, "status": int}`` store.

    Parameters
    ----------
    path
        SQLite file; ``None`` or ``":memory:"`` keeps the cache in memory (lost at exit).
    """

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = None if path in (None, ":memory:") else Path(path)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(":memory:" if self.path is None else str(self.path), timeout=60,
                                  isolation_level=None)
        if self.path is not None:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE IF NOT EXISTS result (key TEXT PRIMARY KEY, logp TEXT, reply TEXT, "
                        "status INTEGER NOT NULL)")

    def get_many(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Cached entries of ``keys`` (missing keys absent)."""
        out: dict[str, dict[str, Any]] = {}
        uniq = list(dict.fromkeys(keys))
        for i in range(0, len(uniq), 500):
            chunk = uniq[i:i + 500]
            q = f"SELECT key, logp, reply, status FROM result WHERE key IN ({','.join('?' * len(chunk))})"
            for key, logp, reply, status in self.db.execute(q, chunk):
                out[key] = {"logp": None if logp is None else np.array(
                    [-np.inf if x is None else x for x in json.loads(logp)], dtype=np.float64),
                            "reply": reply, "status": int(status)}
        return out

    def put_many(self, entries: Mapping[str, Mapping[str, Any]] | Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        """Store entries in one transaction (existing keys are kept, never duplicated)."""
        items = entries.items() if isinstance(entries, Mapping) else entries
        rows = []
        for key, e in items:
            logp = e.get("logp")
            logp_s = None if logp is None else json.dumps([None if not np.isfinite(x) else float(x)
                                                           for x in np.asarray(logp, dtype=np.float64)])
            rows.append((key, logp_s, e.get("reply"), int(e.get("status", 0))))
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.executemany("INSERT OR IGNORE INTO result VALUES (?, ?, ?, ?)", rows)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def __len__(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM result").fetchone()[0])

    def close(self) -> None:
        self.db.close()
