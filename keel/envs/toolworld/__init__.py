"""Toolworld: stateful simulated apps (mail, calendar, files, bank, hotels, web) with JSON-schema tools,
user tasks and injection tasks judged on state (after AgentDojo, Debenedetti et al. 2024)."""

from keel.envs.toolworld.env import Observation, ToolEnv
from keel.envs.toolworld.suites import SUITES
from keel.envs.toolworld.tasks import ATTACKER_EMAIL, ATTACKER_IBAN, Call, InjectionTask, Suite, UserTask
from keel.envs.toolworld.world import TOOLS, Tool, ToolError, World

__all__ = ["ATTACKER_EMAIL", "ATTACKER_IBAN", "Call", "InjectionTask", "Observation", "SUITES", "Suite", "TOOLS",
           "Tool", "ToolEnv", "ToolError", "UserTask", "World"]
