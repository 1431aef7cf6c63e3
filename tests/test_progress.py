"""The shared progress bar: drawn on a terminal or when forced, silent in a pipe."""

import io

import pytest

import tokensmith
from tokensmith import InputError, progress, progress_enabled


def test_silent_in_a_pipe_passes_items_through(monkeypatch):
    monkeypatch.delenv("TOKENSMITH_PROGRESS", raising=False)
    monkeypatch.setattr("sys.stderr", io.StringIO())
    items = (i * i for i in range(5))
    assert list(progress(items, desc="squares")) == [0, 1, 4, 9, 16]
    assert progress_enabled() is False
    with progress(total=3) as bar:  # a bar updated by hand works the same way
        bar.update(2)


def test_forced_bar_writes_to_stderr_and_yields_every_item(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    monkeypatch.setenv("TOKENSMITH_PROGRESS", "1")
    assert progress_enabled() is True
    assert list(progress(range(4), desc="counting")) == [0, 1, 2, 3]
    assert "counting" in err.getvalue()
    monkeypatch.setenv("TOKENSMITH_PROGRESS", "0")
    assert progress_enabled() is False
    assert progress_enabled(True) is True


def test_enabled_must_be_a_bool():
    with pytest.raises(InputError, match="progress"):
        progress([1], enabled="yes")


def test_exported():
    assert "progress" in tokensmith.__all__
