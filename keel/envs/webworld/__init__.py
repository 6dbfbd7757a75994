"""WebWorld: a seeded simulated web (sites, pages, links, search, forms) as a Gymnasium text environment."""

from keel.envs.webworld.env import DEFAULT_INJECTION, WebWorldEnv
from keel.envs.webworld.site import generate_web

__all__ = ["DEFAULT_INJECTION", "WebWorldEnv", "generate_web"]
