"""What the agent training jobs share: the policy (any local HF model, full or LoRA, CPU or CUDA), saving
it as `runs/NAME/policy/` for others to load (`load_policy`), and evaluation on a task split.

The kinds themselves are `keel.rl.agent_sft` (behaviour cloning on the env's expert) and `keel.rl.agent_rl`
(GRPO family on multi-turn rollouts). A trained run's summary records `base_model` (what `load_model`
loads before the adapter is applied, or the root model of a full save), `root_model`, `init` (the run it
started from) and `kind`, so `keel redteam` and the safety card can name what was trained from what.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Literal

from pydantic import Field

from keel.config import KeelModel
from keel.errors import KeelError
from keel.llm.multiturn import TurnConfig, run_episodes
from keel.rl.agent_envs import EnvConfig, make_env, split_starts, task_group


class PolicyConfig(KeelModel):
    model: str = "smollm2"  # smollm2, tiny, a local Hugging Face model directory, or an agent run (runs/NAME)
    lora_r: int = 0  # > 0: train LoRA adapters of this rank (continues a LoRA policy's own adapter)
    device: Literal["cpu", "cuda"] = "cpu"
    threads: int = 0  # torch threads; 0 keeps torch's default


class EvalConfig(KeelModel):
    episodes: int = 32  # per split (the first N tasks of the split)
    splits: list[str] = Field(default_factory=lambda: ["test"])
    batch: int = 16  # episodes sampled together


def is_agent_run(source: str) -> bool:
    p = Path(source).expanduser()
    return (p / "policy").is_dir() and (p / "summary.json").is_file()


def _device(name: str):
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise KeelError("device cuda was asked for but torch sees no CUDA GPU here; use device: cpu")
    return torch.device(name)


def build_policy(cfg: PolicyConfig) -> tuple[object, object, dict]:
    """(model, tokenizer, provenance) for training: the source model, with LoRA adapters when asked."""
    import torch

    from keel.llm import load_model
    from keel.llm.lora import add_lora, is_lora

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    dev = _device(cfg.device)
    if is_agent_run(cfg.model):
        prev = json.loads((Path(cfg.model) / "summary.json").read_text())
        model, tok = load_policy(cfg.model, trainable=cfg.lora_r > 0)
        root, init = prev.get("root_model", prev["base_model"]), str(cfg.model)
        if is_lora(model) and cfg.lora_r > 0:  # keep training the same adapter over the same base
            base = prev["base_model"]
        elif is_lora(model):  # full fine-tuning of a LoRA policy: fold the adapter in first
            model, base = model.merge_and_unload(), root
        else:
            base = str(Path(cfg.model) / "policy") if cfg.lora_r > 0 else root
            if cfg.lora_r > 0:
                model = add_lora(model, cfg.lora_r)
    else:
        if cfg.model.startswith("runs/") or cfg.model.startswith("./runs/"):
            raise KeelError(f"policy.model {cfg.model!r} is not a finished agent run (no policy/ and summary.json); "
                            "train it first, e.g. `keel train agent-sft --name agent-sft`")
        model, tok = load_model(cfg.model, seed=0)  # the tiny test model is seed 0 wherever it is loaded
        root = base = cfg.model
        init = None
        if cfg.lora_r > 0:
            model = add_lora(model, cfg.lora_r)
    model.to(dev)
    model.eval()
    return model, tok, {"base_model": base, "root_model": root, "init": init}


def save_policy(model, tokenizer, run_path: Path) -> Path:
    """Write the policy as a Hugging Face folder (adapter only for LoRA), replacing it atomically."""
    final = Path(run_path) / "policy"
    tmp = Path(run_path) / ".policy.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    old = Path(run_path) / ".policy.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def load_policy(run_dir: str | Path, device: str = "cpu", trainable: bool = False):
    """(model, tokenizer) of an agent run's saved policy: the full model, or its base with the adapter."""
    from keel.llm import load_model
    from keel.llm.model import load_tokenizer

    run_dir = Path(run_dir)
    pdir, summary = run_dir / "policy", run_dir / "summary.json"
    if not pdir.is_dir() or not summary.is_file():
        raise KeelError(f"{run_dir} has no saved policy (policy/ and summary.json); finish or resume its training")
    info = json.loads(summary.read_text())
    if (pdir / "adapter_config.json").is_file():
        from peft import PeftModel

        base, _ = load_model(info["base_model"], seed=0)
        model = PeftModel.from_pretrained(base, str(pdir), is_trainable=trainable)
        tok = load_tokenizer(pdir)
    else:
        model, tok = load_model(str(pdir))
    model.to(_device(device))
    model.eval()
    return model, tok


# --- evaluation ---------------------------------------------------------------------------------------
def metrics(trajs) -> dict:
    """Task success, calls per task, malformed-call rate, guard denials and tokens, over episodes."""
    n = max(len(trajs), 1)
    turns = sum(t.turns for t in trajs)
    return {
        "episodes": len(trajs),
        "success": sum(t.success for t in trajs) / n,
        "reward": sum(t.reward for t in trajs) / n,
        "calls_per_task": sum(int(t.episode.get("calls", t.turns)) for t in trajs) / n,
        "malformed_rate": sum(t.malformed for t in trajs) / max(turns, 1),
        "denials_per_task": sum(t.denied for t in trajs) / n,
        "tokens_per_episode": sum(t.length for t in trajs) / n,
        "model_tokens_per_episode": sum(t.model_tokens for t in trajs) / n,
        "truncated_frac": sum(bool(t.truncated) for t in trajs) / n,
    }


def run_split(model, tok, env_cfg: EnvConfig, turns: TurnConfig, split: str, episodes: int, batch: int = 16,
              seed: int = 12345) -> dict:
    """Greedy episodes on the first `episodes` tasks of `split`; the metrics above."""
    env0 = make_env(env_cfg, split)
    starts = split_starts(env0, split, episodes, seed)
    envs = [env0] + [make_env(env_cfg, split) for _ in range(min(batch, len(starts)) - 1)]
    trajs = []
    for i in range(0, len(starts), batch):
        chunk = starts[i : i + batch]
        trajs += run_episodes(model, tok, envs[: len(chunk)], chunk, turns, temperature=0.0, seed=seed)[0]
    out = metrics(trajs)
    if all(st.options and "task" in st.options for st in starts):
        out["success_by_group"] = by_group(env0, starts, trajs)
    return out


def by_group(env, starts, trajs) -> dict[str, float]:
    """Success per task group (template): which skills an agent has, not only how many tasks it solves."""
    won: dict[str, list[int]] = {}
    for st, t in zip(starts, trajs, strict=True):
        won.setdefault(task_group(env, st.options["task"]), []).append(int(t.success))
    return {g: sum(v) / len(v) for g, v in sorted(won.items())}



def evaluate_splits(model, tok, cfg) -> dict:
    """The job's evaluation: every split in `cfg.eval.splits`, greedy, `cfg.eval.episodes` each."""
    return {s: run_split(model, tok, cfg.env, cfg.turns, s, cfg.eval.episodes, cfg.eval.batch)
            for s in cfg.eval.splits}


def resume_or_start(run, trainer, model, tok, cfg, resume: bool, restore=None) -> tuple[int, dict]:
    """(first step, base-model evaluation): from the last checkpoint when resuming, else step 0 with the base
    model evaluated once (if `cfg.eval_base`) and logged at step 0, so a resumed run never re-evaluates it.
    `restore(state)` gets the checkpoint's whole state (what a job saved beside the trainer's, see end_step)."""
    if resume and (ckpt := run.load_checkpoint()) is not None:
        state, start = ckpt
        trainer.load_state_dict(state["trainer"])
        if restore is not None:
            restore(state)
        run.truncate_metrics(start)
        if state.get("base") is not None:
            return start, state["base"]
    else:
        start = 0
    base = evaluate_splits(model, tok, cfg) if cfg.eval_base else {}
    for s, m in base.items():
        run.log(0, **{f"{s}/{k}": v for k, v in m.items()})
    return start, base


def end_step(run, step: int, row: dict, cfg, model, tok, trainer, base: dict, extra: dict | None = None) -> dict:
    """Log one training step (with every split's evaluation on the last one) and checkpoint when due (with
    `extra`, the job's own state beside the trainer's); returns that final evaluation ({} before the last
    step)."""
    final = evaluate_splits(model, tok, cfg) if step == cfg.steps else {}
    for s, m in final.items():
        row.update({f"{s}/{k}": v for k, v in m.items()})
    run.log(step, **row)
    if step == cfg.steps or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0):
        run.save_checkpoint({"trainer": trainer.state_dict(), "base": base, **(extra or {})}, step)
    return final


def rollout_stats(trajs) -> dict:
    """The training step's row additions from its sampled trajectories: malformed calls per turn, guard
    denials and turns per episode."""
    n = max(len(trajs), 1)
    return {"malformed_rate": sum(t.malformed for t in trajs) / max(sum(t.turns for t in trajs), 1),
            "denials": sum(t.denied for t in trajs) / n, "turns": sum(t.turns for t in trajs) / n}


def finish_run(run, model, tok, final: dict, summary: dict) -> dict:
    """Save the policy and write the run's summary (`summary` plus `final`, `policy`); a run resumed after its
    last step takes `final` from the log."""
    save_policy(model, tok, run.path)
    summary = {**summary, "final": final or split_rows(run), "policy": str(run.path / "policy")}
    run.write_summary(summary)
    # the policy is saved: only the last checkpoint (weights + optimiser, to train on) is still of use, and a
    # full-fine-tuning checkpoint of even a 135M model is 1.5 GB (three of them per run filled the disk)
    run.prune_checkpoints(1)
    return summary


def split_rows(run) -> dict:
    """The last logged metrics of each eval split ({split: {metric: value}})."""
    out: dict = {}
    for r in run.metrics():
        for k, v in r.items():
            if "/" in k:
                s, m = k.split("/", 1)
                out.setdefault(s, {})[m] = v
    return out


def evaluate_run(run, module_config, episodes: int | None, split: str, seed: int,
                 overrides: list[str] | None = None) -> dict:
    """`keel eval RUN --split ...` for an agent run: its saved policy, else its last checkpoint. `overrides`
    (`--set turns.max_turn_tokens=96`) change how it is evaluated (turn limits, env options, batch), never
    which policy: the result records them."""
    from keel.config import apply_overrides, validate

    for o in overrides or []:
        if not o.split("=", 1)[0].strip().startswith(("turns.", "env.", "eval.")):
            raise KeelError(f"keel eval --set {o!r}: only turns.*, env.* and eval.* fields can change at evaluation "
                            "(the policy is the run's own); e.g. --set turns.max_turn_tokens=96")
    cfg = validate(module_config, apply_overrides(run.config(), overrides or []), str(run.path / "config.yaml"))
    if (run.path / "policy").is_dir() and (run.path / "summary.json").is_file():
        model, tok = load_policy(run.path, cfg.policy.device)
        step = "final"
    else:
        ckpt = run.load_checkpoint()
        if ckpt is None:
            raise KeelError(f"{run.path} has no checkpoint yet; train it first (keel train ... --resume)")
        model, tok, _ = build_policy(cfg.policy)
        missing = model.load_state_dict(ckpt[0]["trainer"]["model"], strict=False)
        if missing.unexpected_keys:
            raise KeelError(f"{run.path}: checkpoint does not fit the policy ({missing.unexpected_keys[:3]})")
        step = ckpt[1]
    out = run_split(model, tok, cfg.env, cfg.turns, split, episodes or cfg.eval.episodes, cfg.eval.batch, seed)
    return {"split": split, "step": step, **({"overrides": list(overrides)} if overrides else {}), **out}
