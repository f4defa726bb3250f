import os
import stat

import pytest

from tdos.atomic_io import write_atomically


def test_writes_the_file_with_umask_permissions_and_leaves_no_temporary(tmp_path):
    old_umask = os.umask(0o022)
    try:
        path = write_atomically(tmp_path / "sub" / "result.json", lambda handle: handle.write(b"{}"))
    finally:
        os.umask(old_umask)
    assert path.read_bytes() == b"{}"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # readable by the group, unlike mkstemp's 0600
    assert [p.name for p in path.parent.iterdir()] == ["result.json"]


def test_a_failing_write_keeps_the_old_file_and_raises(tmp_path):
    path = tmp_path / "result.json"
    path.write_bytes(b"old")

    def failing(handle):
        handle.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomically(path, failing)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]
