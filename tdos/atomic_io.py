"""Atomic file writes (standard library only, so `tdos.evaluation` keeps needing nothing but NumPy).

A file is written under a temporary name in its own folder and then renamed over the target: readers, and a run
killed half-way, see the old file or the new one, never a half-written one. The temporary file is created like any
`open(..., "x")`, so the result gets the permissions of the umask (not `tempfile.mkstemp`'s owner-only 0600).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import BinaryIO, Callable, Union


def write_atomically(path: Union[str, os.PathLike], write: Callable[[BinaryIO], object]) -> Path:
    """Calls `write(binary file object)` on a temporary file beside `path` (its folder is created), then renames it
    to `path`. On any error the temporary file is removed, `path` is left as it was, and the error propagates."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temporary, "xb") as handle:
            write(handle)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path
