"""A program-level mutator that needs no model: AST edits of one of the three CFR parts.

The operators are the moves a person makes when designing a CFR variant by hand (Brown & Sandholm
2019 explored exactly this space): perturb a constant, swap an operator or a numpy function,
insert a discount term on the regrets or a t^gamma weight on the average, add an optimistic
(predictive) term to the policy, remove a term, and crossover (take a part from another program).
Each edit is applied to the parsed tree and unparsed, so the result is always syntactically valid;
the sandbox decides whether it runs and how well.
"""

from __future__ import annotations

import ast
import copy
import random

from keel.discovery.sandbox import PARTS, UnsafeCode, check_source

OPERATORS = [
    "perturb_constant",
    "swap_operator",
    "swap_function",
    "insert_discount",
    "insert_average_weight",
    "insert_optimism",
    "remove_term",
    "crossover",
]

_BINOP_SWAPS = {
    ast.Add: [ast.Sub, ast.Mult],
    ast.Sub: [ast.Add],
    ast.Mult: [ast.Div, ast.Add, ast.Pow],
    ast.Div: [ast.Mult],
    ast.Pow: [ast.Mult],
}
_FUNC_SWAPS = {
    "maximum": ["minimum", "fmax"],
    "minimum": ["maximum"],
    "sqrt": ["log1p", "square"],
    "square": ["sqrt", "abs"],
    "abs": ["square"],
    "log1p": ["sqrt"],
    "exp": ["expm1"],
}


def _functions(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    return {s.name: s for s in tree.body if isinstance(s, ast.FunctionDef)}


def _returns(fn: ast.FunctionDef) -> list[ast.Return]:
    return [n for n in ast.walk(fn) if isinstance(n, ast.Return) and n.value is not None]


def _wrap_return(fn: ast.FunctionDef, make) -> bool:
    rets = _returns(fn)
    if not rets:
        return False
    ret = rets[-1]
    ret.value = make(ret.value)
    return True


def _expr(src: str) -> ast.expr:
    return ast.parse(src, mode="eval").body


def _replace_first_load(fn: ast.FunctionDef, name: str, src: str) -> bool:
    """Replace the first read of `name` in `fn` with the expression `src`; False if `name` is never read."""

    class First(ast.NodeTransformer):
        done = False

        def visit_Name(self, node):
            if node.id == name and isinstance(node.ctx, ast.Load) and not self.done:
                self.done = True
                return _expr(src)
            return node

    first = First()
    first.visit(fn)
    return first.done


class ProgramMutator:
    """`mutate(code, other_code) -> (new_code, description)`; seeded, deterministic for a seed."""

    def __init__(self, seed: int = 0, operators: list[str] | None = None, parts: tuple[str, ...] = PARTS):
        self.rng = random.Random(seed)
        self.operators = operators or OPERATORS
        self.parts = parts  # the functions that may be edited (PARTS for CFR, META_PARTS for PSRO)

    def mutate(self, code: str, other: str | None = None, tries: int = 30) -> tuple[str, str]:
        last = "no applicable edit"
        for _ in range(tries):
            op = self.rng.choice(self.operators)
            if op == "crossover" and other is None:
                continue
            tree = ast.parse(code)
            part = self.rng.choice(self.parts)
            try:
                desc = getattr(self, "_" + op)(tree, part, other)
            except (IndexError, KeyError, ValueError):
                desc = None
            if not desc:
                continue
            ast.fix_missing_locations(tree)
            new = ast.unparse(tree)
            if new.strip() == ast.unparse(ast.parse(code)).strip():
                continue
            try:
                check_source(new, self.parts)
            except UnsafeCode as e:
                last = str(e)
                continue
            return new + "\n", f"{op}: {desc}"
        raise ValueError(f"could not mutate the program ({last})")

    # -- operators: each edits `tree` in place and returns a description, or None if not applicable
    def _perturb_constant(self, tree, part, other):
        consts = [
            n
            for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and type(n.value) in (int, float) and not isinstance(n.value, bool)
        ]
        if not consts:
            return None
        node = self.rng.choice(consts)
        old = node.value
        if old == 0:
            new = self.rng.choice([0.1, 0.5, 1.0, -0.5])
        else:
            new = old * self.rng.choice([0.5, 0.75, 0.9, 1.1, 1.25, 1.5, 2.0])
            if self.rng.random() < 0.2:
                new = -new
        node.value = round(float(new), 4)
        return f"constant {old} -> {node.value}"

    def _swap_operator(self, tree, part, other):
        fn = _functions(tree)[part]
        ops = [n for n in ast.walk(fn) if isinstance(n, ast.BinOp) and type(n.op) in _BINOP_SWAPS]
        if not ops:
            return None
        node = self.rng.choice(ops)
        new = self.rng.choice(_BINOP_SWAPS[type(node.op)])
        old = type(node.op).__name__
        node.op = new()
        return f"{part}: {old} -> {new.__name__}"

    def _swap_function(self, tree, part, other):
        fn = _functions(tree)[part]
        calls = [n for n in ast.walk(fn) if isinstance(n, ast.Attribute) and n.attr in _FUNC_SWAPS]
        if not calls:
            return None
        node = self.rng.choice(calls)
        old, node.attr = node.attr, self.rng.choice(_FUNC_SWAPS[node.attr])
        return f"{part}: np.{old} -> np.{node.attr}"

    def _insert_discount(self, tree, part, other):
        fn = _functions(tree)["accumulate_regret"]
        a = self.rng.choice([0.5, 1.0, 1.5, 2.0, 3.0])
        kind = self.rng.choice(["all", "positive", "negative"])
        template = {
            "all": f"(X) * (t ** {a} / (t ** {a} + 1.0))",
            "positive": f"np.where((X) > 0, (X) * (t ** {a} / (t ** {a} + 1.0)), X)",
            "negative": f"np.where((X) < 0, (X) * {round(a / 4, 3)}, X)",
        }[kind]

        def make(v):
            return _expr(template.replace("X", ast.unparse(v)))

        return _wrap_return(fn, make) and f"accumulate_regret: {kind} discount t^{a}/(t^{a}+1)"

    def _insert_average_weight(self, tree, part, other):
        fn = _functions(tree)["accumulate_policy"]
        g = self.rng.choice([0.5, 1.0, 2.0, 3.0])
        args = [a.arg for a in fn.args.args]
        if len(args) < 3:
            return None
        c_name, t_name = args[1], args[2]
        done = _replace_first_load(fn, c_name, f"({t_name} ** {g}) * {c_name}")
        return done and f"accumulate_policy: weight t^{g} on the new policy"

    def _insert_optimism(self, tree, part, other):
        fn = _functions(tree)["regret_to_policy"]
        args = [a.arg for a in fn.args.args]
        if len(args) < 2:
            return None
        R, r = args[0], args[1]
        k = self.rng.choice([0.5, 1.0, 1.5, 2.0])
        done = _replace_first_load(fn, R, f"({R} + {k} * {r})")
        return done and f"regret_to_policy: optimistic term {k} * r"

    def _remove_term(self, tree, part, other):
        fn = _functions(tree)[part]
        parents = [(p, f) for p in ast.walk(fn) for f, v in ast.iter_fields(p) if isinstance(v, ast.BinOp)]
        if not parents:
            return None
        p, f = self.rng.choice(parents)
        node = getattr(p, f)
        side = self.rng.choice(["left", "right"])
        setattr(p, f, getattr(node, side))
        return f"{part}: drop {side == 'left' and 'right' or 'left'} operand of {type(node.op).__name__}"

    def _crossover(self, tree, part, other):
        other_tree = ast.parse(other)
        donor = _functions(other_tree).get(part)
        if donor is None:
            return None
        for i, s in enumerate(tree.body):
            if isinstance(s, ast.FunctionDef) and s.name == part:
                tree.body[i] = copy.deepcopy(donor)
        # Bring over the donor's constants and helpers that this program lacks.
        mine = {s.name for s in tree.body if isinstance(s, ast.FunctionDef)}
        for s in other_tree.body:
            if isinstance(s, ast.FunctionDef) and s.name not in mine:
                tree.body.insert(0, copy.deepcopy(s))
        _merge_defaults(tree, other_tree)
        return f"crossover: {part} from the other parent"


def _defaults_dict(tree) -> ast.Dict | None:
    for s in tree.body:
        target = s.targets[0] if isinstance(s, ast.Assign) else getattr(s, "target", None)
        if isinstance(target, ast.Name) and target.id == "DEFAULTS" and isinstance(s.value, ast.Dict):
            return s.value
    return None


def _merge_defaults(tree, other_tree) -> None:
    theirs = _defaults_dict(other_tree)
    if theirs is None:
        return
    mine = _defaults_dict(tree)
    if mine is None:
        tree.body.insert(
            0, ast.Assign(targets=[ast.Name("DEFAULTS", ast.Store())], value=copy.deepcopy(theirs))
        )
        return
    have = {k.value for k in mine.keys if isinstance(k, ast.Constant)}
    for k, v in zip(theirs.keys, theirs.values, strict=True):
        if isinstance(k, ast.Constant) and k.value not in have:
            mine.keys.append(copy.deepcopy(k))
            mine.values.append(copy.deepcopy(v))
