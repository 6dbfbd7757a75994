"""A small layered drawing of Keel's DOT digraphs, for machines without Graphviz.

Layout after Sugiyama, Tagawa and Toda (1981), "Methods for visual understanding of hierarchical
system structures", reduced to what automata of a few dozen states need: layers (left to right) are
longest paths from the initial state over the edges that go forward in breadth-first order, states in
a layer are stacked in discovery order, edges between neighbouring layers are straight, the others
bend, self-loops sit above their state.
Reads the DOT that `keel.spec` writes: `N [shape=..., label="..."]` and `A -> B [label="..."]`.
"""

from __future__ import annotations

import html
import re
from collections import deque

_NODE = re.compile(r'^\s*(\w+)\s*\[([^\]]*)\];', re.M)
_EDGE = re.compile(r'^\s*(\w+)\s*->\s*(\w+)\s*(?:\[([^\]]*)\])?;', re.M)
_LABEL = re.compile(r'label="((?:[^"\\]|\\.)*)"')
_TITLE = re.compile(r'^\s*label="((?:[^"\\]|\\.)*)";', re.M)
R, DX, DY, PAD = 22, 190, 110, 70


def _label(attrs: str | None) -> str:
    m = _LABEL.search(attrs or "")
    return m.group(1).replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\") if m else ""


def svg_from_dot(dot: str) -> str:
    nodes: dict[str, str] = {m.group(1): m.group(2) for m in _NODE.finditer(dot)}
    edges = [(a, b, _label(attrs)) for a, b, attrs in _EDGE.findall(dot)]
    start = next((b for a, b, _ in edges if nodes.get(a, "").startswith("shape=point")), None)
    states = [n for n, attrs in nodes.items() if not attrs.startswith("shape=point")]
    if not states:
        return "<svg xmlns='http://www.w3.org/2000/svg' width='200' height='40'><text x='5' y='25'>(empty graph)</text></svg>"
    order = {start or states[0]: 0}  # breadth-first discovery order
    queue = deque(order)
    while queue:
        u = queue.popleft()
        for a, b, _ in edges:
            if a == u and b not in order and b in nodes:
                order[b] = len(order)
                queue.append(b)
    for n in states:  # unreachable states come last
        order.setdefault(n, len(order))
    # longest-path layering over the edges that go forward in that order (the rest close cycles)
    layer = dict.fromkeys(states, 0)
    for b in sorted(states, key=order.get):
        layer[b] = max([layer[a] + 1 for a, bb, _ in edges if bb == b and a in order and order[a] < order[b]]
                       or [0])
    rows: dict[int, list[str]] = {}
    for n in states:
        rows.setdefault(layer[n], []).append(n)
    height = max(len(v) for v in rows.values())
    pos = {n: (PAD + 30 + DX * layer[n], PAD + 20 + DY * (i + (height - len(rows[layer[n]])) / 2))
           for ly, names in rows.items() for i, n in enumerate(names)}
    w = PAD * 2 + 30 + DX * max(rows) + 2 * R
    h = PAD * 2 + 20 + DY * (height - 1) + 2 * R
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
           'font-family="sans-serif" font-size="11">',
           '<defs><marker id="arr" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M0,0L10,5L0,10z"/></marker></defs>']
    title = _TITLE.search(dot)
    if title and title.group(1):
        out.append(f'<text x="{w / 2}" y="{h - 8}" text-anchor="middle">{html.escape(title.group(1))}</text>')
    for a, b, lab in edges:
        if a not in pos or b not in pos:
            if b in pos:  # the arrow from the initial point
                x, y = pos[b]
                out.append(f'<line x1="{x - R - 25}" y1="{y}" x2="{x - R}" y2="{y}" stroke="black" '
                           'marker-end="url(#arr)"/>')
            continue
        (x1, y1), (x2, y2) = pos[a], pos[b]
        text = html.escape(lab)
        if a == b:
            out.append(f'<path d="M{x1 - 8},{y1 - R} C{x1 - 25},{y1 - R - 35} {x1 + 25},{y1 - R - 35} '
                       f'{x1 + 8},{y1 - R}" fill="none" stroke="black" marker-end="url(#arr)"/>')
            out.append(f'<text x="{x1}" y="{y1 - R - 30}" text-anchor="middle">{text}</text>')
            continue
        dx, dy = x2 - x1, y2 - y1
        dist = max((dx * dx + dy * dy) ** 0.5, 1e-9)
        ux, uy = dx / dist, dy / dist
        sx, sy, ex, ey = x1 + ux * R, y1 + uy * R, x2 - ux * R, y2 - uy * R
        span = layer[b] - layer[a]
        # edges to the next layer are straight; longer, backward and same-layer ones bend around states
        bend = 0 if span == 1 else (-1) ** len(out) * 28 * (abs(span) + 1)
        cx, cy = (sx + ex) / 2 - uy * bend, (sy + ey) / 2 + ux * bend
        out.append(f'<path d="M{sx:.1f},{sy:.1f} Q{cx:.1f},{cy:.1f} {ex:.1f},{ey:.1f}" fill="none" '
                   'stroke="black" marker-end="url(#arr)"/>')
        mx, my = (sx + 2 * cx + ex) / 4, (sy + 2 * cy + ey) / 4  # the curve's midpoint
        out.append(f'<text x="{mx:.1f}" y="{my - 4:.1f}" text-anchor="middle">{text}</text>')
    for n in states:
        x, y = pos[n]
        attrs = nodes[n]
        dash = ' stroke-dasharray="4,3"' if "dashed" in attrs else ""
        out.append(f'<circle cx="{x}" cy="{y}" r="{R}" fill="white" stroke="black"{dash}/>')
        if "doublecircle" in attrs:
            out.append(f'<circle cx="{x}" cy="{y}" r="{R - 4}" fill="none" stroke="black"/>')
        name = _label(attrs).split("\n")[0] or n
        out.append(f'<text x="{x}" y="{y + 4}" text-anchor="middle">{html.escape(name)}</text>')
    out.append("</svg>")
    return "".join(out)
