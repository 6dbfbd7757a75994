"""What every `keel` command shares: `--json` output and clear error messages."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from keel.io import to_json

# markup off: user text (formulas, memories, names like '[/x]') is printed as written, never read as rich
# markup (which crashed on '[/x]' and silently ate '[a, b]'); a caller that wants styling passes markup=True
# and escapes what it interpolates (rich.markup.escape).
console = Console(markup=False)
err_console = Console(stderr=True, markup=False)

JSON_HELP = "Print one JSON object as the last line of stdout."


def emit(result: dict[str, Any], as_json: bool, title: str | None = None) -> None:
    """Print `result` as a table for people, or as one JSON line for programs."""
    if as_json:
        print(to_json(result))
        return
    table = Table(title=title, show_header=False)
    for k, v in result.items():
        table.add_row(str(k), f"{v:.4g}" if isinstance(v, float) else str(v))
    console.print(table)
