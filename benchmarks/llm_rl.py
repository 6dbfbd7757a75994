"""Language-model RL on SmolLM2-135M-Instruct: learning (GRPO vs GRPO+STAPO, seeds) and speed vs TRL.

    python benchmarks/llm_rl.py            # full: speed vs TRL's GRPOTrainer, then 3 seeds x 2 variants
    python benchmarks/llm_rl.py --quick    # smoke run on the tiny model: 1 seed, 2 steps, TRL 2 steps

Each trainer runs in its own subprocess so its peak memory (ru_maxrss) is its own. Results go to
benchmarks/results/llm_rl.json only through benchmarks/resultsfile.py (command, commit, load average),
rewritten after every finished part, so a cut-short run keeps what it has. One `--part` alone writes
llm_rl-PART.json and --quick llm_rl-quick.json: no results file is ever merged from separate runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTES = ("Measured on a 2-core CPU shared with six other engineers' jobs (load average 4-8), so absolute "
         "times are several times slower than on an idle machine; Keel and TRL ran back to back under "
         "similar load with the same torch thread count.")

# the learning task: one-digit + - * (the base model is neither at 0 nor at 100% here)
TASK = {"task": "arithmetic", "task_options": {"digits": 1, "ops": "+-*"}, "reward": "format"}


# ----------------------------------------------------------------------------- speed workers
def _problems(n):
    from keel.envs.text import make_task

    task = make_task(TASK["task"], **TASK["task_options"])
    return task, task.problems("train", n, 0)


def worker_keel(a) -> dict:
    import torch

    from keel.llm import load_model
    from keel.rl.grpo import GRPO, GRPOConfig

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model, tok = load_model(a.model)
    task, problems = _problems(a.steps * a.prompts)
    tr = GRPO(model, tok, GRPOConfig(group_size=a.group, prompts_per_step=a.prompts, max_new_tokens=a.tokens,
                                     temperature=0.7, top_p=1.0, lr=1e-6, beta=0.0))
    times, rows = [], []
    for s in range(a.steps):
        t0 = time.perf_counter()
        info = tr.step(problems[s * a.prompts:(s + 1) * a.prompts], task, TASK["reward"], seed=s)
        times.append(time.perf_counter() - t0)
        rows.append(info["updated_rows"])
    return {"step_seconds": times, "updated_rows": rows}


def worker_trl(a) -> dict:
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from keel.llm import load_model

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model, tok = load_model(a.model)
    task, problems = _problems(a.steps * a.prompts)
    ds = Dataset.from_list([{"prompt": p.messages(), "idx": i} for i, p in enumerate(problems)])

    def reward(completions, idx, **_):
        return [task.score(problems[i], c[0]["content"]).reward(TASK["reward"]) for c, i in zip(completions, idx, strict=True)]

    times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - self.t0)

    args = GRPOConfig(
        output_dir=tempfile.mkdtemp(), per_device_train_batch_size=a.group * a.prompts, num_generations=a.group,
        max_completion_length=a.tokens, max_steps=a.steps, learning_rate=1e-6, beta=0.0, temperature=0.7,
        top_p=1.0, logging_steps=1, save_strategy="no", report_to=[], bf16=False, seed=0, shuffle_dataset=False,
        dataloader_num_workers=0, gradient_accumulation_steps=1, disable_tqdm=True,
    )
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=ds, processing_class=tok,
                          callbacks=[Clock()])
    trainer.train()
    return {"step_seconds": times}


def run_worker(kind: str, a) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--model", a.model, "--steps", str(a.speed_steps),
           "--group", str(a.group), "--prompts", str(a.prompts), "--tokens", str(a.tokens),
           "--threads", str(a.threads)]
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if p.returncode != 0:
        return {"error": p.stderr[-2000:], "wall_s": time.time() - t0}
    res = json.loads(p.stdout.strip().splitlines()[-1])
    res["wall_s"] = time.time() - t0
    return res


def speed(a) -> dict:
    out = {"setup": {"model": a.model, "group_size": a.group, "prompts_per_step": a.prompts,
                     "max_completion_tokens": a.tokens, "steps": a.speed_steps, "threads": a.threads,
                     "beta": 0.0, "temperature": 0.7}}
    for kind in ("keel", "trl"):
        res = run_worker(kind, a)
        if "step_seconds" in res:
            steady = res["step_seconds"][1:] or res["step_seconds"]  # the first step warms up
            res["seconds_per_step"] = statistics.mean(steady)
        out[kind] = res
        print(f"  {kind}: {res.get('seconds_per_step', 'failed')} s/step, peak RSS {res.get('peak_rss_mb')} MB",
              flush=True)
    if "seconds_per_step" in out["keel"] and "seconds_per_step" in out["trl"]:
        out["speedup"] = out["trl"]["seconds_per_step"] / out["keel"]["seconds_per_step"]
        out["memory_ratio"] = out["keel"]["peak_rss_mb"] / out["trl"]["peak_rss_mb"]
        speed_on_updating_steps(out)
    return out


def speed_on_updating_steps(out: dict) -> None:
    """Keel skips the backward pass when every completion of a group got the same reward; this is the
    speed-up on the steps where it did not (after the warm-up step), the conservative comparison."""
    k = out["keel"]
    upd = [t for t, n in zip(k["step_seconds"][1:], k["updated_rows"][1:], strict=True) if n > 0]
    if upd:
        k["seconds_per_updating_step"] = statistics.mean(upd)
        out["speedup_updating_steps_only"] = out["trl"]["seconds_per_step"] / k["seconds_per_updating_step"]


# ----------------------------------------------------------------------------- sampler vs model.generate
def sampler_vs_generate(a) -> dict:
    """Keel's sampler against transformers' `model.generate` on the same batch (both with a KV cache)."""
    import torch

    from keel.llm import load_model, sample
    from keel.llm.sampler import encode_prompts, left_pad

    torch.set_num_threads(a.threads)
    model, tok = load_model(a.model)
    _, problems = _problems(a.prompts)
    msgs = [p.messages() for p in problems]
    out = {"prompts": len(msgs), "n": a.group, "max_new_tokens": a.tokens, "rounds": 2}
    keel_t, keel_tok, hf_t, hf_tok = 0.0, 0, 0.0, 0
    for r in range(2):
        t0 = time.perf_counter()
        s = sample(model, tok, msgs, n=a.group, max_new_tokens=a.tokens, temperature=0.7, top_p=1.0, seed=r)
        keel_t += time.perf_counter() - t0
        keel_tok += s.num_tokens
        ids, mask = left_pad(encode_prompts(tok, msgs), tok.pad_token_id)
        torch.manual_seed(r)
        t0 = time.perf_counter()
        with torch.no_grad():
            gen = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=0.7, top_p=1.0,
                                 top_k=0, max_new_tokens=a.tokens, num_return_sequences=a.group,
                                 pad_token_id=tok.pad_token_id)
        hf_t += time.perf_counter() - t0
        new = gen[:, ids.shape[1]:]
        for row in new.tolist():  # generated tokens up to and including the first end-of-sequence
            hf_tok += row.index(tok.eos_token_id) + 1 if tok.eos_token_id in row else len(row)
    out.update(keel_tokens_per_s=keel_tok / keel_t, generate_tokens_per_s=hf_tok / hf_t,
               keel_seconds=keel_t, generate_seconds=hf_t)
    out["ratio"] = out["keel_tokens_per_s"] / out["generate_tokens_per_s"]
    return out


# ----------------------------------------------------------------------------- STAPO probe
def stapo_probe(a) -> dict:
    """How many tokens STAPO silences on SmolLM2 when sampling at temperature 1 (as in the paper)."""
    import torch

    from keel.llm import load_model
    from keel.rl.grpo import GRPO, GRPOConfig

    torch.set_num_threads(a.threads)
    model, tok = load_model(a.model)
    task, problems = _problems(2 * a.speed_steps)
    tr = GRPO(model, tok, GRPOConfig(group_size=a.group, prompts_per_step=2, max_new_tokens=a.tokens,
                                     temperature=1.0, top_p=1.0, lr=1e-5, stapo=True))
    steps = [tr.step(problems[2 * s:2 * s + 2], task, TASK["reward"], seed=s) for s in range(a.speed_steps)]
    return {"temperature": 1.0, "max_new_tokens": a.tokens, "steps": len(steps),
            "masked_frac": [st["masked_frac"] for st in steps], "tau_h": [st.get("tau_h") for st in steps],
            "updated_rows": [st["updated_rows"] for st in steps], "accuracy": [st["accuracy"] for st in steps]}


# ----------------------------------------------------------------------------- learning
def preset_config(a, seed: int, stapo: bool) -> dict:
    return {
        "kind": "llm_rl", "model": a.model, "seed": seed, **TASK, "steps": a.train_steps, "train_pool": 200,
        "eval_n": a.eval_n, "eval_max_new_tokens": 8, "eval_base": False, "checkpoint_every": 0,
        "threads": a.threads, "runs_dir": a.runs_dir,
        "grpo": {"group_size": a.group, "prompts_per_step": 2, "max_new_tokens": a.train_tokens,
                 "temperature": a.temperature,
                 "lr": a.lr, "stapo": stapo, "loss": "dapo", "advantage": "grpo"},
    }


def launch_run(a, seed: int, stapo: bool) -> tuple[str, subprocess.Popen]:
    import yaml

    name = f"llmbench-{'stapo' if stapo else 'grpo'}-s{seed}-{int(time.time())}"
    cfg_file = Path(a.runs_dir) / f"{name}.yaml"
    cfg_file.parent.mkdir(parents=True, exist_ok=True)
    cfg_file.write_text(yaml.safe_dump(preset_config(a, seed, stapo)))
    cmd = [str(ROOT / ".venv" / "bin" / "keel"), "train", str(cfg_file), "--name", name, "--json"]
    return name, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def spikes(norms: list[float]) -> dict:
    if not norms:
        return {"max_over_median": None, "spikes_over_3x_median": None}
    med = statistics.median(norms)
    return {"median": med, "max": max(norms), "max_over_median": max(norms) / med if med else None,
            "spikes_over_3x_median": sum(n > 3 * med for n in norms)}


def collect(a, name: str, proc: subprocess.Popen) -> dict:
    stdout, stderr = proc.communicate()
    from keel.runs import Run

    run = Run(Path(a.runs_dir) / name)
    rows = [r for r in run.metrics() if r["step"] > 0]
    norms = [r["grad_norm"] for r in rows if r.get("updated_rows", 0) > 0]
    final = next((r["test_accuracy"] for r in reversed(rows) if "test_accuracy" in r), None)
    return {"run": str(run.path), "rc": proc.returncode, "test_accuracy": final,
            "train_reward_first_half": statistics.mean(r["reward"] for r in rows[: len(rows) // 2]) if rows else None,
            "train_reward_second_half": statistics.mean(r["reward"] for r in rows[len(rows) // 2:]) if rows else None,
            "masked_frac_mean": statistics.mean(r["masked_frac"] for r in rows) if rows else None,
            "grad_norm": spikes(norms), "steps_done": len(rows),
            "error": stderr[-1500:] if proc.returncode else None}


def base_accuracy(a) -> dict:
    import torch

    from keel.envs.text import make_task
    from keel.llm import load_model
    from keel.rl.grpo import accuracy

    torch.set_num_threads(a.threads)
    model, tok = load_model(a.model)
    task = make_task(TASK["task"], **TASK["task_options"])
    test = task.problems("test", a.eval_n, 12345)  # the same held-out problems the runs evaluate on
    return accuracy(model, tok, task, test, max_new_tokens=8, reward=TASK["reward"])


def learning(a, results: dict) -> None:
    t0 = time.time()
    results["learning"] = {"setup": {"task": TASK, "steps": a.train_steps, "group_size": a.group,
                                     "temperature": a.temperature, "max_new_tokens": a.train_tokens,
                                     "prompts_per_step": 2, "lr": a.lr, "eval_n": a.eval_n,
                                     "seeds": a.seeds, "decoding_for_eval": "greedy"},
                           "base": base_accuracy(a), "runs": {"grpo": [], "stapo": []}}
    print(f"  base test accuracy {results['learning']['base']['accuracy']:.3f}", flush=True)
    save(results)
    for seed in a.seeds:  # GRPO and GRPO+STAPO of one seed side by side: same load for both
        pair = [launch_run(a, seed, False), launch_run(a, seed, True)]
        for (name, proc), variant in zip(pair, ("grpo", "stapo"), strict=True):
            res = collect(a, name, proc)
            results["learning"]["runs"][variant].append({"seed": seed, **res})
            print(f"  {variant} seed {seed}: test acc {res['test_accuracy']} ({res['steps_done']} steps)", flush=True)
        summarise(results)
        save(results)
    results["learning"]["wall_minutes"] = (time.time() - t0) / 60


def summarise(results: dict) -> None:
    L = results["learning"]
    base = L["base"]["accuracy"]
    table = {}
    for variant, runs in L["runs"].items():
        accs = [r["test_accuracy"] for r in runs if r["test_accuracy"] is not None]
        if not accs:
            continue
        table[variant] = {"mean": statistics.mean(accs), "min": min(accs), "max": max(accs),
                          "spread": max(accs) - min(accs), "std": statistics.pstdev(accs), "n_seeds": len(accs),
                          "margin_over_base": statistics.mean(accs) - base,
                          "grad_norm_max_over_median": [r["grad_norm"]["max_over_median"] for r in runs],
                          "grad_norm_spikes_over_3x_median": [r["grad_norm"]["spikes_over_3x_median"] for r in runs]}
    L["table"] = table
    goals = [g for g in results.get("goals", []) if not g["name"].startswith("learning")]
    for variant, row in table.items():
        goals.append({"name": f"learning: {variant} test accuracy - base > seed spread",
                      "value": row["margin_over_base"], "target": row["spread"], "unit": "accuracy",
                      "met": row["margin_over_base"] > row["spread"] and row["n_seeds"] >= 2})
    results["goals"] = goals


def save(results: dict) -> None:
    sys.path.insert(0, str(ROOT))
    from benchmarks.resultsfile import write_results

    tables = {k: v for k, v in results.items() if k not in ("goals", "notes", "name", "load_average_start")}
    write_results(results["name"], tables, results.get("goals", []), results.get("notes", []),
                  load_average_start=results.get("load_average_start"))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--part", choices=["all", "speed", "learning", "sampler", "stapo"], default="all")
    p.add_argument("--worker", choices=["keel", "trl"])
    p.add_argument("--model", default=None)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--group", type=int, default=8)
    p.add_argument("--prompts", type=int, default=1)
    p.add_argument("--tokens", type=int, default=16)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--speed-steps", type=int, default=None)
    p.add_argument("--train-steps", type=int, default=None)
    p.add_argument("--seeds", type=int, nargs="*", default=None)
    p.add_argument("--eval-n", type=int, default=None)
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--temperature", type=float, default=0.7, help="rollout temperature of the learning runs")
    p.add_argument("--train-tokens", type=int, default=8, help="max completion tokens of the learning runs")
    p.add_argument("--runs-dir", default=str(ROOT / "runs" / "bench"))
    a = p.parse_args()
    a.model = a.model or ("tiny" if a.quick else "smollm2")
    if a.worker:  # subprocess: one trainer, one JSON line
        res = worker_keel(a) if a.worker == "keel" else worker_trl(a)
        res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(res))
        return
    a.speed_steps = a.speed_steps or (2 if a.quick else 4)
    a.train_steps = a.train_steps or (2 if a.quick else 10)
    a.seeds = a.seeds if a.seeds is not None else ([0] if a.quick else [0, 1, 2])
    a.eval_n = a.eval_n or (4 if a.quick else 48)
    name = "llm_rl" + ("-quick" if a.quick else "") + ("" if a.part == "all" else f"-{a.part}")
    results = {"name": name, "benchmark": "llm_rl", "quick": a.quick, "notes": [NOTES], "cpu_count": os.cpu_count(),
               "load_average_start": list(os.getloadavg()),
               "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    if a.part in ("all", "speed"):
        print("speed: Keel vs TRL GRPOTrainer", flush=True)
        results["speed"] = sp = speed(a)
        goals = [g for g in results.get("goals", []) if not g["name"].startswith("speed")]
        if "speedup" in sp:
            goals += [
                {"name": "speed: Keel step speed-up over TRL GRPOTrainer", "value": sp["speedup"], "target": 1.5,
                 "unit": "x", "met": sp["speedup"] >= 1.5},
                {"name": "speed: Keel peak memory / TRL peak memory", "value": sp["memory_ratio"], "target": 1.0,
                 "unit": "ratio", "met": sp["memory_ratio"] <= 1.0},
            ]
        results["goals"] = goals
        save(results)
    if a.part in ("all", "sampler"):
        print("sampler: Keel's KV-cache sampler vs model.generate", flush=True)
        results["sampler"] = sampler_vs_generate(a)
        print(f"  {results['sampler']}", flush=True)
        save(results)
    if a.part in ("all", "stapo"):
        print("STAPO probe at temperature 1", flush=True)
        results["stapo_probe"] = stapo_probe(a)
        print(f"  {results['stapo_probe']}", flush=True)
        save(results)
    if a.part in ("all", "learning"):
        print("learning: GRPO vs GRPO+STAPO", flush=True)
        learning(a, results)
    results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    save(results)
    print(json.dumps({"goals": results.get("goals", [])}, indent=1))


if __name__ == "__main__":
    main()
