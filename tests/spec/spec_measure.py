"""Not a test: the numbers quoted in keel.spec's closing note. Run: .venv/bin/python tests/spec/spec_measure.py

Compile times (MONA / disk cache / memory), DFA.step throughput, shield violations of a random agent in the
16-rooms grid, and the safety game's winning region with slip. Timings depend on machine load.
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np

os.environ.setdefault("KEEL_CACHE_DIR", tempfile.mkdtemp(prefix="keel-spec-measure-"))

from keel.spec import PostPosedShield, PreemptiveShield, Shield, automaton, compile_ltlf  # noqa: E402


def main() -> None:
    t = time.perf_counter()
    compile_ltlf("F x")
    print(f"first compile incl. imports {1e3 * (time.perf_counter() - t):.0f} ms")
    for f in ["F(goal_a & F goal_b) & G !hazard", "G(a -> X b) & F c", "G(transfer -> O confirm)"]:
        t = time.perf_counter()
        compile_ltlf(f)
        cold = time.perf_counter() - t
        automaton._MEMORY.clear()
        t = time.perf_counter()
        compile_ltlf(f)
        disk = time.perf_counter() - t
        t = time.perf_counter()
        compile_ltlf(f)
        mem = time.perf_counter() - t
        print(f"{f}: MONA {cold * 1e3:.1f} ms, disk cache {disk * 1e3:.2f} ms, memory {mem * 1e3:.3f} ms")
    dfa = compile_ltlf("F(goal_a & F goal_b) & G !hazard").dfa
    labels = [frozenset(), frozenset({"goal_a"}), frozenset({"room_1_1"}), frozenset({"goal_b", "door"})]
    t, q = time.perf_counter(), dfa.initial
    for i in range(200_000):
        q = dfa.step(0 if dfa.is_dead(q) else q, labels[i & 3])
    print(f"DFA.step {200_000 / (time.perf_counter() - t):,.0f} steps/s")

    from keel.envs.rooms import RoomsGrid

    spec = compile_ltlf("F(goal_a & F goal_b) & G !hazard", RoomsGrid().propositions)
    for name, wrapper in (("none", None), ("preemptive", PreemptiveShield), ("postposed", PostPosedShield)):
        env = RoomsGrid(n_rooms=16, slip=0.0, max_episode_steps=100)
        env = wrapper(env, spec) if wrapper else env
        rng, monitor, violations = np.random.default_rng(0), spec.monitor(), 0
        obs, info = env.reset(seed=0)
        for _ in range(5000):
            mask = info.get("action_mask")
            action = rng.choice(np.flatnonzero(mask)) if mask is not None else rng.integers(5)
            obs, _, term, trunc, info = env.step(int(action))
            if monitor.step(info["labels"]).value == "violated":
                violations, term = violations + 1, True
            if term or trunc:
                obs, info = env.reset()
                monitor.reset()
        print(f"rooms16 slip=0, random agent, 5000 steps, shield={name}: violations={violations}, "
              f"overrides={getattr(env, 'overrides', 0)}")
    model = RoomsGrid(n_rooms=16, slip=0.1).model
    table = Shield(spec).solve(model.label_sets, model.outcome_cells(np.arange(len(model.label_sets)), 0.1))
    print(f"rooms16 slip=0.1: winning fraction of (automaton state, cell) pairs {table.winning.mean():.3f}")


if __name__ == "__main__":
    main()
