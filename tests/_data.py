"""Where the tests find the human-labelled data (``../shared/data`` or ``HACKRISK_DATA_DIR``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def shared_data_dir() -> Path:
    """The data mirror; skips the test when it is absent, but fails under CI."""
    path = Path(os.environ.get("HACKRISK_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")
    if not (path / "MANIFEST.tsv").exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"the data mirror {path} is missing under CI")
        pytest.skip(f"the data mirror {path} is absent (set HACKRISK_DATA_DIR)")
    return path


def offline_mirror(monkeypatch, tmp_path) -> Path:
    """Point hackrisk at the data mirror, offline, with a fresh cache under ``tmp_path``."""
    path = shared_data_dir()
    monkeypatch.setenv("HACKRISK_DATA_DIR", str(path))
    monkeypatch.setenv("HACKRISK_OFFLINE", "1")
    monkeypatch.setenv("HACKRISK_CACHE", str(tmp_path / "cache"))
    return path


def vader_source() -> Path:
    """The vaderSentiment sdist when `make` downloaded it, else the mirror folder."""
    sdist = os.environ.get("HACKRISK_VADER_SDIST")
    if sdist and Path(sdist).exists():
        return Path(sdist)
    return shared_data_dir()


def relevance_csv() -> Path:
    """The llmhacking relevance task (411 tweets, relevant / irrelevant) from the mirror."""
    return shared_data_dir() / "llmhacking" / "relevance_tweets23.csv.gz"


def embedded_tokenizer():
    """The embedded SmolLM2 model's tokenizer (the GGUF converted once, locked); skips the test when the
    model package is absent, but fails under CI."""
    from hackrisk.annotate.models import default_gguf_path, default_model_dir, load_default_model

    try:
        default_gguf_path()
    except ValueError as err:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(str(err))
    if not (default_model_dir() / "tokenizer.json").exists():
        load_default_model()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(default_model_dir())
