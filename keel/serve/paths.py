"""What the dashboard may read: run directories directly under `--runs`, and named files inside them.

A run is named by one path segment; anything else (`..`, slashes, NUL, a symlink leading out of the
runs folder) is refused before a file is opened, so no URL reaches a file outside `--runs`.
"""

from __future__ import annotations

from pathlib import Path


class Refused(Exception):
    """A request for something outside the runs folder (HTTP 403) or not there (HTTP 404)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class RunsRoot:
    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()

    def run_dir(self, name: str) -> Path:
        if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
            raise Refused(403, f"{name!r} is not a run name (one folder name under the runs directory)")
        p = (self.root / name).resolve()
        if p.parent != self.root:
            raise Refused(403, f"{name!r} leads outside the runs directory")
        if not (p / "config.yaml").is_file():
            raise Refused(404, f"no run {name!r} under {self.root} (no {name}/config.yaml)")
        return p

    def run_file(self, name: str, filename: str) -> Path:
        """A file the dashboard serves from a run (fixed names only, never a path from the URL)."""
        d = self.run_dir(name)
        p = (d / filename).resolve()
        if p.parent != d:
            raise Refused(403, f"{filename!r} leads outside run {name!r}")
        if not p.is_file():
            raise Refused(404, f"run {name!r} has no {filename}")
        return p
