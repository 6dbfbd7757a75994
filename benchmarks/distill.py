"""Many minds into one (issue 16): AgentArk debate distillation, small-model ensembles, and PA-MoE.

    python benchmarks/distill.py --part agentark          # SmolLM2-135M, seeds 0 1 2 (as the time allows)
    python benchmarks/distill.py --part ensemble          # 8 LoRA members vs one model with 8 samples
    python benchmarks/distill.py --part pamoe             # benchmarks/distill_pamoe.py (the PA-MoE engineer's)
    python benchmarks/distill.py --part all
    python benchmarks/distill.py --quick --part all       # the tiny random model, seconds; distill-quick.json

All three parts live in benchmarks/results/distill.json, written only through benchmarks/resultsfile.py.
Rerunning one part keeps the other parts' tables, goals and notes from the existing file, and every part
carries its own provenance (command, commit, load average), stamped by this script when that part ran.

Task: one-digit arithmetic with + - * (SmolLM2 gets about 58% right, benchmarks/results/llm_rl.json), held
out by the task's split hash: train problems feed the debate, SFT, the PRM and RL; the test split is only
ever answered. Inference cost is measured in tokens the models process (prompt + generated) per problem.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from resultsfile import RESULTS, goal, provenance, write_results  # noqa: E402

TASK = {"task": "arithmetic", "task_options": {"digits": 1, "ops": "+-*"}}
QUICK_TASK = {"task": "instruct", "task_options": {}}  # the random tiny model passes some of these
PARTS = ("agentark", "ensemble", "pamoe")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def spread(xs: list[float]) -> float:
    return max(xs) - min(xs) if xs else float("nan")


# ----------------------------------------------------------------------------------------- AgentArk
def agentark(a, save) -> tuple[dict, list[dict], list[str]]:
    import torch

    from keel.distill.augment import da_examples
    from keel.distill.debate import Agent, DebateConfig, debate, summary
    from keel.distill.evaluate import single_model
    from keel.distill.pad import PADConfig, train_pad
    from keel.distill.prm import PRM, PRMConfig, step_labels
    from keel.distill.rsft import SFTConfig, rsft_examples, sft
    from keel.envs.text import make_task
    from keel.llm import load_model
    from keel.rl.grpo import GRPOConfig

    task = make_task(a.task["task"], **a.task["task_options"])
    base, tok = load_model(a.model)
    base.requires_grad_(False)
    pool = task.problems("train", a.train_n, 0)
    test = task.problems("test", a.eval_n, 12345)
    dcfg = DebateConfig(agents=a.agents, rounds=a.rounds, max_new_tokens=a.tokens, temperature=0.7)
    sft_cfg = SFTConfig(lr=a.sft_lr, epochs=a.sft_epochs, batch_size=8)
    pad_cfg = PADConfig(steps=a.pad_steps, prm_weight=a.prm_weight, reward="format",
                        grpo=GRPOConfig(group_size=8, prompts_per_step=2, max_new_tokens=a.tokens, temperature=0.7,
                                        lr=a.pad_lr))
    log(f"agentark: base model on {len(test)} held-out problems")
    base_eval = single_model(base, tok, task, test, a.tokens)
    log(f"  base accuracy {base_eval['accuracy']:.3f}")
    # --append: the seeds an earlier run of the same setup finished are kept (each with its own provenance)
    runs, t0, done = [r for r in a.prior_runs if r["seed"] not in a.seeds], time.time(), 0
    for seed in a.seeds:
        if done and (time.time() - t0) / 60 * (done + 1) / done > a.max_minutes:
            log(f"  stopping before seed {seed}: another seed would pass --max-minutes {a.max_minutes}")
            break
        torch.manual_seed(seed)
        ts0 = time.time()
        agents = [Agent(base, tok) for _ in range(a.agents)]  # the same model, its own sampling seed each
        train_t = debate(agents, task, pool, dcfg, seed=seed)
        test_t = debate(agents, task, test, dcfg, seed=10_000 + seed)
        teach, deb = summary(train_t), summary(test_t)
        log(f"  seed {seed}: debate train acc {teach['accuracy']:.3f}, test acc {deb['accuracy']:.3f} "
            f"({deb['tokens_per_problem']:.0f} tokens/problem)")
        r_ex, d_ex = rsft_examples(train_t), da_examples(train_t)

        def student(examples, seed=seed):  # no verified trajectory at all: the student stays the base model
            m = copy.deepcopy(base).requires_grad_(True)
            logs = sft(m, tok, examples, sft_cfg, seed=seed) if examples else [{"loss": float("nan")}]
            return m, logs, single_model(m, tok, task, test, a.tokens) if examples else dict(base_eval)

        rsft_model, rsft_log, rsft_eval = student(r_ex)
        del rsft_model
        da_model, da_log, da_eval = student(d_ex)
        log(f"  seed {seed}: R-SFT {rsft_eval['accuracy']:.3f} ({len(r_ex)} ex), DA {da_eval['accuracy']:.3f} "
            f"({len(d_ex)} ex)")

        # the PRM: trained on the steps of 80% of the train debates, judged on the other 20%
        labelled = step_labels(train_t)
        cut = int(0.8 * len(train_t))
        prm = PRM(base, tok, PRMConfig())
        prm_fit = prm.fit([s for s in labelled if s.group < cut])
        prm_held = prm.evaluate([s for s in labelled if s.group >= cut])
        prm.fit(labelled)  # then on every step, for PAD
        pad_model = da_model  # hierarchical: PAD continues from the DA student
        pad_log = train_pad(pad_model, tok, task, prm, pool, pad_cfg, seed=seed)
        pad_eval = single_model(pad_model, tok, task, test, a.tokens)
        del pad_model, da_model
        log(f"  seed {seed}: PRM held-out AUC {prm_held['auc']}, PAD {pad_eval['accuracy']:.3f} "
            f"({time.time() - ts0:.0f} s)")
        runs.append({
            "seed": seed, "debate_train": teach, "debate_test": deb,
            "rsft": {**rsft_eval, "examples": len(r_ex), "final_loss": rsft_log[-1]["loss"]},
            "da": {**da_eval, "examples": len(d_ex), "final_loss": da_log[-1]["loss"]},
            "prm": {"fit_80pct": prm_fit, "held_out_20pct": prm_held},
            "pad": {**pad_eval, "train_accuracy_first_half": statistics.mean(x["accuracy"] for x in pad_log[:len(pad_log) // 2 or 1]),
                    "train_accuracy_second_half": statistics.mean(x["accuracy"] for x in pad_log[len(pad_log) // 2:]),
                    "prm_reward_mean": statistics.mean(x["prm_reward"] for x in pad_log)},
            "seconds": round(time.time() - ts0, 1), "provenance": provenance(),
        })
        runs.sort(key=lambda r: r["seed"])
        done += 1
        save(*report(a, base_eval, runs))  # a cut-short run keeps every finished seed
    return report(a, base_eval, runs)


def report(a, base_eval: dict, runs: list[dict]) -> tuple[dict, list[dict], list[str]]:
    """The AgentArk tables, goals and notes from the seeds finished so far."""
    if not runs:
        return {"setup": vars_of(a), "base": base_eval, "runs": []}, [], ["no seed finished"]

    def col(key):
        return [r[key]["accuracy"] for r in runs]

    table = {name: {"accuracy_mean": statistics.mean(col(k)), "accuracy_per_seed": col(k), "spread": spread(col(k)),
                    "tokens_per_problem": statistics.mean(r[k]["tokens_per_problem"] for r in runs)}
             for name, k in (("debate", "debate_test"), ("rsft", "rsft"), ("da", "da"), ("pad", "pad"))}
    table["base"] = {"accuracy_mean": base_eval["accuracy"], "accuracy_per_seed": [base_eval["accuracy"]],
                     "spread": 0.0, "tokens_per_problem": base_eval["tokens_per_problem"]}
    gain = table["pad"]["accuracy_mean"] - base_eval["accuracy"]
    s = table["pad"]["spread"]
    cost_ratio = table["pad"]["tokens_per_problem"] / base_eval["tokens_per_problem"]
    goals = [
        goal("PAD student above the base by more than the seed spread", round(gain, 4), f"> {s:.4f} (PAD seed spread)",
             "held-out accuracy", gain > s if len(runs) > 1 else None,
             None if len(runs) > 1 else "one seed only: there is no seed spread to beat"),
        goal("PAD student at one model's inference cost", round(cost_ratio, 3), "<= 1.1", "tokens vs base",
             cost_ratio <= 1.1),
    ]
    notes = [f"AgentArk: {len(runs)} seeds ({', '.join(str(r['seed']) for r in runs)}; each run's own command, "
             "commit and load are in its provenance); "
             f"{a.eval_n} held-out problems, greedy decoding; debate of {a.agents} copies of the base model "
             f"(own sampling seeds, temperature 0.7), {a.rounds} rounds, majority of the last round.",
             "PAD continues from the DA student (the strategies are hierarchical); R-SFT and DA each start from "
             "the base. The PRM reads the frozen base model's last hidden state; its held-out AUC is on the "
             "steps of the 20% of training debates it did not see.",
             "Replies are answer-only (the task asks for just the number), so a 'reasoning trace' is the "
             "reply; R-SFT and DA differ in how many verified trajectories per problem they keep and DA also "
             "keeps the debate context a right answer was given in."]
    return {"setup": vars_of(a), "table": table, "base": base_eval, "runs": runs}, goals, notes


# ----------------------------------------------------------------------------------------- ensembles
def ensemble(a, save) -> tuple[dict, list[dict], list[str]]:
    import torch

    from keel.distill.answers import answer_key
    from keel.distill.ensemble import best_of_n, logit_average_generate, majority_vote
    from keel.distill.members import lora_members
    from keel.distill.prm import PRM, LabelledStep, PRMConfig
    from keel.distill.rsft import Example, SFTConfig
    from keel.envs.text import make_task
    from keel.llm import load_model, sample

    task = make_task(a.task["task"], **a.task["task_options"])
    seed = a.seeds[0]
    torch.manual_seed(seed)
    frozen, tok = load_model(a.model)  # the PRM verifier's reader; the members get their own copy
    frozen.requires_grad_(False)
    pool = task.problems("train", a.ens_train_n, 0)
    test = task.problems("test", a.eval_n, 12345)
    n_max = max(a.members)

    log(f"ensemble: {len(pool)} train problems x 4 base samples -> verified replies and PRM steps")
    s = sample(frozen, tok, [p.messages() for p in pool], n=4, max_new_tokens=a.tokens, temperature=1.0,
               seed=seed)
    examples, steps = [], []
    for i, text in zip(s.prompt_index, s.texts, strict=True):
        ok = task.score(pool[i], text).correct
        msgs = pool[i].messages()
        steps.append(LabelledStep(tuple((m["role"], m["content"]) for m in msgs), text.strip(), ok, i))
        if ok:
            examples.append(Example.of(msgs, text))
    prm = PRM(frozen, tok, PRMConfig())
    prm_fit = prm.fit(steps)

    model, _ = load_model(a.model)
    log(f"ensemble: training {n_max} LoRA members on bootstrap resamples of {len(examples)} verified replies")
    _, members, mlogs = lora_members(model, tok, examples, n_max,
                                     SFTConfig(lr=a.lora_lr, epochs=1, batch_size=8), r=8, seed=seed,
                                     bag=a.bag)
    prompts = [p.messages() for p in test]
    P = len(test)

    def grade(texts):
        return [task.score(p, t).correct for p, t in zip(test, texts, strict=True)]

    # every member's greedy reply, and member 0 sampled n_max times (the single model with more compute)
    member_texts, member_cost = [], []
    for m in members:
        out = sample(m.activate(), tok, prompts, n=1, max_new_tokens=a.tokens, temperature=0.0, seed=0)
        member_texts.append(out.texts)
        member_cost.append([len(p) + len(c) for p, c in zip(out.prompt_ids, out.completion_ids, strict=True)])
    single = sample(members[0].activate(), tok, prompts, n=n_max, max_new_tokens=a.tokens, temperature=0.7,
                    seed=seed + 1)
    single_texts = [[single.texts[i * n_max + k] for k in range(n_max)] for i in range(P)]
    single_cost = [[len(single.prompt_ids[i * n_max + k]) + len(single.completion_ids[i * n_max + k])
                    for k in range(n_max)] for i in range(P)]
    log("ensemble: scoring candidates with the PRM verifier")
    flat_msgs = [prompts[i] for i in range(P) for _ in range(n_max)]
    member_scores = prm.score(flat_msgs, [member_texts[k][i] for i in range(P) for k in range(n_max)]).view(P, n_max)
    single_scores = prm.score(flat_msgs, [single_texts[i][k] for i in range(P) for k in range(n_max)]).view(P, n_max)

    def acc(texts):
        return sum(grade(texts)) / P

    def vote(cands):  # the first candidate that carries the majority's answer
        keys = [answer_key(task, c) for c in cands]
        top = majority_vote(keys)
        return cands[keys.index(top)] if top is not None else cands[0]

    rows = {}
    for n in a.members:
        ens_major = [vote([member_texts[k][i] for k in range(n)]) for i in range(P)]
        ens_best = [member_texts[best_of_n(member_scores[i, :n].tolist())][i] for i in range(P)]
        if n == 1:
            single_major = single_best = member_texts[0]
            single_tokens = sum(member_cost[0]) / P
            single_pass = acc(member_texts[0])
        else:
            single_major = [vote(single_texts[i][:n]) for i in range(P)]
            single_best = [single_texts[i][best_of_n(single_scores[i, :n].tolist())] for i in range(P)]
            single_tokens = sum(sum(c[:n]) for c in single_cost) / P
            single_pass = sum(any(task.score(test[i], t).correct for t in single_texts[i][:n]) for i in range(P)) / P
        avg_texts, avg_cost = logit_average_generate(members[:n], tok, prompts, a.tokens)
        # the paired comparison behind the goal: problems one side solves and the other does not (McNemar's
        # discordant pairs); with few of them a difference of one problem is not a finding
        e_ok, s_ok = grade(ens_major), grade(single_major)
        rows[str(n)] = {
            "ensemble_tokens_per_problem": sum(sum(member_cost[k][i] for k in range(n)) for i in range(P)) / P,
            "ensemble_majority": sum(e_ok) / P,
            "ensemble_best_of_n_prm": acc(ens_best),
            "ensemble_logit_average": acc(avg_texts),
            "ensemble_logit_average_tokens_per_problem": sum(avg_cost) / P,
            "single_tokens_per_problem": single_tokens,
            "single_majority": sum(s_ok) / P,
            "majority_discordant": {"ensemble_only": sum(e > s for e, s in zip(e_ok, s_ok, strict=True)),
                                    "single_only": sum(s > e for e, s in zip(e_ok, s_ok, strict=True))},
            "single_best_of_n_prm": acc(single_best),
            "single_pass_at_n_oracle": single_pass,
        }
        log(f"  N={n}: ensemble majority {rows[str(n)]['ensemble_majority']:.3f} / logit-avg "
            f"{rows[str(n)]['ensemble_logit_average']:.3f} / best-of-N {rows[str(n)]['ensemble_best_of_n_prm']:.3f}"
            f"; single majority {rows[str(n)]['single_majority']:.3f} / best-of-N "
            f"{rows[str(n)]['single_best_of_n_prm']:.3f}")
        save({"setup": vars_of(a), "by_members": rows, "partial": f"members up to {n} of {a.members}"}, [],
             [f"Ensembles: partial, rows for N up to {n}."])  # a cut-short run keeps the finished rows
    base_acc = acc(sample(frozen, tok, prompts, n=1, max_new_tokens=a.tokens, temperature=0.0, seed=0).texts)
    top = str(n_max)
    ens, sgl = rows[top]["ensemble_majority"], rows[top]["single_majority"]
    goals = [goal(f"ensemble of {n_max} (majority) vs one model with {n_max} samples (majority), equal compute",
                  round(ens - sgl, 4), "> 0", "held-out accuracy difference", ens > sgl)]
    notes = [f"Ensembles: one seed ({seed}) of member construction; {n_max} LoRA (r=8) members of the base "
             f"model, each fine-tuned one epoch on its own bootstrap sample ({a.bag}) of the base's verified replies "
             f"to {len(pool)} train problems (4 samples each, temperature 1). Members answer greedily; the single "
             "model is member 0 sampled at temperature 0.7 (greedy at N=1). Best-of-N uses a PRM trained on the "
             "same verified/unverified samples (never the answer key); pass@N is the oracle upper bound.",
             "Cost is tokens processed per problem (prompt + generated, summed over members or samples); logit "
             "averaging runs every member on every token, so its cost is N x one reply."]
    return {"setup": vars_of(a), "base_member_free_accuracy": base_acc, "prm_fit": prm_fit,
            "member_final_sft_loss": [m[-1]["loss"] for m in mlogs], "examples": len(examples),
            "by_members": rows}, goals, notes


# ----------------------------------------------------------------------------------------- PA-MoE
def pamoe_module():
    """benchmarks/distill_pamoe.py (the PA-MoE engineer's), imported lazily; None when it is absent."""
    try:
        return importlib.import_module("distill_pamoe")
    except ModuleNotFoundError as e:
        if e.name != "distill_pamoe":
            raise
        return None


def pamoe(a, save) -> tuple[dict, list[dict], list[str]]:
    mod = pamoe_module()
    if mod is None:
        return {}, [], ["PA-MoE: benchmarks/distill_pamoe.py is absent, so this part did not run."]
    return mod.run(a)


# the options that change an AgentArk seed's numbers: --append pools seeds only when these agree
AGENTARK_KEYS = ("model", "task", "threads", "train_n", "eval_n", "tokens", "agents", "rounds", "sft_lr",
                 "sft_epochs", "pad_steps", "pad_lr", "prm_weight")


def vars_of(a) -> dict:
    return {k: v for k, v in vars(a).items() if k not in ("part", "prior_runs")}


def prior_agentark_runs(a, old_parts: dict) -> list[dict]:
    """With --append, the finished seeds of the existing AgentArk part, if its setup is this one."""
    if not a.append or "agentark" not in old_parts:
        return []
    part = old_parts["agentark"]
    was = part["tables"].get("setup", {})
    diff = [k for k in AGENTARK_KEYS if getattr(a, k) != was.get(k)]
    if diff:
        raise SystemExit(f"--append: the existing AgentArk part has another setup ({', '.join(diff)}); "
                         "rerun without --append")
    # a seed written before runs carried their own provenance gets its part's
    return [{"provenance": part["provenance"], **r} for r in part["tables"].get("runs", [])]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=["all", *PARTS], default="all")
    p.add_argument("--quick", action="store_true", help="the tiny random model, a few seconds; distill-quick.json")
    p.add_argument("--model", default=None)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--train-n", type=int, default=64)
    p.add_argument("--eval-n", type=int, default=48)
    p.add_argument("--tokens", type=int, default=8)
    p.add_argument("--agents", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--sft-lr", type=float, default=2e-5)
    p.add_argument("--sft-epochs", type=int, default=2)
    p.add_argument("--pad-steps", type=int, default=10)
    p.add_argument("--pad-lr", type=float, default=1e-5)
    p.add_argument("--prm-weight", type=float, default=0.5)
    p.add_argument("--members", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--lora-lr", type=float, default=2e-4)
    p.add_argument("--ens-train-n", type=int, default=32, help="ensembles: train problems sampled for members")
    p.add_argument("--bag", type=int, default=32, help="ensembles: bootstrap sample size per member")
    p.add_argument("--max-minutes", type=float, default=17.0, help="AgentArk: start no seed that would pass this")
    p.add_argument("--append", action="store_true",
                   help="AgentArk: keep the existing file's finished seeds of the same setup, run --seeds besides")
    if (mod := pamoe_module()) is not None:
        mod.add_args(p)  # its options are --pamoe-*
    a = p.parse_args()
    if a.quick and mod is not None:
        a.pamoe_quick = True
    if a.quick:
        a.model = a.model or "tiny"
        a.seeds, a.train_n, a.eval_n, a.tokens = a.seeds[:2], 8, 6, 3
        a.pad_steps, a.members, a.sft_epochs, a.ens_train_n, a.bag = 2, [1, 2], 1, 8, 4
    a.model = a.model or "smollm2"
    a.task = QUICK_TASK if a.quick else TASK

    import torch

    torch.set_num_threads(a.threads)
    name = "distill-quick" if a.quick else "distill"
    path = RESULTS / f"{name}.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    parts = dict(old.get("tables", {}))
    todo = PARTS if a.part == "all" else (a.part,)
    a.prior_runs = prior_agentark_runs(a, parts)
    for part in todo:
        load0 = list(os.getloadavg())
        log(f"part {part}")

        def save(tables, goals, notes, part=part, load0=load0):
            for g in goals:
                g["part"] = part
            if path.is_file():  # another part may have been written meanwhile (by another process): keep it
                parts.update({q: v for q, v in json.loads(path.read_text()).get("tables", {}).items() if q != part})
            parts[part] = {"provenance": {**provenance(), "load_average_start": load0}, "tables": tables,
                           "goals": goals, "notes": notes}
            write_results(name, parts, [g for q in PARTS if q in parts for g in parts[q]["goals"]],
                          [f"{q}: {n}" for q in PARTS if q in parts for n in parts[q]["notes"]])

        # written after every part (and every AgentArk seed), so a cut-short run keeps what it finished
        save(*{"agentark": agentark, "ensemble": ensemble, "pamoe": pamoe}[part](a, save))
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
