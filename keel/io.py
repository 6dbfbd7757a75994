"""Writes that survive a crash: write to a temporary file in the same folder, fsync, then rename."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from keel.errors import KeelError


class UnwritableError(KeelError, OSError):
    """An output path that cannot be written (a folder, a file used as a folder, no permission, disk
    full): a clear message for users, and still an OSError for callers that treat writes as optional."""


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    if path.is_dir():
        raise UnwritableError(f"cannot write {path}: it is a folder; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except (FileExistsError, NotADirectoryError):  # a file where a folder of the path should be
        raise UnwritableError(f"cannot write {path}: a part of that path is a file, not a folder") from None
    except OSError as e:
        raise UnwritableError(f"cannot write {path}: {e.strerror or e} ({e.filename or path.parent})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise UnwritableError(f"cannot write {path}: {e.strerror or e}") from None
        raise
    # Make the rename itself durable.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")


def atomic_write_yaml(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, yaml.safe_dump(obj, sort_keys=False))


def _jsonable(x: Any) -> Any:
    """numpy scalars and arrays, paths and sets, as plain JSON."""
    if hasattr(x, "tolist"):
        return x.tolist()
    if isinstance(x, (set, frozenset)):
        return sorted(x)
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON-serialisable: {type(x).__name__}")


def to_json(obj: Any) -> str:
    """One-line JSON, the form every `--json` command prints last."""
    return json.dumps(obj, sort_keys=True, default=_jsonable)
