"""`report.html` for a run: its summary, its config and a plot per logged metric, all in one file."""

from __future__ import annotations

import base64
import html
import io
import json
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from keel.io import atomic_write_text  # noqa: E402
from keel.report.automaton import render_dot_blocks  # noqa: E402
from keel.runs import Run  # noqa: E402

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
h1{font-size:1.6em}h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.3em .7em;text-align:left}
th{background:#f4f4f4}.plots{display:flex;flex-wrap:wrap;gap:1em}.plots img{width:340px}
pre{background:#f7f7f7;padding:1em;overflow:auto}
"""


def figure_png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def metric_plots(rows: list[dict]) -> list[tuple[str, str]]:
    """One line plot per numeric metric against step, as (name, base64 PNG)."""
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in rows:
        for k, v in r.items():
            if k in ("step", "time") or isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            series[k].append((r["step"], v))
    plots = []
    for name, pts in sorted(series.items()):
        fig, ax = plt.subplots(figsize=(4.2, 2.8))
        ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1.4)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        plots.append((name, figure_png(fig)))
    return plots


def table(d: dict) -> str:
    cells = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in d.items()
    )
    return f"<table>{cells}</table>"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return str(v)


def write_report(run: Run, sections: list[tuple[str, str]] | None = None) -> Path:
    """Write `report.html` into the run directory; `sections` are extra (title, html) parts from the job."""
    plots = metric_plots(run.metrics())
    parts = [f"<h1>Keel run {html.escape(run.name)}</h1>", "<h2>Summary</h2>", table(run.summary())]
    for title, body in sections or []:
        parts += [f"<h2>{html.escape(title)}</h2>", body]
    if plots:
        imgs = "".join(
            f'<figure><img alt="{html.escape(n)}" src="data:image/png;base64,{b}"></figure>' for n, b in plots
        )
        parts += ["<h2>Training curves</h2>", f'<div class="plots">{imgs}</div>']
    cfg = (run.path / "config.yaml").read_text()
    parts += ["<h2>Config</h2>", f"<pre>{html.escape(cfg)}</pre>"]
    page = f"<!doctype html><html><head><meta charset='utf-8'><title>Keel run {html.escape(run.name)}</title><style>{STYLE}</style></head><body>{''.join(parts)}</body></html>"
    page = render_dot_blocks(page)  # automata and graphs given as DOT text are drawn as pictures
    out = run.path / "report.html"
    atomic_write_text(out, page)
    return out
