"""Automata and graphs as pictures: Keel's DOT text (a formula's DFA, a DiRL abstract graph) drawn as
inline SVG by Graphviz's `dot` (Gansner et al. 1993, "A technique for drawing directed graphs"), or, on a
machine without Graphviz, by Keel's own layered layout (`keel.report.automaton_layout`).

`render_dot_blocks(html)` swaps every `<pre>` that holds a DOT digraph for its picture, keeping the DOT
text one click away, so every report that shows an automaton shows it drawn.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess

_PRE_DOT = re.compile(r"<pre>(digraph\b.*?)</pre>", re.S)


def dot_svg(dot: str) -> str:
    """An `<svg>` element for a DOT digraph."""
    exe = shutil.which("dot")
    if exe:
        try:
            done = subprocess.run([exe, "-Tsvg"], input=dot, capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            done = None
        if done is not None and done.returncode == 0 and "<svg" in done.stdout:
            return done.stdout[done.stdout.index("<svg"):]
    from keel.report.automaton_layout import svg_from_dot

    return svg_from_dot(dot)


def figure(dot: str) -> str:
    """The picture, with the DOT source folded under it."""
    return (f'<figure class="automaton" style="overflow:auto;max-width:100%">{dot_svg(dot)}</figure>'
            f"<details><summary>DOT source</summary><pre>{html.escape(dot)}</pre></details>")


def render_dot_blocks(page: str) -> str:
    """Replace each `<pre>digraph ...</pre>` (HTML-escaped DOT) by `figure`."""
    return _PRE_DOT.sub(lambda m: figure(html.unescape(m.group(1))), page)
