"""Plots and tables for spec-guided RL runs (`keel.rl.spec_job`): training curves, the map of the rooms
world with a greedy shielded episode on it, and DiRL's abstract graph."""

from __future__ import annotations

import html

import numpy as np

from keel.report.html import figure_png


def satisfaction_figure(rows: list[dict]) -> str:
    """Satisfaction of training episodes, and whether any violation happened yet, against env steps."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    steps = [r["env_steps"] for r in rows]
    ax.plot(steps, [r["satisfaction_train"] for r in rows], lw=1.6, label="satisfaction (training episodes)")
    ax.plot(steps, [min(1.0, r["violations_train"]) for r in rows], lw=1.2, ls="--", label="any violation so far")
    ax.set_xlabel("environment steps")
    ax.set_ylim(-0.05, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return f'<img alt="satisfaction" src="data:image/png;base64,{figure_png(fig)}">'


def greedy_path(world, policy, shield: str, seed: int = 0) -> list[int]:
    """The cells of one greedy episode of `policy` (a `keel.rl.learner.ScorePolicy`) under `shield`,
    from the middle start cell, with the world's own dynamics (slip included, drawn from `seed`)."""
    rng = np.random.default_rng(seed)
    policy.reset(np.ones(1, dtype=bool))
    t = world.tables
    cell, u, path = np.array([world.start_cells[len(world.start_cells) // 2]]), np.array([t.initial]), []
    for _ in range(world.max_episode_steps):
        path.append(int(cell[0]))
        a, _ = world.filter(shield, u, cell, policy.scores(u, cell))
        cell2 = world.next_cells(rng, cell, a)
        if t.done[u, cell2][0]:
            path.append(int(cell2[0]))
            break
        u, cell = t.next_u[u, cell2], cell2
    return path


def trajectory_figure(world, policy, shield: str) -> str:
    """The map (walls, hazards, goals) with one greedy episode under `shield` drawn on it."""
    import matplotlib.pyplot as plt

    m = world.model
    path = greedy_path(world, policy, shield)
    img = np.ones((m.height, m.width, 3))
    img[tuple(m.yx[m.hazard_cells].T)] = (0.9, 0.3, 0.3)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.imshow(img, interpolation="nearest")
    draw_walls(ax, m)
    for name, room in m.layout.goals.items():
        y, x = m.yx[m.centre_cell(room)]
        ax.text(x, y, name.upper(), ha="center", va="center", fontweight="bold", color="tab:green")
    yx = m.yx[path]
    ax.plot(yx[:, 1], yx[:, 0], "-", color="tab:blue", lw=1.5)
    ax.plot(yx[0, 1], yx[0, 0], "o", color="tab:blue")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"greedy episode ({shield} shield): {len(path) - 1} steps")
    return f'<img alt="trajectory" src="data:image/png;base64,{figure_png(fig)}">'


def draw_walls(ax, m) -> None:
    """Room walls as lines, with a one-cell gap where a door is."""
    k, lay, mid = m.k, m.layout, m.k // 2
    seg = dict(color="0.3", lw=1.8)
    ax.plot([-0.5, m.width - 0.5, m.width - 0.5, -0.5, -0.5], [-0.5, -0.5, m.height - 0.5, m.height - 0.5, -0.5], **seg)
    for r in range(lay.n_rows):
        for c in range(lay.n_cols):
            y0, x0 = r * k - 0.5, c * k - 0.5
            if c + 1 < lay.n_cols:  # wall to the right of room (r, c)
                x = x0 + k
                if lay.has_door((r, c), (r, c + 1)):
                    ax.plot([x, x], [y0, y0 + mid], **seg)
                    ax.plot([x, x], [y0 + mid + 1, y0 + k], **seg)
                else:
                    ax.plot([x, x], [y0, y0 + k], **seg)
            if r + 1 < lay.n_rows:  # wall below room (r, c)
                y = y0 + k
                if lay.has_door((r, c), (r + 1, c)):
                    ax.plot([x0, x0 + mid], [y, y], **seg)
                    ax.plot([x0 + mid + 1, x0 + k], [y, y], **seg)
                else:
                    ax.plot([x0, x0 + k], [y, y], **seg)


def dirl_graph_table(d: dict) -> str:
    """DiRL's abstract graph (`DiRLLearner.describe()`): edges, predicates, success estimates, the path."""
    rows = []
    for x in d["edges"]:
        p = "-" if x["success"] is None else f"{x['success']:.3f}"
        cells = (x["edge"], x["reach"], x["safe"], p, "yes" if x["on_path"] else "")
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("edge", "reach", "safe", "estimated success", "on chosen path"))
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"
