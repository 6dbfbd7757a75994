"""Automata as pictures: Graphviz when present, Keel's own layered layout otherwise."""

from __future__ import annotations

import re
import shutil

import pytest

from keel.report.automaton import dot_svg, render_dot_blocks
from keel.report.automaton_layout import svg_from_dot
from keel.spec.spec import compile_ltlf

FORMULA = "F(goal_a & F goal_b) & G !hazard"


@pytest.fixture(scope="module")
def dot() -> str:
    return compile_ltlf(FORMULA).dfa.to_dot(FORMULA)


def test_own_layout_draws_every_state_and_edge(dot):
    svg = svg_from_dot(dot)
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert len(re.findall(r"<circle", svg)) == 4 + 1  # four states, the accepting one drawn double
    assert svg.count('stroke-dasharray') == 1  # the dead state
    assert len(re.findall(r"<path d=", svg)) == 10 + 1  # ten transitions (+ the arrow head's path)
    assert "goal_a &amp; goal_b &amp; !hazard" in svg


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_graphviz_draws_it_when_installed(dot):
    svg = dot_svg(dot)
    assert svg.startswith("<svg") and svg.count('class="node"') == 5 and svg.count('class="edge"') == 11


def test_dot_blocks_in_a_page_become_pictures(dot, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)  # the no-Graphviz path, on any machine
    import html

    page = f"<h2>x</h2><pre>{html.escape(dot)}</pre><pre>kind: spec_rl</pre>"
    out = render_dot_blocks(page)
    assert out.count("<svg") == 1 and "<pre>kind: spec_rl</pre>" in out and "<details>" in out
