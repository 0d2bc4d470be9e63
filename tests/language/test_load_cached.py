"""language.load_cached: a checked model kept on disk, never one with mistakes, never a stale one."""

from __future__ import annotations

import os

import pytest

from ppvi.errors import PPVIError
from ppvi.language import load, load_cached

GOOD = "dim N\ndata x[N]\nmu ~ Normal(0, 1)\nfor n in N:\n    x[n] ~ Normal(mu, 1)\n"


def _pickles(cache) -> list[str]:
    return sorted(p for p in os.listdir(cache) if p.startswith("model_"))


def test_a_model_is_kept_once_and_read_back_equal(tmp_path, monkeypatch):
    monkeypatch.setenv("PPVI_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "m.ppvi"
    path.write_text(GOOD)
    first = load_cached(str(path))
    kept = _pickles(tmp_path / "cache")
    assert len(kept) == 1 and first == load(str(path))
    assert load_cached(str(path)) == first and _pickles(tmp_path / "cache") == kept


def test_an_edited_model_is_checked_again(tmp_path, monkeypatch):
    monkeypatch.setenv("PPVI_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "m.ppvi"
    path.write_text(GOOD)
    load_cached(str(path))
    path.write_text(GOOD.replace("Normal(0, 1)", "Normal(0, 2)"))
    assert load_cached(str(path)) == load(str(path))
    assert len(_pickles(tmp_path / "cache")) == 2


def test_a_model_with_a_mistake_is_reported_every_time_and_never_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("PPVI_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "m.ppvi"
    path.write_text(GOOD.replace("Normal(mu, 1)", "Normal(nu, 1)"))
    for _ in range(2):
        with pytest.raises(PPVIError, match="nu"):
            load_cached(str(path))
    assert _pickles(tmp_path / "cache") == []


def test_a_damaged_cache_file_is_checked_again(tmp_path, monkeypatch):
    monkeypatch.setenv("PPVI_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "m.ppvi"
    path.write_text(GOOD)
    load_cached(str(path))
    (kept,) = _pickles(tmp_path / "cache")
    (tmp_path / "cache" / kept).write_bytes(b"not a pickle")
    assert load_cached(str(path)) == load(str(path))
    assert (tmp_path / "cache" / kept).read_bytes() != b"not a pickle"
