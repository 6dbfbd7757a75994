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


MAX_YAML_NODES = 200_000  # values in a YAML document once aliases are expanded (configs have hundreds)
MAX_YAML_BYTES = 10_000_000


def parse_yaml(text: str, origin: str) -> tuple[Any, yaml.Node | None]:
    """The one safe YAML reader for everything a user hands Keel (configs, policies, --set values): the
    data and its node tree (for line numbers). Safe tags only; an alias bomb (a few lines that expand to
    billions of values), a self-referring alias, or nesting deeper than Python's recursion is one
    KeelError naming `origin` and the line, instead of a hang, a MemoryError or a traceback."""
    if len(text) > MAX_YAML_BYTES:
        raise KeelError(f"{origin}: {len(text):,} characters of YAML, over the limit of {MAX_YAML_BYTES:,}")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _check_expanded_size(node, origin)
        return loader.construct_document(node), node
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise KeelError(f"{origin}: invalid YAML{where}: {problem}") from None
    except RecursionError:
        raise KeelError(f"{origin}: YAML nested too deeply; flatten it") from None
    finally:
        loader.dispose()


def load_yaml(text: str, origin: str) -> Any:
    """`parse_yaml` without the node tree: any YAML value, read safely."""
    return parse_yaml(text, origin)[0]


def _check_expanded_size(root: yaml.Node, origin: str) -> None:
    """Count the values the document holds with every alias expanded (memoised per node, iteratively, so
    it costs the size of the file, not of the expansion), and refuse a cycle or a total over the limit."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        kids = [x for pair in node.value for x in pair] if isinstance(node, yaml.MappingNode) else \
            node.value if isinstance(node, yaml.SequenceNode) else []
        if finished:
            on_path.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(k)] for k in kids)
            if sizes[id(node)] > MAX_YAML_NODES:
                line = node.start_mark.line + 1
                raise KeelError(f"{origin}: line {line} expands (through aliases) to more than "
                                f"{MAX_YAML_NODES:,} values; write the data out or use fewer aliases")
            continue
        if id(node) in sizes:
            continue
        on_path.add(id(node))
        stack.append((node, True))
        for k in kids:
            if id(k) in on_path:
                raise KeelError(f"{origin}: line {k.start_mark.line + 1}: an alias refers to itself "
                                "(a YAML value cannot contain itself)")
            if id(k) not in sizes:
                stack.append((k, False))


def read_text_file(path: str | Path, what: str = "file", max_bytes: int = MAX_YAML_BYTES) -> str:
    """A user's text file (config, policy, import...) as UTF-8 text, or a KeelError that says why not:
    missing, a folder, unreadable, too big, binary or another encoding."""
    p = Path(path)
    if p.is_dir():
        raise KeelError(f"{what} {p} is a folder; give the path of a file")
    if not p.is_file():
        raise KeelError(f"{what} not found: {p}")
    try:
        size = p.stat().st_size
        if size > max_bytes:
            raise KeelError(f"{what} {p} is {size:,} bytes, over the limit of {max_bytes:,}")
        data = p.read_bytes()
    except OSError as e:
        raise KeelError(f"cannot read {what} {p}: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise KeelError(f"{what} {p} is not UTF-8 text (undecodable byte at offset {e.start}); "
                        "is it the right file?") from None
    if "\x00" in text:
        raise KeelError(f"{what} {p} holds NUL bytes (a binary file?); give a text file")
    return text


def read_yaml(text: str, origin: str) -> dict[str, Any]:
    data = load_yaml(text, origin)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise KeelError(f"{origin}: a config must be a mapping of field: value, got {type(data).__name__}")
    return data


def load_raw(source: str) -> tuple[dict[str, Any], str]:
    """The YAML mapping behind a preset name or a file path, and a short name for it."""
    path = Path(source)
    if source.endswith((".yaml", ".yml")) or path.is_file():
        return read_yaml(read_text_file(path, "config file"), str(path)), path.stem
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
        if not all(parts):
            raise KeelError(f"override {item!r}: the field name is empty (e.g. --set ppo.lr=0.001)")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise KeelError(f"override {item!r}: {part} is not a section")
        node[parts[-1]] = load_yaml(value, f"--set {item}")
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
