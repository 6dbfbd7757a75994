"""The sandbox: good candidates score exactly like the engine; hostile ones are all contained."""

import inspect
import os
from pathlib import Path

import pytest

from keel.discovery.sandbox import Limits, UnsafeCode, check_source, evaluate
from keel.games import algorithms
from keel.games.cfr import solve
from keel.games.tree import GameTree

LIMITS = Limits(cpu_seconds=1, memory_mb=256, wall_seconds=20)
PWNED = Path("/tmp/keel-test-pwned")
REST = (
    "def regret_to_policy(R, r, t, mem, seg):\n    return np.maximum(R, 0)\n"
    "def accumulate_policy(S, c, t, mem, seg):\n    return S + c\n"
)
HEAD = "def accumulate_regret(R, r, t, mem, seg):\n"

HOSTILE = {
    "infinite loop": HEAD + "    while True:\n        pass\n",
    "memory bomb": HEAD + "    x = [0] * (10 ** 11)\n    return R\n",
    "numpy memory bomb": HEAD + "    return R + np.ones((10 ** 6, 10 ** 6)).sum()\n",
    "open file": HEAD + f"    open('{PWNED}', 'w').write('x')\n    return R\n",
    "import os": f"import os\n{HEAD}    os.system('touch {PWNED}')\n    return R\n",
    "dunder escape": HEAD + "    for c in ().__class__.__bases__[0].__subclasses__():\n"
    "        if c.__name__ == '_wrap_close':\n"
    f"            rc = c.__init__.__globals__['system']('touch {PWNED}')\n"
    "            R = R + 1 / (rc == 0)\n    return R\n",
    "builtins escape": HEAD
    + f"    accumulate_regret.__globals__['__builtins__']['open']('{PWNED}', 'w')\n    return R\n",
    "fork bomb": HEAD + "    f = __import__('os').fork\n    while True:\n        f()\n",
    "huge output": HEAD + "    print('x' * 10 ** 9)\n    return R\n",
    "huge string": HEAD + "    s = 'x' * (10 ** 12)\n    return R\n",
}


@pytest.fixture(scope="module")
def kuhn():
    return GameTree.build("kuhn_poker")


def test_seed_programs_score_like_the_engine(kuhn):
    for name in ["cfr_plus", "vad_cfr"]:
        res = evaluate(inspect.getsource(algorithms.get(name)), [kuhn], 50, [10, 50], LIMITS)
        assert res.ok, res.error
        assert res.scores["kuhn_poker"][50] == pytest.approx(
            solve(kuhn, name, 50)["exploitability"], rel=1e-12
        )


@pytest.mark.parametrize("name", list(HOSTILE))
@pytest.mark.parametrize("ast_layer", [True, False], ids=["ast+process", "process-only"])
def test_hostile_candidates_are_contained(kuhn, name, ast_layer):
    if PWNED.exists():
        PWNED.unlink()
    res = evaluate(HOSTILE[name] + REST, [kuhn], 5, limits=LIMITS, check=ast_layer)
    assert not res.ok and res.error
    assert not PWNED.exists()
    if ast_layer and name not in ("infinite loop", "memory bomb", "numpy memory bomb", "huge string"):
        assert res.error.startswith("rejected:")
    # and the search goes on: the next candidate is evaluated normally
    assert evaluate(inspect.getsource(algorithms.get("cfr")), [kuhn], 3, limits=LIMITS).ok


def test_process_layer_kills_on_cpu_and_wall_clock(kuhn):
    res = evaluate(HOSTILE["infinite loop"] + REST, [kuhn], 5, limits=Limits(1, 256, 30))
    assert "killed" in res.error or "timeout" in res.error
    res = evaluate(HOSTILE["infinite loop"] + REST, [kuhn], 5, limits=Limits(60, 256, 1.5))
    assert res.error == "wall-clock timeout" and res.seconds < 10


@pytest.mark.parametrize(
    "src, needle",
    [
        ("import numpy.linalg as la\n", "import numpy.linalg"),
        ("from os import path\n", "only imports"),
        ("x = lambda: 0\n", "Lambda"),
        ("class A:\n    pass\n", "only imports, functions"),
        ("def f():\n    return np.load('x')\n", ".load"),
        ("def f():\n    return eval('1')\n", "'eval'"),
        ("def f():\n    try:\n        pass\n    except Exception:\n        pass\n", "Try"),
        ("def accumulate_regret(R):\n    return R\n", "missing function"),
        ("def f(:\n", "syntax error"),
    ],
)
def test_static_check_names_the_offence(src, needle):
    with pytest.raises(UnsafeCode, match=needle.replace(".", r"\.").replace("(", r"\(")):
        check_source(src + REST + HEAD + "    return R\n" if "missing" not in needle else src)


def test_sandbox_leaves_the_parent_alone(kuhn):
    before = os.getpid(), Path.cwd()
    evaluate(HOSTILE["dunder escape"] + REST, [kuhn], 3, limits=LIMITS, check=False)
    assert (os.getpid(), Path.cwd()) == before


# Forgeries: a candidate that makes the scorer lie instead of playing well. The uniform policy scores
# about 0.458 on Kuhn; each forgery tries to report much less.
UNIFORM = (
    "def accumulate_regret(R, r, t, mem, seg):\n    return R\n"
    "def regret_to_policy(R, r, t, mem, seg):\n    return np.ones_like(R)\n"
    "def accumulate_policy(S, c, t, mem, seg):\n    return np.ones_like(S)\n"
)
FORGERIES = {
    "np.ones at top level": "import numpy as np\ndef fake_ones(shape):\n    return np.zeros(shape)\nnp.ones = fake_ones\n" + UNIFORM,
    "np.sum inside a part": UNIFORM.replace("    return R\n", "    np.sum = np.mean\n    np.maximum = np.minimum\n"
                                            "    return R\n", 1),
    "augmented store on math": "def accumulate_regret(R, r, t, mem, seg):\n    math.inf -= 1\n    return R\n"
    + UNIFORM.split("\n", 2)[2],
    "delete a numpy function": "def accumulate_regret(R, r, t, mem, seg):\n    del np.where\n    return R\n"
    + UNIFORM.split("\n", 2)[2],
    "negative and NaN weights": UNIFORM.replace("return np.ones_like(S)", "return S - c * 1e9 + float('nan') * (t > 3)"),
}


@pytest.fixture(scope="module")
def uniform_score(kuhn):
    from keel.games.exploitability import exploitability

    return exploitability(kuhn, kuhn.uniform_policy())


@pytest.mark.parametrize("name", list(FORGERIES))
@pytest.mark.parametrize("ast_layer", [True, False], ids=["ast+process", "process-only"])
def test_forged_scores_are_refused(kuhn, uniform_score, name, ast_layer):
    """The static check refuses stores to module attributes; and even with it switched off (as if a
    candidate got past it), exploitability is computed in the parent from the returned policy, so a
    patched numpy in the child changes nothing."""
    assert uniform_score > 0.4
    res = evaluate(FORGERIES[name], [kuhn], 5, limits=LIMITS, check=ast_layer)
    if ast_layer and name != "negative and NaN weights":
        assert not res.ok and res.error.startswith("rejected:"), res
        return
    # it either failed (the patch broke its own process) or whatever it returned was scored honestly
    assert not res.ok or res.scores["kuhn_poker"][5] >= uniform_score - 1e-9, res.scores


def test_forged_psro_meta_solver_is_scored_honestly(kuhn):
    src = ("def fake(*a, **k):\n    return 0.0\n"
           "def meta_solver(M, iteration):\n    np.maximum = fake\n"
           "    return [np.ones(M.shape[0]) / M.shape[0], np.ones(M.shape[1]) / M.shape[1]]\n")
    assert not evaluate(src, [kuhn], 3, limits=LIMITS, kind="psro").ok
    res = evaluate(src, [kuhn], 3, limits=LIMITS, kind="psro", check=False)
    honest = evaluate(src.replace("    np.maximum = fake\n", ""), [kuhn], 3, limits=LIMITS, kind="psro")
    assert honest.ok, honest
    assert not res.ok or res.scores["kuhn_poker"][3] == pytest.approx(honest.scores["kuhn_poker"][3], rel=1e-9)
