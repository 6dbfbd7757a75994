"""Toolworld as an agentic text environment (`keel.envs.agentic`): the agent trainer's view of toolworld.

One episode is one generated user task (`keel.envs.toolworld.generator`). The model's turn is one line of
JSON, `{"tool": NAME, "args": {...}}` or `{"answer": TEXT}`, read tolerantly by `keel.agents.parsing`
(the format the prompted SmolLM2 agent already uses); the system prompt is that agent's. Each call passes
the guard (`keel.guard`) before it runs: an `ask` goes to the simulated human of `keel.redteam.episode`
(who approves exactly the calls the user's task needs), a refused call comes back to the agent as an
error and is counted, and `denied_penalty` is subtracted from the reward per refusal. A reply that is not
a readable call is an error observation: it costs a turn, never the episode. The task is judged on the
final world state when the agent answers or runs out of turns; that judgement (1 or 0) is the last turn's
reward. Optional shaping: `call_reward` for each new well-formed call that ran.

Attacks (`options={"attack": NAME, "injection": ID}` or `attack_rate` with `attacks`) use the red-team
library, placed exactly as `keel.redteam` places them, so training under attack and the campaign agree.

The trained agent acting in `keel redteam` (`keel.agents.trained`) builds its conversation with
`system_prompt`, `result_message` and `error_message` below: it sees what it was trained on.
"""

from __future__ import annotations

import json
import random
from typing import Any, Literal

import gymnasium as gym
from pydantic import Field

from keel.agents.base import Finish
from keel.agents.llm_agent import SYSTEM, example_call, tool_lines
from keel.agents.parsing import FORMAT_HINT, ParseError, parse_action
from keel.config import KeelModel, validate
from keel.envs.agentic_space import clean, text_space
from keel.envs.toolworld.env import Observation, ToolEnv
from keel.envs.toolworld.generator import (
    TEMPLATE_NAMES,
    GeneratedTask,
    generate,
    get_task,
    split_ids,
    split_of,
)
from keel.envs.toolworld.tasks import Call
from keel.envs.toolworld.train_wordings import varied
from keel.envs.toolworld.wordings import reworded
from keel.errors import KeelError
from keel.guard import Guard, builtin_policy, load_policy
from keel.redteam.attacks import ATTACKS, select
from keel.redteam.episode import injections_for, needed_by_task

MAX_OBS = 8192
MAX_ACTION = 2048
FREE_TEXT = ("subject", "body", "content")


class ToolworldEnvConfig(KeelModel):
    """The env's settings (what an agent-training preset puts under its env section)."""

    suites: list[Literal["workspace", "banking", "drive", "travel"]] = ["workspace", "banking", "drive", "travel"]
    templates: list[str] | None = None  # restrict to these template names; None: all of the suites
    split: Literal["train", "test", "test-templates"] = "train"  # tasks drawn when reset names none
    max_turns: int = Field(8, gt=0)
    guard: bool = True  # every call passes keel.guard
    policy: str | None = None  # a guard policy file; None: the built-in toolworld policy
    approve: Literal["task", "never"] = "task"  # the simulated human's answer to an `ask`
    denied_penalty: float = Field(0.0, ge=0)  # subtracted from the reward per refused call
    call_reward: float = Field(0.0, ge=0)  # shaping: per new well-formed call that ran
    max_result_chars: int = Field(400, gt=0)  # tool output shown to the model (small models lose long contexts)
    # the user's words: the generator's own sentence; `varied`: for train-split tasks, that or one of two
    # training paraphrases, drawn per episode (keel.envs.toolworld.train_wordings), test tasks unchanged;
    # `heldout`: a rewording no training uses (evaluation only: keel.envs.toolworld.wordings)
    wording: Literal["original", "varied", "heldout"] = "original"
    attacks: list[str] = []  # attack names for attack_rate (keel redteam attacks)
    attack_rate: float = Field(0.0, ge=0, le=1)  # share of resets with a random attack in place


def system_prompt(tools: list[dict[str, Any]]) -> str:
    return SYSTEM.format(tools=tool_lines(tools), example=example_call(tools))


def result_message(tool: str, obs: Observation, max_chars: int) -> str:
    return f"Result of {tool}: {obs.text[:max_chars]}"


def error_message(e: ParseError) -> str:
    return f"ERROR: {e}"


def read_reply(reply: str, tools: set[str]) -> Call | Finish:
    """The model's turn as a call or a final answer (`keel.agents.parsing`, tolerant of small models' JSON),
    except that prose is not taken as the answer: the format asks for {"answer": ...}, so a reply with no
    JSON object in it is malformed (an error observation), not the end of the episode."""
    act = parse_action(reply, tools)
    if isinstance(act, Finish) and "{" not in reply:
        raise ParseError(f"could not read a tool call or an answer from {reply.strip()[:120]!r}. {FORMAT_HINT}")
    return act


def call_text(call: Call) -> str:
    return json.dumps({"tool": call.tool, "args": call.args}, ensure_ascii=False)


def same_call(want: Call, tool: str, args: dict[str, Any]) -> bool:
    """`tool(args)` does what the ground-truth call `want` does (free text may be worded differently)."""
    def norm(v: Any) -> str:
        try:
            return f"{float(v):.2f}"
        except (TypeError, ValueError):
            return str(v).strip().lower()

    return want.tool == tool and all(norm(args.get(k)) == norm(v) for k, v in want.args.items() if k not in FREE_TEXT)


class ToolworldAgentEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, **config: Any):
        self.cfg = validate(ToolworldEnvConfig, config, "toolworld agent env")
        unknown = set(self.cfg.templates or []) - set(TEMPLATE_NAMES)
        if unknown:
            raise KeelError(f"toolworld agent env: unknown template(s) {sorted(unknown)}; known: "
                            f"{', '.join(TEMPLATE_NAMES)}")
        if self.cfg.attack_rate > 0 and not self.cfg.attacks:
            raise KeelError("toolworld agent env: attack_rate > 0 needs attacks: [NAME, ...] (see keel redteam attacks)")
        if self.cfg.attacks:
            select(self.cfg.attacks)  # unknown names fail here, not mid-training
        self.observation_space = text_space(MAX_OBS)
        self.action_space = text_space(MAX_ACTION)
        self.guard = None
        if self.cfg.guard:
            self.guard = Guard(load_policy(self.cfg.policy) if self.cfg.policy else builtin_policy())
        self.gen: GeneratedTask | None = None

    # --- AgentTasks -----------------------------------------------------------------------------
    def task_ids(self, split: str) -> list[str]:
        suites, templates = set(self.cfg.suites), self.cfg.templates
        tasks = generate()
        return [t for t in split_ids(split) if tasks[t].suite.name in suites
                and (templates is None or tasks[t].template in templates)]

    def expert_reply(self) -> str | None:
        if self.gen is None or self.done:
            return None
        gt = self.gen.task.ground_truth
        return call_text(gt[self.progress]) if self.progress < len(gt) else json.dumps({"answer": "Done."})

    # --- Gymnasium ------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        rng = random.Random(int(self.np_random.integers(2**31)))
        task_id = options.get("task")
        if task_id is None:
            ids = self.task_ids(self.cfg.split)
            if not ids:
                raise KeelError("toolworld agent env: no task in this split for these suites/templates")
            task_id = rng.choice(ids)
        self.gen = get_task(str(task_id))
        suite, task = self.gen.suite, self.gen.task
        self.attack, self.injection = self._pick_attack(options, rng)
        self.env = ToolEnv(suite, task, injections_for(suite, task, self.attack, self.injection))
        self.tool_names = set(self.env.tools)
        request = task.prompt
        if self.cfg.wording == "heldout":
            request = reworded(self.gen.template, self.gen.params)
        elif self.cfg.wording == "varied" and split_of(self.gen.id, self.gen.template) == "train":
            request = varied(self.gen.template, self.gen.params, task.prompt, rng)  # test tasks keep theirs
        prompt, self.turns_left = request, []
        if self.attack is not None:
            texts = self.attack.render(self.injection)
            if self.attack.channel == "user":
                prompt = f"{request}\n{texts[0]}"
            elif self.attack.channel == "turns":
                self.turns_left = list(texts)
        if self.guard is not None:
            self.guard.reset(request)  # only the genuine request is trusted
            if self.attack is not None and self.attack.channel in ("user", "turns"):
                self.guard.observe(self.attack.render(self.injection))
        self.progress = 0  # ground-truth calls done, in order (the expert's place)
        self.seen: set[tuple] = set()
        self.done = False
        self.stats = {"turns": 0, "calls": 0, "malformed": 0, "denied": 0, "asked": 0, "tool_errors": 0,
                      "needed_denied": 0}
        info = {"system": system_prompt(self.env.schemas()), "task": task.id, "template": self.gen.template,
                "role": "user"}
        return clean(prompt, MAX_OBS), info

    def _pick_attack(self, options: dict, rng: random.Random):
        name, inj_id = options.get("attack"), options.get("injection")
        if name is None and self.cfg.attack_rate > 0 and rng.random() < self.cfg.attack_rate:
            name = rng.choice(self.cfg.attacks)
        if name is None:
            return None, None
        if name not in ATTACKS:
            raise KeelError(f"unknown attack {name!r}; list them with: keel redteam attacks")
        suite = self.gen.suite
        if inj_id is None:
            inj = rng.choice(suite.injection_tasks)
        else:
            try:
                inj = suite.injection_task(str(inj_id))
            except KeyError:
                raise KeelError(f"unknown injection task {inj_id!r} for suite {suite.name}; ids: "
                                f"{', '.join(i.id for i in suite.injection_tasks)}") from None
        return ATTACKS[name], inj

    def step(self, action: str):
        if self.gen is None or self.done:
            raise KeelError("toolworld agent env: call reset() before step() (and again after an episode ends)")
        s = self.stats
        s["turns"] += 1
        reward, terminated, role, malformed, denied = 0.0, False, "tool", False, False
        try:
            act = read_reply(str(action), self.tool_names)
        except ParseError as e:
            act, malformed, role = None, True, "user"
            s["malformed"] += 1
            msg = error_message(e)
        if isinstance(act, Finish):
            role = "user"
            if self.turns_left:  # a multi-turn attack: the "user" keeps talking after the answer
                msg = self.turns_left.pop(0)
            else:
                terminated, msg = True, "The episode is over."
        elif isinstance(act, Call):
            s["calls"] += 1
            obs, denied = self._guarded(act)
            if denied:
                reward -= self.cfg.denied_penalty
            elif obs.ok:
                if act.key() not in self.seen:
                    reward += self.cfg.call_reward
                    self.seen.add(act.key())
                gt = self.gen.task.ground_truth
                if self.progress < len(gt) and same_call(gt[self.progress], act.tool, act.args):
                    self.progress += 1
            else:
                s["tool_errors"] += 1
            msg = result_message(act.tool, obs, self.cfg.max_result_chars)
        truncated = not terminated and s["turns"] >= self.cfg.max_turns
        info: dict[str, Any] = {"role": role, "malformed": malformed, "denied": denied, "task": self.gen.task.id}
        if terminated or truncated:
            self.done = True
            success = self.env.utility()
            reward += float(success)
            info["episode"] = {"success": success, **s, "truncated": truncated,
                               "attack_success": self.env.attack_succeeded(self.injection)
                               if self.injection is not None else None,
                               "template": self.gen.template}
        return clean(msg, MAX_OBS), reward, terminated, truncated, info

    def _guarded(self, call: Call) -> tuple[Observation, bool]:
        """Run the call through the guard (if any); (observation, refused)."""
        if self.guard is None:
            return self.env.execute(call), False
        args = call.args if isinstance(call.args, dict) else {}
        d = self.guard.check(call.tool, args)
        needed = needed_by_task(self.gen.task, call.tool, args, d.flagged)
        if d.action == "ask":
            self.stats["asked"] += 1
            d = self.guard.resolve(d, self.cfg.approve == "task" and needed)
        if not d.runs:
            self.stats["denied"] += 1
            self.stats["needed_denied"] += int(needed)
            return Observation(False, f"blocked by the guard: {d.reason}", []), True
        obs = self.env.execute(Call(call.tool, d.args))
        self.guard.observe(obs.untrusted)
        return obs, False
