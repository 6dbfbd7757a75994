"""Configs: pydantic models that refuse unknown or ill-typed fields, loaded from YAML presets or files.

`keel train quickstart` reads `keel/presets/quickstart.yaml`; `keel train my.yaml` reads a file. The
YAML's `kind` picks the job (see `keel.jobs`), whose `Config` model validates the rest.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from keel.errors import KeelError


class KeelModel(BaseModel):
    """Base of every Keel config: unknown fields are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class JobConfig(KeelModel):
    """Fields every training job has."""

    kind: str
    seed: int = 0
    runs_dir: str = "runs"


def preset_names() -> list[str]:
    folder = resources.files("keel") / "presets"
    return sorted(p.name.rsplit(".", 1)[0] for p in folder.iterdir() if p.name.endswith(".yaml"))


def read_yaml(text: str, origin: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise KeelError(f"{origin}: invalid YAML{where}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise KeelError(f"{origin}: a config must be a mapping of field: value, got {type(data).__name__}")
    return data


def load_raw(source: str) -> tuple[dict[str, Any], str]:
    """The YAML mapping behind a preset name or a file path, and a short name for it."""
    path = Path(source)
    if source.endswith((".yaml", ".yml")) or path.is_file():
        if not path.is_file():
            raise KeelError(f"config file not found: {source}")
        return read_yaml(path.read_text(), str(path)), path.stem
    names = preset_names()
    if source not in names:
        raise KeelError(
            f"unknown preset {source!r}; presets: {', '.join(names)} (or give the path of a .yaml file)"
        )
    text = (resources.files("keel") / "presets" / f"{source}.yaml").read_text()
    return read_yaml(text, f"preset {source}"), source


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """`key.sub=value` overrides from the command line; values are parsed as YAML scalars."""
    for item in overrides:
        if "=" not in item:
            raise KeelError(f"override {item!r} must look like field=value (e.g. seed=3, ppo.lr=0.001)")
        key, value = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise KeelError(f"override {item!r}: {part} is not a section")
        node[parts[-1]] = yaml.safe_load(value)
    return data


def format_validation_error(e: ValidationError, origin: str) -> str:
    lines = [f"{origin}: invalid config"]
    for err in e.errors():
        field = ".".join(str(x) for x in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            lines.append(f"  {field}: unknown field (remove it or check its spelling)")
        else:
            got = err.get("input")
            got_s = f" (got {got!r})" if got is not None and not isinstance(got, dict) else ""
            lines.append(f"  {field}: {err['msg']}{got_s}")
    return "\n".join(lines)


def validate(model: type[BaseModel], data: dict[str, Any], origin: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise KeelError(format_validation_error(e, origin)) from None


def load_job_config(source: str, overrides: list[str] | None = None) -> tuple[JobConfig, str]:
    """A validated job config and the short name of where it came from."""
    from keel.jobs import job_module

    data, name = load_raw(source)
    data = apply_overrides(data, list(overrides or []))
    if "kind" not in data:
        raise KeelError(f"{source}: the config has no `kind` field; say which job it is (e.g. kind: spec_rl)")
    module = job_module(str(data["kind"]))
    return validate(module.Config, data, source), name
