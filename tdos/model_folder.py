"""A clear error for a model folder that is missing, before transformers would look the name up on the Hub.

transformers reads any name it does not find on disk as a Hub id, so a typo in a local path (`outputs/dmeo`) ends in
a long traceback about the Hub (or minutes of retries without `HF_HUB_OFFLINE`). `check_model_folder` tells a
local path from a Hub id and names the missing folder instead.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def check_model_folder(name_or_path: str | os.PathLike, what: str = "model folder") -> None:
    """Raises `FileNotFoundError` naming `name_or_path` when it is meant as a local folder and is not a usable one.

    A name is taken as a local path when it exists, starts with `.`, `/` or `~`, is not of the Hub id form `NAME` or
    `OWNER/NAME`, or when its parent folder exists (`outputs/dmeo` next to `outputs/demo`). Such a path must be a
    folder with a `config.json` (as `save_pretrained` writes); other names are left to transformers as Hub ids.
    The error lists the folders of the same parent with similar names.
    """
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"{what} {text!r} has no config.json; expected a folder written by save_pretrained "
                "(or save_for_inference / run_ood_segmentation.py)"
            )
        return
    if path.exists():
        raise FileNotFoundError(f"{what} {text!r} is a file; expected a folder with config.json")
    parent = path.parent
    local = text.startswith((".", "/", "~")) or not _HUB_ID.match(text) or (str(parent) != "." and parent.is_dir())
    if not local:
        return
    message = f"{what} {text!r} does not exist; expected a folder with config.json (or a Hub id OWNER/NAME)"
    siblings = [entry.name for entry in parent.iterdir() if entry.is_dir()] if parent.is_dir() else []
    similar = difflib.get_close_matches(path.name, siblings, n=3)
    if similar:
        message += "; similar folders in " + f"{str(parent)!r}: " + ", ".join(similar)
    raise FileNotFoundError(message)
