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
