"""Atomic output files: complete or absent, with the permissions a plain open() gives."""

import os
import stat

import pytest

from timar_ros.files import atomic_path, write_json


def test_written_files_get_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        p = write_json(tmp_path / "a" / "r.json", {"x": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o644  # not mkstemp's private 0600
    assert p.read_text() == '{\n  "x": 1\n}\n'


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "out.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_as_the_temporary_file_is_made_leaves_nothing(tmp_path, monkeypatch):
    """The signal lands just after the file exists, before its name is back in Python (seen in
    CI: `timar synth` interrupted left a .partial WAV)."""
    real_open = os.open

    def open_then_interrupted(*args, **kwargs):
        os.close(real_open(*args, **kwargs))
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "open", open_then_interrupted)
    with pytest.raises(KeyboardInterrupt), atomic_path(tmp_path / "out.wav") as tmp:
        tmp.write_text("never")
    assert list(tmp_path.iterdir()) == []
