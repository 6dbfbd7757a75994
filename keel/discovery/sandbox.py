"""Run untrusted candidate algorithm code (CFR parts or PSRO meta-solvers): an AST allow-list, then a
separate, resource-limited process.

Layer 1 (static): the source must parse, and may only contain a small set of syntax: function
definitions, arithmetic, comparisons, conditionals, loops, calls of allow-listed names and
attributes. No imports except `numpy` and `math`, no names (but `_`) or attributes starting with `_`
(which closes the `().__class__.__bases__` escapes), no `open`/`exec`/`eval`/`getattr`..., no I/O.

Layer 2 (dynamic): the code runs in a forked child with restricted builtins (no `open`, `print`,
`__import__` beyond numpy/math), stdout/stderr sent to /dev/null, and `resource.setrlimit` limits on
CPU seconds, address space, file size (0: no writes), open files (none new) and processes (no
forks); when Keel runs as root the child is also chrooted into an empty directory and drops to user
nobody, so that code which got past the AST check still sees no files and cannot fork. The parent
kills the child after a wall-clock timeout.
A candidate that fails any of this is scored as failed; the caller just moves on.

Scores are never computed where the candidate ran: the child returns only the policies (CFR: the
accumulated average-policy weights; PSRO: the meta-strategy's behaviour policy) at each mark, and the
parent, whose numpy the candidate never touched, normalises them and computes exploitability on its own
copy of the game. A candidate that patched numpy in the child (`np.ones = fake_ones`) can at most return
a bad policy, which is then scored as the bad policy it is.
"""

from __future__ import annotations

import ast
import json
import math
import multiprocessing as mp
import os
import resource
import signal
import sys
import time
from dataclasses import dataclass, field

import numpy as np

try:  # loaded now: numpy imports it lazily, which the jail forbids (numpy >= 2; numpy.core before)
    import numpy._core._methods  # noqa: F401
except ImportError:  # pragma: no cover
    import numpy.core._methods  # noqa: F401

# Imported here, not in the child: after the chroot nothing can be imported any more.
from keel.games.cfr import CFRSolver
from keel.games.exploitability import exploitability
from keel.games.meta.common import project_simplex, pure_payoffs, regret_match
from keel.games.psro import PSRO

MAX_SOURCE_CHARS = 20_000
MAX_MESSAGE_BYTES = 256 * 2**20  # the child's reply (policies as JSON)

PARTS = ("accumulate_regret", "regret_to_policy", "accumulate_policy")
META_PARTS = ("meta_solver",)
KIND_PARTS = {"cfr": PARTS, "psro": META_PARTS}

ALLOWED_NODES = (
    ast.Module,
    ast.FunctionDef,
    ast.arguments,
    ast.arg,
    ast.Return,
    ast.Assign,
    ast.AugAssign,
    ast.AnnAssign,
    ast.If,
    ast.IfExp,
    ast.For,
    ast.While,
    ast.Break,
    ast.Continue,
    ast.Pass,
    ast.Expr,
    ast.Name,
    ast.Load,
    ast.Store,
    ast.Del,
    ast.Constant,
    ast.BinOp,
    ast.UnaryOp,
    ast.BoolOp,
    ast.Compare,
    ast.Call,
    ast.keyword,
    ast.Attribute,
    ast.Subscript,
    ast.Slice,
    ast.Tuple,
    ast.List,
    ast.Dict,
    ast.ListComp,
    ast.GeneratorExp,
    ast.comprehension,
    ast.Import,
    ast.alias,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.FloorDiv,
    ast.Mod,
    ast.Pow,
    ast.USub,
    ast.UAdd,
    ast.Not,
    ast.MatMult,
    ast.And,
    ast.Or,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.BitAnd,
    ast.BitOr,
    ast.Invert,
    ast.Is,
    ast.IsNot,
    ast.In,
    ast.NotIn,
)

SAFE_BUILTINS = {
    "abs": abs,
    "min": min,
    "max": max,
    "float": float,
    "int": int,
    "bool": bool,
    "range": range,
    "len": len,
    "sum": sum,
    "round": round,
    "pow": pow,
    "enumerate": enumerate,
    "zip": zip,
    "list": list,
    "tuple": tuple,
    "dict": dict,
    "ValueError": ValueError,
}

# numpy functions, array/dict methods and Segments helpers a candidate may use. Nothing that does I/O
# (np.load, np.save, tofile, memmap), reaches into internals (ctypes, base, lib) or evaluates code.
ALLOWED_ATTRS = {
    "abs",
    "absolute",
    "sqrt",
    "exp",
    "expm1",
    "log",
    "log1p",
    "log2",
    "log10",
    "power",
    "square",
    "sign",
    "tanh",
    "maximum",
    "minimum",
    "fmax",
    "fmin",
    "clip",
    "where",
    "sum",
    "mean",
    "max",
    "min",
    "prod",
    "cumsum",
    "std",
    "var",
    "zeros_like",
    "ones_like",
    "full_like",
    "zeros",
    "ones",
    "full",
    "asarray",
    "array",
    "copy",
    "isfinite",
    "isnan",
    "nan_to_num",
    "argmax",
    "argmin",
    "dot",
    "floor",
    "ceil",
    "sin",
    "cos",
    "pi",
    "e",
    "inf",
    "size",
    "shape",
    "ndim",
    "any",
    "all",
    "get",
    "setdefault",
    "keys",
    "values",
    "items",
    "normalize",
    "float64",
    "exp2",
    "hypot",
    "reciprocal",
    "negative",
    "positive",
    "heaviside",
    "logaddexp",
    "fabs",
    "sigmoid",
    "isclose",
    "allclose",
    "append",
    "ptp",
    "sort",
    "argsort",
    "nonzero",
    "flatnonzero",
    "tensordot",
    "linspace",
    "arange",
    "dtype",
    "T",
    "reshape",
    "ravel",
    "flatten",
}

BLOCKED_NAMES = {
    "open",
    "exec",
    "eval",
    "compile",
    "getattr",
    "setattr",
    "delattr",
    "globals",
    "locals",
    "vars",
    "input",
    "breakpoint",
    "help",
    "type",
    "object",
    "super",
    "memoryview",
    "bytearray",
    "bytes",
    "classmethod",
    "staticmethod",
    "property",
    "dir",
    "id",
    "hash",
    "print",
    "exit",
    "quit",
    "os",
    "sys",
    "subprocess",
    "builtins",
    "importlib",
    "socket",
    "shutil",
    "pathlib",
    "ctypes",
    "signal",
    "resource",
}


class UnsafeCode(ValueError):
    """The candidate's source failed the static allow-list."""


def check_source(source: str, parts: tuple[str, ...] = PARTS) -> ast.Module:
    """Parse and vet candidate source; raise UnsafeCode naming the first offending construct."""
    if len(source) > MAX_SOURCE_CHARS:
        raise UnsafeCode(f"source is {len(source)} characters (limit {MAX_SOURCE_CHARS})")
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        raise UnsafeCode(f"syntax error: {e.msg} (line {e.lineno})") from None
    for stmt in tree.body:
        if (
            isinstance(stmt, ast.Expr)
            and isinstance(stmt.value, ast.Constant)
            and isinstance(stmt.value.value, str)
        ):
            continue  # docstring
        if not isinstance(stmt, (ast.FunctionDef, ast.Assign, ast.AnnAssign, ast.Import)):
            raise UnsafeCode(f"line {stmt.lineno}: only imports, functions and constants at top level")
    for node in ast.walk(tree):
        if not isinstance(node, ALLOWED_NODES):
            raise UnsafeCode(f"line {getattr(node, 'lineno', '?')}: {type(node).__name__} is not allowed")
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name not in ("numpy", "math") or (alias.asname or "np") not in ("np", "math"):
                    raise UnsafeCode(
                        f"line {node.lineno}: import {alias.name} is not allowed (numpy, math only)"
                    )
        elif isinstance(node, ast.Name):
            if (node.id.startswith("_") and node.id != "_") or node.id in BLOCKED_NAMES:
                raise UnsafeCode(f"line {node.lineno}: name {node.id!r} is not allowed")
        elif isinstance(node, ast.Attribute):
            if node.attr.startswith("_") or node.attr not in ALLOWED_ATTRS:
                raise UnsafeCode(f"line {node.lineno}: attribute .{node.attr} is not allowed")
            if not isinstance(node.ctx, ast.Load):
                # `np.ones = fake` would patch numpy for the scorer too (a forged score): no attribute of
                # anything (module, function, array) may be assigned or deleted
                raise UnsafeCode(f"line {node.lineno}: assigning to or deleting .{node.attr} is not allowed")
        elif isinstance(node, ast.FunctionDef):
            if node.name.startswith("_") or node.decorator_list:
                raise UnsafeCode(
                    f"line {node.lineno}: function {node.name!r} (or its decorators) not allowed"
                )
        elif (
            isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)) and len(node.value) > 2000
        ):
            raise UnsafeCode(f"line {node.lineno}: string constant too long")
    names = {s.name for s in tree.body if isinstance(s, ast.FunctionDef)}
    missing = [p for p in parts if p not in names]
    if missing:
        raise UnsafeCode(f"missing function(s): {', '.join(missing)}")
    return tree


def _guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
    if level == 0 and name == "numpy":
        return np
    if level == 0 and name == "math":
        return math
    # numpy's C code imports helpers lazily through the calling frame's builtins (the candidate's):
    # allow those, but only ones already loaded (nothing is read from disk, nothing new runs).
    if level == 0 and name.startswith(("numpy._core", "numpy.core")) and name in sys.modules:
        return sys.modules[name] if fromlist else np
    raise ImportError(f"import of {name!r} is not allowed")


def load_parts(source: str, check: bool = True, parts: tuple[str, ...] = PARTS):
    """Execute vetted source in a namespace with restricted builtins; return its parts."""
    from types import SimpleNamespace

    if check:
        check_source(source, parts)
    builtins = dict(SAFE_BUILTINS, __import__=_guarded_import)
    ns: dict = {
        "__builtins__": builtins,
        "np": np,
        "math": math,
        "pure_payoffs": pure_payoffs,
        "regret_match": regret_match,
        "project_simplex": project_simplex,
    }
    exec(compile(source, "<candidate>", "exec"), ns)  # noqa: S102 - vetted above, limited by the caller
    defaults = ns.get("DEFAULTS", {})
    if not isinstance(defaults, dict):
        raise UnsafeCode("DEFAULTS must be a dict")
    for p in parts:
        if not callable(ns.get(p)):
            raise UnsafeCode(f"{p} is not a function")
    return SimpleNamespace(**{p: ns[p] for p in parts}, defaults=dict(defaults))


@dataclass
class Limits:
    cpu_seconds: int = 60
    memory_mb: int = 1024
    wall_seconds: float = 120.0


@dataclass
class Result:
    ok: bool
    scores: dict = field(default_factory=dict)  # game -> {iteration: exploitability}
    error: str = ""
    seconds: float = 0.0


_JAIL: str | None = None


def _jail_dir() -> str:
    """An empty, root-owned directory to chroot candidates into (made once per process)."""
    global _JAIL
    if _JAIL is None:
        import atexit
        import tempfile

        _JAIL = tempfile.mkdtemp(prefix="keel-sandbox-")
        atexit.register(lambda: os.path.isdir(_JAIL) and os.rmdir(_JAIL))
    return _JAIL


def _apply_limits(limits: Limits, jail: str | None) -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)
    with open("/proc/self/statm") as f:
        vm_bytes = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
    if jail is not None:
        # Running as root: lock the child into an empty directory as user nobody, so even code that
        # got past the AST check can neither see files nor start processes (RLIMIT_NPROC binds non-root).
        os.chroot(jail)
        os.chdir("/")
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))
    cap = vm_bytes + limits.memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 1, highest + 1))


def _child(conn, source, trees, iters, marks, limits, check, jail, kind) -> None:
    try:
        _apply_limits(limits, jail)
        parts = load_parts(source, check=check, parts=KIND_PARTS[kind])
        policies = {}
        for tree in trees:
            if kind == "psro":
                policies[tree.spec] = _run_psro(tree, parts.meta_solver, iters, marks)
                continue
            solver = CFRSolver(tree, parts, alternating=True)
            curve = {}
            for t in range(1, iters + 1):
                solver.iteration()
                if t in marks:
                    curve[t] = np.array(solver.S, dtype=np.float64).tolist()  # raw; the parent normalises
            policies[tree.spec] = curve
        conn.send_bytes(json.dumps({"ok": True, "policies": policies}).encode())
    except BaseException as e:  # noqa: BLE001 - anything the candidate does is a failed candidate
        try:
            conn.send_bytes(json.dumps({"ok": False, "error": f"{type(e).__name__}: {str(e)[:300]}"}).encode())
        except BaseException:  # noqa: BLE001
            pass
    finally:
        os._exit(0)


def _run_psro(tree, meta_solver, iters: int, marks) -> dict:
    """PSRO (exact best responses) driven by a candidate meta-solver that must return valid mixtures."""

    def checked(M, iteration):
        mixes = [np.asarray(x, dtype=np.float64) for x in meta_solver(M, iteration)]
        if len(mixes) != M.shape[-1] or any(
            x.shape != (k,) for x, k in zip(mixes, M.shape[:-1], strict=False)
        ):
            raise ValueError("meta_solver must return one probability vector per player")
        out = []
        for x in mixes:
            x = np.where(np.isfinite(x) & (x > 0), x, 0.0)
            out.append(x / x.sum() if x.sum() > 0 else np.full(len(x), 1.0 / len(x)))
        return out

    psro, curve = PSRO(tree, checked), {}
    for t in range(1, iters + 1):
        row = psro.step()
        if t in marks:
            curve[t] = np.array(row["policy"], dtype=np.float64).tolist()
    return curve


def _score(trees: list, policies) -> dict:
    """Exploitability of each returned policy, computed here in the parent: the arrays must have the
    game's shape and finite values; `tree.normalize` turns any such weights into a valid policy."""
    by_spec = {t.spec: t for t in trees}
    if not isinstance(policies, dict) or set(policies) != set(by_spec):
        raise ValueError("the candidate returned policies for the wrong games")
    scores = {}
    for spec, curve in policies.items():
        tree = by_spec[spec]
        scores[spec] = {}
        for t, w in dict(curve).items():
            w = np.asarray(w, dtype=np.float64)  # lists of numbers from JSON, else ValueError/TypeError
            if w.shape != (tree.num_slots,):
                raise ValueError(f"a policy of the wrong shape on {spec}")
            if not np.isfinite(w).all():
                raise ValueError(f"non-finite policy weights on {spec} at iteration {t}")
            e = exploitability(tree, tree.normalize(w))
            if not np.isfinite(e):
                raise ValueError(f"exploitability is {e} on {spec}")
            scores[spec][int(t)] = float(e)
    return scores


def evaluate(
    source: str,
    trees: list,
    iters: int,
    marks: list[int] | None = None,
    limits: Limits | None = None,
    check: bool = True,
    kind: str = "cfr",
) -> Result:
    """Run the candidate for `iters` iterations on each tree, in a limited child process.

    kind "cfr": a CFR variant (three parts), exploitability of its average policy; kind "psro": a
    meta-solver, exploitability of PSRO's meta-strategy after each of `iters` PSRO iterations.
    Returns exploitability at each of `marks` (default: the last iteration)."""
    limits = limits or Limits()
    t0 = time.monotonic()
    if check:
        try:
            check_source(source, KIND_PARTS[kind])
        except UnsafeCode as e:
            return Result(False, error=f"rejected: {e}", seconds=time.monotonic() - t0)
    jail = _jail_dir() if os.geteuid() == 0 else None
    ctx = mp.get_context("fork")
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    proc = ctx.Process(
        target=_child,
        args=(child_conn, source, trees, iters, set(marks or [iters]), limits, check, jail, kind),
    )
    proc.start()
    child_conn.close()
    msg = None
    try:
        if parent_conn.poll(limits.wall_seconds):
            # bytes and JSON, never pickle: unpickling what the candidate's process sent would run its code here
            msg = json.loads(parent_conn.recv_bytes(MAX_MESSAGE_BYTES))
    except (EOFError, OSError, ValueError):
        msg = None
    finally:
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGKILL)
        proc.join(5)
        parent_conn.close()
    dt = time.monotonic() - t0
    if msg is None:
        code = proc.exitcode
        why = (
            "wall-clock timeout"
            if dt >= limits.wall_seconds
            else f"killed (exit {code}: cpu or memory limit)"
        )
        return Result(False, error=why, seconds=dt)
    if not isinstance(msg, dict) or not msg.get("ok"):
        return Result(False, error=str(msg.get("error") if isinstance(msg, dict) else msg)[:400], seconds=dt)
    try:
        scores = _score(trees, msg.get("policies"))
    except (ValueError, TypeError) as e:
        return Result(False, error=f"{type(e).__name__}: {e}"[:400], seconds=time.monotonic() - t0)
    return Result(True, scores=scores, seconds=time.monotonic() - t0)
