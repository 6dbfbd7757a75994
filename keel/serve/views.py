"""What the run pages show beyond the table: a flat config diff and a spec run's pictures."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from keel.trackers import hparams_of

_PLOT_LOCK = threading.Lock()  # matplotlib's pyplot is not thread-safe; the server answers from a pool
_SPEC_CACHE: dict[tuple, list[tuple[str, str]]] = {}


def config_diff(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Every flattened config key of either run, with both values and whether they differ."""
    fa, fb = hparams_of(a), hparams_of(b)
    rows = []
    for k in sorted(set(fa) | set(fb)):
        va, vb = fa.get(k, "—"), fb.get(k, "—")
        rows.append({"key": k, "a": _show(va), "b": _show(vb), "differs": va != vb})
    rows.sort(key=lambda r: (not r["differs"], r["key"]))
    return rows


def _show(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def spec_sections(run_dir: Path) -> list[tuple[str, str]]:
    """The spec job's own report sections (greedy trajectory on the map, DiRL graph, the automaton),
    computed from the run's last checkpoint, with DOT drawn as SVG. Cached per checkpoint."""
    from keel.jobs import job_module
    from keel.report.automaton import render_dot_blocks
    from keel.runs import Run

    run = Run(run_dir)
    ckpt = run.latest_checkpoint()
    key = (str(run_dir), str(ckpt), ckpt.stat().st_mtime_ns if ckpt else 0)
    if key not in _SPEC_CACHE:
        with _PLOT_LOCK:
            sections = job_module("spec_rl").report_sections(run)
        _SPEC_CACHE[key] = [(t, render_dot_blocks(h)) for t, h in sections]
    return _SPEC_CACHE[key]


def automaton_figure(formula: str) -> str:
    """The formula's minimal DFA as a picture (works before the first checkpoint too)."""
    from keel.report.automaton import figure
    from keel.spec.spec import compile_ltlf

    return figure(compile_ltlf(formula).dfa.to_dot(formula))
