"""PA-MoE (arXiv 2602.17038) on multi-phase toolworld tasks: phase-routed LoRA experts vs a single LoRA with
the same number of LoRA parameters, both trained with GRPO from one shared SFT warm start.

    python benchmarks/distill_pamoe.py [--quick] [--stage warm|rl|all] [--seeds 0 1 2]

`benchmarks/distill.py --part pamoe` calls `run(args)` (after `add_args(parser)`) and writes the tables into
`benchmarks/results/distill.json`; run alone, this script prints them and writes nothing. The work is in
stages that each fit one hold of the long-run lock: `warm` (behaviour cloning of the expert, LoRA r16, into
SmolLM2, then folded into the base for both arms), `rl` (for each seed: the PA-MoE run and the single-LoRA
run, same tasks, same update, same steps), and the report, which reads every finished stage from
`runs/bench-pamoe/` (a stage that is done is not run again; `--fresh` starts over).

Held out: training draws from the `train` split of the templates in the preset; evaluation is greedy on the
first tasks of `test` (the same templates with parameter combinations never trained on).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RUNS = ROOT / "runs" / "bench-pamoe"
PRESETS = ROOT / "keel" / "presets"
T0 = time.time()
ARMS = {"pamoe": {"experts": 3, "rank": 4}, "single": {"experts": 1, "rank": 12}}


def add_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("pamoe")
    g.add_argument("--pamoe-stage", choices=["warm", "rl", "all", "report"], default="report",
                   help="report (default): only read the stages stored in runs/bench-pamoe")
    g.add_argument("--pamoe-seeds", type=int, nargs="+", default=[0, 1, 2])
    g.add_argument("--pamoe-model", default="smollm2", help="smollm2, tiny (smoke test) or a model directory")
    g.add_argument("--pamoe-demos", type=int, default=96)
    g.add_argument("--pamoe-sft-steps", type=int, default=10)
    g.add_argument("--pamoe-sft-batch", type=int, default=6)
    g.add_argument("--pamoe-rl-steps", type=int, default=3)
    g.add_argument("--pamoe-eval-episodes", type=int, default=24)
    g.add_argument("--pamoe-threads", type=int, default=2)
    g.add_argument("--pamoe-max-minutes", type=float, default=19.0,
                   help="start no RL run that would end past this many minutes (one hold of the long-run lock)")
    g.add_argument("--pamoe-fresh", action="store_true", help="discard earlier stages in runs/bench-pamoe")
    g.add_argument("--pamoe-quick", action="store_true", help="tiny random model, minimal sizes (plumbing)")


def _quick(a) -> None:
    if a.pamoe_quick:
        a.pamoe_model, a.pamoe_demos, a.pamoe_sft_steps, a.pamoe_sft_batch = "tiny", 4, 1, 2
        a.pamoe_rl_steps, a.pamoe_eval_episodes, a.pamoe_threads = 1, 2, 1
        a.pamoe_seeds = a.pamoe_seeds[:2]


def _root(a) -> Path:
    return RUNS / ("quick" if a.pamoe_quick else "full")


def _env_turns() -> tuple[dict, dict]:
    pre = yaml.safe_load((PRESETS / "agent-pamoe.yaml").read_text())
    return pre["env"], pre["turns"]


def _train(module, cfg_dict: dict, runs_dir: Path, name: str) -> dict:
    from keel.config import validate
    from keel.runs import Run

    cfg = validate(module.Config, cfg_dict, name)
    path = runs_dir / name
    if path.exists():
        shutil.rmtree(path)  # an unfinished earlier attempt: stages restart whole
    run = Run.create(runs_dir, name, cfg.model_dump(), "benchmarks/distill_pamoe.py")
    t0 = time.time()
    out = module.train(cfg, run, quiet=True)
    run.set_status("finished")
    out["wall_s"] = round(time.time() - t0, 1)
    return out


def warm(a) -> dict:
    """The SFT warm start shared by both arms, and its test success (experts at zero = the warm start)."""
    from keel.distill import pa_moe_job
    from keel.rl import agent_sft

    root = _root(a)
    done = root / "warm.json"
    if done.is_file():
        return json.loads(done.read_text())
    env, turns = _env_turns()
    sft = yaml.safe_load((PRESETS / "agent-sft.yaml").read_text())
    sft.update(policy={"model": a.pamoe_model, "lora_r": 16, "threads": a.pamoe_threads}, env=env, turns=turns,
               demos=a.pamoe_demos, steps=a.pamoe_sft_steps, checkpoint_every=0, eval_base=False,
               eval={"episodes": 2, "splits": ["test"], "batch": 2},
               sft={**sft["sft"], "batch_size": a.pamoe_sft_batch}, runs_dir=str(root))
    prev = root / "warm-sft" / "summary.json"
    if prev.is_file():  # the SFT finished in an earlier hold: only the evaluation is redone
        s = json.loads(prev.read_text())
        s["wall_s"] = s.get("train_seconds")
    else:
        print(f"  warm start: SFT {a.pamoe_sft_steps} steps x {a.pamoe_sft_batch} of {a.pamoe_demos} demos",
              flush=True)
        s = _train(agent_sft, sft, root, "warm-sft")
    cfg = pa_moe_job.Config.model_validate({**_rl_cfg(a, "pamoe", 0), "runs_dir": str(root)})
    policy, tok, _ = pa_moe_job.build(cfg)  # every expert starts at B = 0: the policy is the warm start
    t0 = time.time()
    ev = pa_moe_job.episodes_with_usage(policy, tok, cfg, "test", a.pamoe_eval_episodes)
    out = {"sft_train_s": s["wall_s"], "demos": s["demos"], "sft_last_loss": s["last_loss"], "test": ev,
           "eval_s": round(time.time() - t0, 1)}
    from keel.io import atomic_write_json

    atomic_write_json(done, out)
    print(f"  warm start test success {ev['success']:.3f} (NMI at init {ev['nmi_phase']:.2f})", flush=True)
    return out


def _rl_cfg(a, arm: str, seed: int) -> dict:
    pre = yaml.safe_load((PRESETS / "agent-pamoe.yaml").read_text())
    pre.update(seed=seed, steps=a.pamoe_rl_steps, checkpoint_every=0,
               policy={"model": str(_root(a) / "warm-sft"), "threads": a.pamoe_threads},
               eval={"episodes": a.pamoe_eval_episodes, "splits": ["test"], "batch": min(12, a.pamoe_eval_episodes)},
               moe={**pre["moe"], **ARMS[arm]})
    return pre


def rl(a, seed: int, arm: str) -> dict:
    from keel.distill import pa_moe_job
    from keel.io import atomic_write_json

    root = _root(a)
    done = root / f"{arm}-s{seed}.json"
    if done.is_file():
        return json.loads(done.read_text())
    print(f"  {arm} seed {seed}: GRPO {a.pamoe_rl_steps} steps", flush=True)
    s = _train(pa_moe_job, {**_rl_cfg(a, arm, seed), "runs_dir": str(root)}, root, f"{arm}-s{seed}")
    from keel.runs import Run

    curve = [{k: r[k] for k in ("step", "reward", "accuracy", "nmi_phase", "balance", "gen_s", "train_s") if k in r}
             for r in Run.open(root / f"{arm}-s{seed}").metrics() if "reward" in r]
    out = {k: s[k] for k in ("experts", "rank", "lora_parameters", "router_parameters", "final", "train_usage",
                             "train_specialisation", "wall_s")}
    out["curve"] = curve
    out["router_init"] = s.get("router_init")
    from benchmarks.resultsfile import provenance

    out["commit"] = provenance()["commit"]  # stages run in different holds; each says what produced it
    atomic_write_json(done, out)
    t = s["final"]["test"]
    print(f"    test success {t['success']:.3f}, NMI {t['nmi_phase']:.2f}, {s['wall_s']} s", flush=True)
    return out


def _spread(xs: list[float]) -> float:
    return max(xs) - min(xs) if xs else float("nan")


def _pool(tables: list[dict]) -> dict:
    out: dict = {}
    for t in tables:
        for p, row in t.items():
            out[p] = [x + y for x, y in zip(out.get(p, [0] * len(row)), row, strict=True)]
    return out


def report(a, w: dict | None, res: dict) -> tuple[dict, list, list]:
    from benchmarks.resultsfile import goal
    from keel.distill.pa_moe_phases import specialisation

    tables: dict = {"warm_start": w, "runs": {f"{arm}-s{s}": r for (arm, s), r in res.items()}}
    old = _root(a) / "first-hold-random-router"
    if old.is_dir():  # the first hold, before the k-means router start: its router collapsed (kept as measured)
        first = {"warm_start_test": (_read(old / "warm.json") or {}).get("test")}
        for f in sorted(old.glob("*.json")):
            if f.stem != "warm":
                r = json.loads(f.read_text())
                first[f.stem] = {"test": r["final"]["test"], "train_usage": r["train_usage"],
                                 "train_specialisation": r["train_specialisation"], "curve": r["curve"]}
        tables["first_hold_random_router"] = first
        notes_first = ["first_hold_random_router: the first hold, same warm start, router started at random "
                       "(std 0.02) on unwhitened features with router lr 1e-2 and GRPO lr 2e-4; replaced by the "
                       "k-means start, whitened features, router lr 1e-3 and GRPO lr 1e-3"]
    else:
        notes_first = []
    seeds = {arm: sorted(s for (x, s) in res if x == arm) for arm in ARMS}
    succ = {arm: [res[(arm, s)]["final"]["test"]["success"] for s in seeds[arm]] for arm in ARMS}
    tables["success_test"] = {arm: {"seeds": seeds[arm], "success": succ[arm],
                                    "mean": statistics.mean(succ[arm]) if succ[arm] else None,
                                    "spread": _spread(succ[arm]) if succ[arm] else None} for arm in ARMS}
    eval_usage = _pool([res[("pamoe", s)]["final"]["test"]["usage"] for s in seeds["pamoe"]])
    train_usage = _pool([res[("pamoe", s)]["train_usage"] for s in seeds["pamoe"]])
    tables["usage_phase_x_expert"] = {
        "test_after_rl": eval_usage,  # summed over seeds, expert indices as each seed numbered them
        "test_after_rl_spec_pooled": specialisation(eval_usage) if eval_usage else None,
        "train_rollouts": train_usage, "train_rollouts_spec": specialisation(train_usage) if train_usage else None,
        "test_at_init_seed0": (w or {}).get("test", {}).get("usage"),
        "test_at_init_seed0_spec": {k: (w or {}).get("test", {}).get(k) for k in ("nmi_phase", "purity")}}
    params = {arm: {k: res[(arm, seeds[arm][0])][k] for k in ("experts", "rank", "lora_parameters",
                                                               "router_parameters")} for arm in ARMS if seeds[arm]}
    tables["parameters"] = params
    # an expert's index means nothing across seeds (each seed's router and k-means start are its own), so
    # specialisation is measured per seed and averaged; the pooled table above only shows the counts
    nmi = [specialisation(res[("pamoe", s)]["final"]["test"]["usage"])["nmi_phase"] for s in seeds["pamoe"]]
    tables["usage_phase_x_expert"]["test_after_rl_nmi_per_seed"] = dict(zip(seeds["pamoe"], nmi, strict=True))
    goals = []
    if nmi:
        goals.append(goal("PA-MoE expert specialisation by phase: I(phase; expert)/H(phase) on test turns (mean of "
                          "per-seed values)", round(statistics.mean(nmi), 3), 0.5, "fraction",
                          statistics.mean(nmi) >= 0.5))
    both = [s for s in seeds["pamoe"] if s in seeds["single"]]
    if both:
        diff = statistics.mean(succ["pamoe"]) - statistics.mean(succ["single"])
        spread = max(_spread(succ["pamoe"]), _spread(succ["single"]))
        if len(both) >= 2:
            goals.append(goal("PA-MoE test success above the same-size single LoRA by more than the seed spread",
                              round(diff, 3), f"> {spread:.3f}", "fraction", diff > spread))
        else:
            goals.append(goal("PA-MoE test success above the same-size single LoRA by more than the seed spread",
                              round(diff, 3), "> spread", "fraction", None, "one seed only: no seed spread"))
    if len(params) == 2:
        ratio = params["pamoe"]["lora_parameters"] / params["single"]["lora_parameters"]
        goals.append(goal("LoRA parameters PA-MoE / single LoRA (router counted apart)", ratio, 1.0, "x",
                          ratio == 1.0))
    if not res:
        return tables, [], ["PA-MoE: no RL stage is stored in runs/bench-pamoe yet (run this script with "
                            "--pamoe-stage all under the long-run lock)", *notes_first]
    sft_cfg = _root(a) / "warm-sft" / "config.yaml"
    sft = yaml.safe_load(sft_cfg.read_text()) if sft_cfg.is_file() else {}
    notes = [f"model {a.pamoe_model}; torch threads {a.pamoe_threads}; 2-core CPU shared with other jobs",
             f"warm start: agent_sft LoRA r16, {sft.get('steps')} steps x {sft.get('sft', {}).get('batch_size')} of "
             f"{sft.get('demos')} expert demos, folded into the base; both arms start from it with zero-init adapters",
             f"GRPO {a.pamoe_rl_steps} steps x (2 tasks x 4 episodes), lr 1e-3 (router 1e-3, k-means start), per arm and seed; greedy eval on the "
             f"first {a.pamoe_eval_episodes} test tasks",
             "arms: pamoe = 3 experts of rank 4 + phase router (one expert per turn segment); single = 1 LoRA "
             "of rank 12 through the same code (no router)",
             "phases are labelled from each reply for measurement only (look up / act / confirm / malformed)"]
    notes += notes_first
    commits = sorted({r.get("commit", "unrecorded")[:10] for r in res.values()})
    notes.append("RL runs by commit: " + "; ".join(
        f"{c}: {', '.join(f'{arm}-s{sd}' for (arm, sd), r in sorted(res.items()) if r.get('commit', 'unrecorded')[:10] == c)}"
        for c in commits))
    if len(params) == 2:
        notes.append(f"router parameters {params['pamoe']['router_parameters']} on top of "
                     f"{params['pamoe']['lora_parameters']} LoRA parameters "
                     f"({100 * params['pamoe']['router_parameters'] / params['pamoe']['lora_parameters']:.2f}%)")
    return tables, goals, notes


def run(args) -> tuple[dict, list, list]:
    """The PA-MoE part: (tables, goals, notes) for `write_results`."""
    _quick(args)
    root = _root(args)
    if args.pamoe_fresh and root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    w = warm(args) if args.pamoe_stage in ("warm", "all") else _read(root / "warm.json")
    if args.pamoe_stage in ("rl", "all"):
        walls = [240.0]  # seconds a run is expected to take until one has been timed
        for seed in args.pamoe_seeds:
            for arm in ARMS:
                if (root / f"{arm}-s{seed}.json").is_file():
                    continue
                left = args.pamoe_max_minutes * 60 - (time.time() - T0)
                if left < max(walls):
                    print(f"  stopping: {left:.0f} s left in this hold, a run takes ~{max(walls):.0f} s", flush=True)
                    break
                walls.append(rl(args, seed, arm)["wall_s"])
            else:
                continue
            break
    res = {}
    for arm in ARMS:
        for f in sorted(root.glob(f"{arm}-s*.json")):
            res[(arm, int(f.stem.split("-s")[1]))] = json.loads(f.read_text())
    old = root / "first-hold-random-router"
    paired = {s for (arm, s) in res if arm == "pamoe"} & {s for (arm, s) in res if arm == "single"}
    if not paired and (old / "pamoe-s0.json").is_file() and (old / "single-s0.json").is_file():
        # no later hold finished a pair: report the first hold's pair, under its own settings
        res = {(arm, 0): json.loads((old / f"{arm}-s0.json").read_text()) for arm in ARMS}
        tables, goals, notes = report(args, _read(old / "warm.json"), res)
        tables.pop("first_hold_random_router", None)
        for g in goals:
            g["name"] += " [first hold: random router start, GRPO lr 2e-4]"
        return tables, goals, [
            "These numbers are from the first hold (router started at random, std 0.02, on unwhitened features, "
            "router lr 1e-2, GRPO lr 2e-4, LoRA and router otherwise as now); a second hold with the committed "
            "settings (k-means router start, whitened features, lr 1e-3) did not get the long-run lock in time",
            *[n for n in notes if not n.startswith("GRPO ") and not n.startswith("first_hold")]]
    return report(args, w, res)


def _read(p: Path) -> dict | None:
    return json.loads(p.read_text()) if p.is_file() else None


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_args(ap)
    tables, goals, notes = run(ap.parse_args())
    print(json.dumps({"tables": {k: v for k, v in tables.items() if k != "runs"}, "goals": goals, "notes": notes},
                     indent=1))
