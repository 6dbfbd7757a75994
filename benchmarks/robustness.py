"""Robustness benchmark: replay the hostile probe of issue 17 (and the bad inputs that already passed)
against the real `keel` command, one fresh process per case.

    python benchmarks/robustness.py [--quick]

Each case runs `keel ARGS` (or a short Python snippet against Keel's public API) in its own copy of a
small fixture folder (a memory file with two namespaces, a tiny trained spec_rl run, a red-team run),
under a wall-clock timeout and an address-space limit, and is classified:

  clear error   exit 2, a message, no traceback (what every bad input must get)
  ok            exit 0 where the input is valid (a read-only memory answering a search, ...)
  traceback     "Traceback" on stderr, or an exit code other than 0/2
  hang          killed by the timeout or the memory limit (resource bombs count here)
  accepted      a bad input that exited 0 (silently accepted)
  data lost     a post-condition on the files failed (the database overwritten, a file replaced)
  wrong         the outcome was right but the message was not (leaks other namespaces, no JSON line...)

Plus two in-process sections: discovery-sandbox forgeries and escapes (each forged candidate must fail
or be scored at least as badly as the honest uniform policy; no file may appear outside the jail), and
concurrency (two processes writing one memory file both make progress; a CLI `memory add` beside a busy
writer succeeds). Writes benchmarks/results/robustness.json through benchmarks/resultsfile.py.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.resultsfile import goal, write_results  # noqa: E402

KEEL = str(Path(sys.executable).parent / "keel")
PY = sys.executable
TIMEOUT = 90.0
MEMORY_LIMIT = 8 * 2**30  # address space per case: a resource bomb dies here instead of taking the machine
TINY = ["--set", "total_steps=2000", "--set", "log_every=1000", "--set", "checkpoint_every=1000",
        "--set", "eval_episodes=5", "--set", "num_envs=4"]
MEM = ["--db", "mem.db", "--embedder", "hash"]


@dataclass
class Case:
    name: str
    group: str
    argv: list = field(default_factory=list)  # keel arguments (str or bytes)
    py: str | None = None  # or a Python snippet (run with the venv's python)
    setup: Callable[[Path], None] | None = None
    expect: str = "error"  # error | ok
    check: Callable[[Path, subprocess.CompletedProcess], str | None] | None = None  # -> problem text
    data: bool = False  # the check guards stored data (a failure counts as data lost)
    timeout: float = TIMEOUT


# ---------------------------------------------------------------------------------------------- fixtures


def build_fixtures(root: Path) -> None:
    """mem.db (alice, bob), runs/r (a tiny finished spec_rl run), runs/rt (a red-team run directory)."""
    from keel.memory.embedder import HashEmbedder
    from keel.memory.memory import Memory
    from keel.runs import Run

    for ns, text in (("alice", "alice likes green tea"), ("bob", "bob drinks coffee")):
        with Memory(root / "mem.db", namespace=ns, embedder=HashEmbedder(384)) as m:
            m.add(text)
    p = subprocess.run([KEEL, "train", "quickstart", "--name", "r", "--json", *TINY], cwd=root,
                       capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise SystemExit(f"fixture run failed:\n{p.stderr[-2000:]}")
    Run.create(root / "runs", "rt", {"kind": "redteam", "name": "rt"}, "c.yaml").close()
    (root / "runs" / "rt" / "campaign.sqlite").write_bytes(b"this is not a database " * 200)


def namespaces(db: Path) -> list[str]:
    con = sqlite3.connect(db)
    try:
        return [r[0] for r in con.execute("SELECT DISTINCT namespace FROM items ORDER BY namespace")]
    finally:
        con.close()


def w(path: str, content: str | bytes) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        f = d / path
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(content if isinstance(content, bytes) else content.encode())
    return setup


def both(*fs) -> Callable[[Path], None]:
    def setup(d: Path) -> None:
        for f in fs:
            f(d)
    return setup


def mkdir(path: str) -> Callable[[Path], None]:
    return lambda d: (d / path).mkdir(parents=True, exist_ok=True)


def db_intact(d: Path, p) -> str | None:
    try:
        got = namespaces(d / "mem.db")
    except sqlite3.DatabaseError as e:
        return f"mem.db no longer a database: {e}"
    return None if got == ["alice", "bob"] else f"namespaces now {got}"


def file_is(path: str, content: bytes):
    def check(d: Path, p) -> str | None:
        f = d / path
        return None if f.is_file() and f.read_bytes() == content else f"{path} was changed or removed"
    return check


def absent(*paths: str):
    def check(d: Path, p) -> str | None:
        bad = [x for x in paths if (d / x).exists()]  # an absolute x replaces d
        return f"created {bad}" if bad else None
    return check


def stderr_has(*words: str):
    def check(d: Path, p) -> str | None:
        missing = [x for x in words if x not in p.stderr]
        return f"message lacks {missing}: {p.stderr.strip()[-200:]!r}" if missing else None
    return check


def stderr_lacks(*words: str):
    def check(d: Path, p) -> str | None:
        found = [x for x in words if x in p.stderr]
        return f"message leaks {found}" if found else None
    return check


def json_error_line(d: Path, p) -> str | None:
    try:
        return None if "error" in json.loads(p.stdout.strip().splitlines()[-1]) else "no error key"
    except (ValueError, IndexError):
        return f"no JSON line on stdout: {p.stdout[-200:]!r}"


def no_run_dir(name: str):
    return absent(f"runs/{name}")


ALIAS_BOMB = "\n".join(["a: &a [x, x, x, x, x, x, x, x, x, x]"]
                       + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]" for i in range(8)])
CAMPAIGN = "kind: redteam\nname: {name}\nagents: [{agent}]\n"
DEEP_X = "X(" * 300 + "a" + ")" * 300
KEEP = b"precious\n"

POLICY_REGEX = """
import time
from keel.guard import Guard
from keel.guard.policy import parse_policy
try:
    p = parse_policy('''version: 1
name: evil
default: allow
tools:
  send_email:
    args:
      to: {type: string, pattern: "(a+)+$"}
''', "evil.yaml")
except Exception as e:
    from keel.errors import KeelError
    if isinstance(e, KeelError):
        raise SystemExit(f"refused: {e}")
    raise
t = time.monotonic()
d = Guard(p).check("send_email", {"to": "a" * 40 + "!", "subject": "s", "body": "b"})
assert time.monotonic() - t < 5, f"one check took {time.monotonic() - t:.1f} s"
print("checked in", round(time.monotonic() - t, 4), "s:", d)
"""


def cases() -> list[Case]:
    c: list[Case] = []
    add = c.append
    # ---- memory ------------------------------------------------------------------------------
    g = "memory"
    add(Case("export onto its own database", g, ["memory", "export", "mem.db", *MEM, "-n", "alice"],
             check=db_intact, data=True))
    add(Case("export onto its own database with --force", g,
             ["memory", "export", "./mem.db", *MEM, "-n", "alice", "--force"], check=db_intact, data=True))
    add(Case("export onto its WAL file", g, ["memory", "export", "mem.db-wal", *MEM, "-n", "alice", "--force"],
             check=db_intact, data=True))
    add(Case("export over an existing file", g, ["memory", "export", "keep.txt", *MEM, "-n", "alice"],
             setup=w("keep.txt", KEEP), check=file_is("keep.txt", KEEP), data=True))
    add(Case("export to a folder", g, ["memory", "export", "out", *MEM, "-n", "alice"], setup=mkdir("out")))
    add(Case("export under a file used as a folder", g, ["memory", "export", "keep.txt/x.jsonl", *MEM, "-n", "alice"],
             setup=w("keep.txt", KEEP), check=file_is("keep.txt", KEEP), data=True))
    add(Case("export to an unwritable place", g, ["memory", "export", "/proc/keel-x.jsonl", *MEM, "-n", "alice"]))
    add(Case("export then import round trip", g, ["memory", "export", "new.jsonl", *MEM, "-n", "alice"],
             expect="ok", check=db_intact, data=True))
    add(Case("unknown namespace does not list others", g, ["memory", "search", "tea", *MEM, "-n", "zed"],
             check=stderr_lacks("alice", "bob")))
    for emb in ("hash-0", "hash-abc", "hash--5", "bogus"):
        add(Case(f"--embedder {emb}", g, ["memory", "add", "hi", "--db", "e.db", "--embedder", emb]))
    add(Case("invalid surrogates (undecodable argv bytes)", g, ["memory", "add", b"bad \xff\xfe text", *MEM],
             check=db_intact, data=True))
    add(Case("empty text", g, ["memory", "add", "   ", *MEM]))
    add(Case("metadata not JSON", g, ["memory", "add", "x", *MEM, "--metadata", "{nope"]))
    add(Case("metadata a list", g, ["memory", "add", "x", *MEM, "--metadata", "[1, 2]"]))
    add(Case("timestamp nan", g, ["memory", "add", "x", *MEM, "--timestamp", "nan"]))
    add(Case("timestamp garbage", g, ["memory", "add", "x", *MEM, "--timestamp", "yesterday-ish"]))
    add(Case("search -k 0", g, ["memory", "search", "tea", *MEM, "-n", "alice", "-k", "0"]))
    add(Case("search -k huge", g, ["memory", "search", "tea", *MEM, "-n", "alice", "-k", "10000000"]))
    add(Case("search unknown mode", g, ["memory", "search", "tea", *MEM, "-n", "alice", "--mode", "magic"]))
    add(Case("search bad --since", g, ["memory", "search", "tea", *MEM, "-n", "alice", "--since", "soon"]))
    add(Case("filter without =", g, ["memory", "search", "tea", *MEM, "-n", "alice", "--filter", "oops"]))
    bad_lines = {
        "provenance a list": {"text": "a", "provenance": ["x"]},
        "polarity a word": {"text": "a", "polarity": "yes"},
        "polarity NaN": {"text": "a", "polarity": float("nan")},
        "consensus NaN": {"text": "a", "consensus": float("nan")},
        "ts NaN": {"text": "a", "ts": float("nan")},
        "metadata a list": {"text": "a", "metadata": [1]},
        "text a number": {"text": 5},
        "lone surrogate": {"text": "x \ud800 y"},
    }
    for label, rec in bad_lines.items():
        body = json.dumps({"text": "fine"}) + "\n" + json.dumps(rec) + "\n"
        add(Case(f"import line with {label}", g, ["memory", "import", "imp.jsonl", *MEM, "-n", "alice"],
                 setup=w("imp.jsonl", body), check=lambda d, p: db_intact(d, p) or stderr_has("imp.jsonl:2")(d, p),
                 data=True))
    add(Case("import a binary file", g, ["memory", "import", "imp.jsonl", *MEM], setup=w("imp.jsonl", b"\x89PNG\xff\x00")))
    add(Case("import a missing file", g, ["memory", "import", "nope.jsonl", *MEM]))
    add(Case("import a folder", g, ["memory", "import", "out", *MEM], setup=mkdir("out")))
    add(Case("import an empty file", g, ["memory", "import", "imp.jsonl", *MEM], setup=w("imp.jsonl", "")))
    add(Case("import not JSON", g, ["memory", "import", "imp.jsonl", *MEM], setup=w("imp.jsonl", "{oops\n")))
    add(Case("--db is a folder", g, ["memory", "search", "x", "--db", "out"], setup=mkdir("out")))
    add(Case("--db is a text file", g, ["memory", "search", "x", "--db", "t.db"], setup=w("t.db", "hello " * 500)))
    add(Case("--db is binary junk", g, ["memory", "add", "x", "--db", "t.db"], setup=w("t.db", os.urandom(8192))))
    add(Case("stats on a missing file", g, ["memory", "stats", "--db", "none.db"]))

    def read_only(d: Path) -> None:
        con = sqlite3.connect(d / "mem.db")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.execute("PRAGMA journal_mode=DELETE")
        con.close()
        if os.geteuid() == 0:
            subprocess.run(["chattr", "+i", str(d / "mem.db")], check=True)
        else:
            os.chmod(d / "mem.db", 0o444)
    add(Case("read-only memory: search works", g, ["memory", "search", "tea", *MEM, "-n", "alice"], setup=read_only,
             expect="ok"))
    add(Case("read-only memory: add says read-only", g, ["memory", "add", "x", *MEM, "-n", "alice"], setup=read_only,
             check=stderr_has("read-only")))
    # ---- configs and train ---------------------------------------------------------------------
    g = "train"
    add(Case("rich markup in the preset name", g, ["train", "[/x]"], check=stderr_has("[/x]")))
    add(Case("markup-like brackets kept in messages", g, ["train", "quickstart", "--set", "formula=F [, ]"],
             check=stderr_has("[, ]")))
    add(Case("alias bomb config", g, ["train", "bomb.yaml"], setup=w("bomb.yaml", ALIAS_BOMB + "\nkind: spec_rl\n")))
    add(Case("YAML tag in config", g, ["train", "tag.yaml"],
             setup=w("tag.yaml", "kind: spec_rl\nseed: !!python/object/apply:os.system ['touch /tmp/keel-pwn']\n"),
             check=absent("/tmp/keel-pwn")))
    add(Case("binary config", g, ["train", "bin.yaml"], setup=w("bin.yaml", b"\x89PNG\r\n\x1a\n\x00\xff")))
    add(Case("latin-1 config", g, ["train", "l1.yaml"], setup=w("l1.yaml", "kind: spec_rl\n# caf\xe9\n".encode("latin-1"))))
    add(Case("config is a list", g, ["train", "l.yaml"], setup=w("l.yaml", "- 1\n- 2\n")))
    add(Case("config is a folder", g, ["train", "cfgdir.yaml"], setup=mkdir("cfgdir.yaml")))
    add(Case("config without kind", g, ["train", "k.yaml"], setup=w("k.yaml", "seed: 1\n")))
    add(Case("config with unknown kind", g, ["train", "k.yaml"], setup=w("k.yaml", "kind: nosuch\n")))
    add(Case("config with unknown field", g, ["train", "k.yaml"], setup=w("k.yaml", "kind: spec_rl\nbogus: 1\n")))
    add(Case("deeply nested YAML", g, ["train", "n.yaml"], setup=w("n.yaml", "kind: " + "[" * 5000 + "]" * 5000)))
    for v in ("seed=[1", "seed=!!python/name:os.system", "seed={a: b", "oops", "=3", "seed=abc", "total_steps=-5",
              "seed.x=1"):
        add(Case(f"--set {v}", g, ["train", "quickstart", "--set", v, "--name", "s"], check=no_run_dir("s")))
    add(Case("bad formula leaves no run dir", g, ["train", "quickstart", "--name", "f", "--set", "formula=F(goal_a &"],
             check=no_run_dir("f")))
    add(Case("unknown proposition leaves no run dir", g,
             ["train", "quickstart", "--name", "f", "--set", "formula=F nosuchprop"], check=no_run_dir("f")))
    add(Case("300 nested X( in a config formula", g, ["train", "quickstart", "--name", "f", "--set",
                                                     f"formula={DEEP_X}"], check=no_run_dir("f")))
    add(Case("--name ../x", g, ["train", "quickstart", "--name", "../x", *TINY], check=absent("../x")))
    add(Case("absolute --name", g, ["train", "quickstart", "--name", "/tmp/keel-abs-run", *TINY],
             check=absent("/tmp/keel-abs-run")))
    add(Case("--name a/b", g, ["train", "quickstart", "--name", "a/b", *TINY], check=absent("runs/a")))
    add(Case("--name empty", g, ["train", "quickstart", "--name", "", *TINY]))
    add(Case("--resume with a corrupt run.json", g, ["train", "quickstart", "--resume", *TINY],
             setup=w("runs/r/run.json", b'{"status": "runn')))
    add(Case("--resume with a binary run.json", g, ["train", "quickstart", "--resume", *TINY],
             setup=w("runs/r/run.json", b"\xff\xfe\x00\x01")))

    def damage_ckpt(content: bytes):
        def setup(d: Path) -> None:
            info = json.loads((d / "runs/r/run.json").read_text())
            (d / "runs/r/run.json").write_text(json.dumps({**info, "status": "running"}))
            for f in (d / "runs/r/checkpoints").glob("*.pt"):
                f.write_bytes(content)
        return setup
    for label, content in (("empty", b""), ("truncated", b"PK\x03\x04\x14\x00"), ("garbage", b"\x80\x02junk")):
        add(Case(f"--resume with an {label} checkpoint", g, ["train", "quickstart", "--name", "r", "--resume", *TINY],
                 setup=damage_ckpt(content)))
        add(Case(f"eval with an {label} checkpoint", "eval", ["eval", "runs/r"], setup=damage_ckpt(content)))
        # the report leaves out the sections that need the policy and says so: a report is still written
        add(Case(f"report with an {label} checkpoint", "report", ["report", "runs/r"], setup=damage_ckpt(content),
                 expect="ok"))
    add(Case("usage error prints a JSON line under --json", g, ["train", "--json", "--no-such-option"],
             check=json_error_line))
    add(Case("unknown command under --json", g, ["nosuchcommand", "--json"], check=json_error_line))
    add(Case("KeelError prints a JSON line under --json", g, ["train", "nosuchpreset", "--json"], check=json_error_line))
    # ---- eval / report -------------------------------------------------------------------------
    g = "eval"
    add(Case("eval a missing run", g, ["eval", "nope"]))
    add(Case("eval --episodes huge", g, ["eval", "runs/r", "--episodes", "1000000000000"]))
    add(Case("eval --episodes 0", g, ["eval", "runs/r", "--episodes", "0"]))
    add(Case("eval --split bogus", g, ["eval", "runs/r", "--split", "bogus"]))
    add(Case("eval with a corrupt config.yaml", g, ["eval", "runs/r"], setup=w("runs/r/config.yaml", "kind: [unclosed\n")))
    add(Case("eval with a binary config.yaml", g, ["eval", "runs/r"], setup=w("runs/r/config.yaml", b"\x00\xff\xfe")))
    g = "report"
    add(Case("report: metrics rows missing keys", g, ["report", "runs/r"], expect="ok",
             setup=w("runs/r/metrics.jsonl", '{"time": 1}\n{"step": 5}\n{"step": "x", "a": [1]}\n{"nostep": 2}\n')))
    add(Case("report: truncated summary.json", g, ["report", "runs/r"], setup=w("runs/r/summary.json", '{"satisf')))
    add(Case("report: binary metrics.jsonl", g, ["report", "runs/r"], expect="ok",
             setup=w("runs/r/metrics.jsonl", b"\xff\xfe\x00garbage\n")))
    add(Case("report safety: corrupt campaign.sqlite", g, ["report", "safety", "runs/rt"]))
    add(Case("report safety: empty campaign.sqlite", g, ["report", "safety", "runs/rt"],
             setup=w("runs/rt/campaign.sqlite", b"")))
    add(Case("report safety: damaged SQLite header", g, ["report", "safety", "runs/rt"],
             setup=w("runs/rt/campaign.sqlite", b"SQLite format 3\x00" + b"\xff" * 200)))
    add(Case("report safety of a training run", g, ["report", "safety", "runs/r"]))
    add(Case("report safety without RUN", g, ["report", "safety"]))
    add(Case("report a missing run", g, ["report", "nope"]))
    # ---- spec ----------------------------------------------------------------------------------
    g = "spec"
    add(Case("300 nested X(", g, ["spec", "dot", DEEP_X]))
    add(Case("5,000 parentheses", g, ["spec", "dot", "(" * 5000 + "a" + ")" * 5000]))
    add(Case("5,000 negations", g, ["spec", "check", "!" * 5000 + "a"]))
    add(Case("3,000-term conjunction", g, ["spec", "check", " & ".join(["a"] * 3000)]))
    add(Case("1,000 SPECTRL steps", g, ["spec", "graph", "; ".join(["achieve a"] * 1000)]))
    add(Case("3,000 SPECTRL parentheses", g, ["spec", "graph", "(" * 3000 + "achieve a" + ")" * 3000]))
    add(Case("markup in a formula", g, ["spec", "check", "F [/x]"], check=stderr_has("[/x]")))
    add(Case("empty formula", g, ["spec", "check", ""]))
    add(Case("unbalanced formula", g, ["spec", "check", "F (a & b"]))
    add(Case("spec dot --out a folder", g, ["spec", "dot", "F a", "--out", "out"], setup=mkdir("out")))
    add(Case("spec dot --out under a file", g, ["spec", "dot", "F a", "--out", "keep.txt/x.dot"],
             setup=w("keep.txt", KEEP), check=file_is("keep.txt", KEEP), data=True))
    add(Case("spec dot --out unwritable", g, ["spec", "dot", "F a", "--out", "/proc/keel.dot"]))
    # ---- games / discover ----------------------------------------------------------------------
    g = "games"
    add(Case("games info goofspiel (default 13 cards)", g, ["games", "info", "goofspiel"]))
    add(Case("games solve goofspiel (default 13 cards)", g, ["games", "solve", "goofspiel", "--iters", "1"]))
    add(Case("games info liars_dice(numdice=2)", g, ["games", "info", "liars_dice(numdice=2)"]))
    for v in ("alpha=nan", "alpha=inf", "alpha", "alpha=abc"):
        add(Case(f"--param {v}", g, ["games", "solve", "kuhn_poker", "--iters", "2", "--param", v]))
    add(Case("games solve --iters 0", g, ["games", "solve", "kuhn_poker", "--iters", "0"]))
    add(Case("games solve --algo bogus", g, ["games", "solve", "kuhn_poker", "--algo", "bogus"]))
    add(Case("games info unknown game", g, ["games", "info", "nosuch_game"]))
    add(Case("games info bad parameter", g, ["games", "info", "kuhn_poker(players=abc)"]))
    add(Case("games info unparseable", g, ["games", "info", "kuhn poker;rm -rf"]))
    add(Case("games psro --meta bogus", g, ["games", "psro", "kuhn_poker", "--meta", "bogus"]))
    add(Case("games psro --iters 0", g, ["games", "psro", "kuhn_poker", "--iters", "0"]))
    g = "discover"
    for args in (["--cpu-seconds", "0"], ["--cpu-seconds", "-5"], ["--memory-mb", "-100"], ["--population", "0"],
                 ["--iters", "-1"], ["--mutator", "bogus"], ["--train", "nosuch_game"], ["--train", "goofspiel"]):
        add(Case(f"discover cfr {' '.join(args)}", g, ["discover", "cfr", "--train", "kuhn_poker", "--generations", "1",
                                                       "--db", "d.sqlite", *args], check=absent("d.sqlite")))
    # ---- red team and guard policies -----------------------------------------------------------
    g = "redteam"
    add(Case("campaign name ../x", g, ["redteam", "run", "c.yaml"], setup=w("c.yaml", CAMPAIGN.format(name="../x", agent="follower")),
             check=absent("../x")))
    add(Case("campaign name absolute", g, ["redteam", "run", "c.yaml"],
             setup=w("c.yaml", CAMPAIGN.format(name="/tmp/keel-rt-abs", agent="follower")), check=absent("/tmp/keel-rt-abs")))
    for label, body in (("unknown agent", CAMPAIGN.format(name="rt2", agent="nosuchagent")),
                        ("unknown model", CAMPAIGN.format(name="rt2", agent="'llm:/no/such/model'")),
                        ("unknown attack", CAMPAIGN.format(name="rt2", agent="follower") + "attacks: [nosuchattack]\n"),
                        ("unknown defence", CAMPAIGN.format(name="rt2", agent="follower") + "defences: [nosuch]\n"),
                        ("unknown suite", CAMPAIGN.format(name="rt2", agent="follower") + "suites: [nosuch]\n")):
        add(Case(f"campaign with {label} leaves no run dir", g, ["redteam", "run", "c.yaml"], setup=w("c.yaml", body),
                 check=no_run_dir("rt2")))
    add(Case("redteam run --limit -1", g, ["redteam", "run", "c.yaml", "--limit", "-1"],
             setup=w("c.yaml", CAMPAIGN.format(name="rt2", agent="follower")), check=no_run_dir("rt2")))
    add(Case("campaign alias bomb", g, ["redteam", "run", "c.yaml"], setup=w("c.yaml", ALIAS_BOMB + "\nkind: redteam\n")))
    add(Case("campaign binary file", g, ["redteam", "run", "c.yaml"], setup=w("c.yaml", b"\xff\xfe\x00bin")))
    add(Case("campaign missing", g, ["redteam", "run", "nope.yaml"]))
    g = "guard policy"
    add(Case("policy alias bomb", g, ["redteam", "policy", "p.yaml"], setup=w("p.yaml", ALIAS_BOMB + "\nversion: 1\n")))
    add(Case("policy with 5,000 nested [", g, ["redteam", "policy", "p.yaml"],
             setup=w("p.yaml", "version: 1\nname: " + "[" * 5000 + "]" * 5000 + "\n")))
    add(Case("policy catastrophic regex (a+)+$", g, py=POLICY_REGEX, expect="ok"))
    add(Case("policy temporal-rule error names file and line", g, ["redteam", "policy", "p.yaml"],
             setup=w("p.yaml", "version: 1\nname: t\ntemporal:\n  - name: r\n    formula: \"G(a -> \"\n"),
             check=stderr_has("p.yaml", "line")))
    add(Case("policy non-UTF-8", g, ["redteam", "policy", "p.yaml"], setup=w("p.yaml", b"version: 1\nname: caf\xe9\n")))
    add(Case("policy missing", g, ["redteam", "policy", "nope.yaml"]))
    return c


# ---------------------------------------------------------------------------------------------- running


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    os.setsid()


def run_case(case: Case, fixtures: Path, work: Path, slot: int = 0) -> dict:
    d = work / f"case{slot}"
    shutil.copytree(fixtures, d, symlinks=True)
    if case.setup:
        case.setup(d)
    cmd = [PY, "-c", case.py] if case.py is not None else [KEEL, *case.argv]
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, cwd=d, capture_output=True, timeout=case.timeout, preexec_fn=_limit,
                           env={**os.environ, "COLUMNS": "200", "KEEL_MEMORY": ""})
        p = subprocess.CompletedProcess(p.args, p.returncode, p.stdout.decode(errors="replace"),
                                        p.stderr.decode(errors="replace"))
        hung = False
    except subprocess.TimeoutExpired:
        p, hung = subprocess.CompletedProcess(cmd, -9, "", ""), True
    dt = time.monotonic() - t0
    tb = "Traceback (most recent call last)" in p.stderr
    if hung or "MemoryError" in p.stderr or p.returncode in (-9, 137):
        outcome = "hang"
    elif tb or p.returncode not in (0, 2):
        outcome = "traceback"
    elif case.expect == "ok":
        outcome = "ok" if p.returncode == 0 else "unexpected error"
    else:
        outcome = "clear error" if p.returncode == 2 else "accepted"
    problem = case.check(d, p) if case.check and not hung else None
    subprocess.run(["chattr", "-R", "-i", str(d)], capture_output=True)  # the read-only cases
    shutil.rmtree(d, ignore_errors=True)
    if problem and outcome in ("clear error", "ok"):
        outcome = "data lost" if case.data else "wrong"
    elif problem and case.data:
        outcome = "data lost"
    last = (p.stderr.strip().splitlines() or [""])[-1][:240]
    return {"case": case.name, "group": case.group, "outcome": outcome, "exit": p.returncode,
            "seconds": round(dt, 2), "problem": problem, "message": last}


# ---------------------------------------------------------------------------------------------- sandbox

UNIFORM = ("def accumulate_regret(R, r, t, mem, seg):\n    return R\n"
           "def regret_to_policy(R, r, t, mem, seg):\n    return np.ones_like(R)\n"
           "def accumulate_policy(S, c, t, mem, seg):\n    return np.ones_like(S)\n")
PWNED = Path("/tmp/keel-robustness-pwned")
FORGERIES = {
    "np.ones = fake_ones at top level (the probe's forgery)":
        "import numpy as np\ndef fake_ones(shape):\n    return np.zeros(shape)\nnp.ones = fake_ones\n" + UNIFORM,
    "patch np.sum / np.maximum inside a part": UNIFORM.replace("    return R\n", "    np.sum = np.mean\n"
                                                                "    np.maximum = np.minimum\n    return R\n", 1),
    "augmented store on math.inf": "def accumulate_regret(R, r, t, mem, seg):\n    math.inf -= 1\n    return R\n"
                                   + UNIFORM.split("\n", 2)[2],
    "delete np.where": "def accumulate_regret(R, r, t, mem, seg):\n    del np.where\n    return R\n"
                       + UNIFORM.split("\n", 2)[2],
    "negative and NaN policy weights": UNIFORM.replace("return np.ones_like(S)", "return S - c * 1e9 + float('nan') * (t > 3)"),
}
ESCAPES = {
    "open a file": "def accumulate_regret(R, r, t, mem, seg):\n"
                   f"    open('{PWNED}', 'w').write('x')\n    return R\n" + UNIFORM.split("\n", 2)[2],
    "dunder escape to os.system": "def accumulate_regret(R, r, t, mem, seg):\n"
        "    for c in ().__class__.__bases__[0].__subclasses__():\n"
        "        if c.__name__ == '_wrap_close':\n"
        f"            c.__init__.__globals__['system']('touch {PWNED}')\n    return R\n" + UNIFORM.split("\n", 2)[2],
    "import os": f"import os\ndef accumulate_regret(R, r, t, mem, seg):\n    os.system('touch {PWNED}')\n    return R\n"
                 + UNIFORM.split("\n", 2)[2],
    "builtins through __globals__": "def accumulate_regret(R, r, t, mem, seg):\n"
        f"    accumulate_regret.__globals__['__builtins__']['open']('{PWNED}', 'w')\n    return R\n"
        + UNIFORM.split("\n", 2)[2],
}


def sandbox_section() -> tuple[list[dict], int, int]:
    from keel.discovery.sandbox import Limits, evaluate
    from keel.games.exploitability import exploitability
    from keel.games.tree import GameTree

    kuhn = GameTree.build("kuhn_poker")
    honest = exploitability(kuhn, kuhn.uniform_policy())
    limits = Limits(cpu_seconds=2, memory_mb=256, wall_seconds=30)
    rows, forged, escaped = [], 0, 0
    for kind, table in (("forgery", FORGERIES), ("escape", ESCAPES)):
        for name, src in table.items():
            for ast_layer in (True, False):
                PWNED.unlink(missing_ok=True)
                res = evaluate(src, [kuhn], 5, limits=limits, check=ast_layer)
                score = res.scores.get("kuhn_poker", {}).get(5) if res.ok else None
                bad = (score is not None and score < honest - 1e-9) if kind == "forgery" else PWNED.exists()
                forged += kind == "forgery" and bad
                escaped += kind == "escape" and bad
                rows.append({"attempt": name, "kind": kind, "static_check": ast_layer, "ok": res.ok, "score": score,
                             "honest_uniform": round(honest, 6), "error": res.error[:160], "succeeded": bool(bad)})
    PWNED.unlink(missing_ok=True)
    src = ("def fake(*a, **k):\n    return 0.0\ndef meta_solver(M, iteration):\n    np.maximum = fake\n"
           "    return [np.ones(M.shape[0]) / M.shape[0], np.ones(M.shape[1]) / M.shape[1]]\n")
    fair = evaluate(src.replace("    np.maximum = fake\n", ""), [kuhn], 3, limits=limits, kind="psro")
    for ast_layer in (True, False):
        res = evaluate(src, [kuhn], 3, limits=limits, kind="psro", check=ast_layer)
        bad = res.ok and fair.ok and res.scores["kuhn_poker"][3] < fair.scores["kuhn_poker"][3] - 1e-9
        forged += bad
        rows.append({"attempt": "PSRO meta-solver patches np.maximum", "kind": "forgery", "static_check": ast_layer,
                     "ok": res.ok, "score": res.scores.get("kuhn_poker", {}).get(3) if res.ok else None,
                     "honest_uniform": fair.scores.get("kuhn_poker", {}).get(3), "error": res.error[:160],
                     "succeeded": bool(bad)})
    return rows, forged, escaped


# ---------------------------------------------------------------------------------------------- concurrency

WRITER = """
import sys, time
from keel.memory.embedder import HashEmbedder
from keel.memory.memory import Memory
m = Memory(sys.argv[1], namespace=sys.argv[2], embedder=HashEmbedder(32))
end = time.time() + float(sys.argv[4]) if len(sys.argv) > 4 else None
i = 0
while (end is None and i < int(sys.argv[3])) or (end is not None and time.time() < end):
    m.add(f"{sys.argv[2]} note {i}")
    print(time.time(), flush=True)
    i += 1
m.close()
"""


def concurrency_section(work: Path, n: int) -> dict:
    db = str(work / "conc.db")
    procs = [subprocess.Popen([PY, "-c", WRITER, db, ns, str(n)], stdout=subprocess.PIPE, text=True)
             for ns in ("a", "b")]
    stamps = [[float(x) for x in p.communicate(timeout=600)[0].split()] for p in procs]
    first_done = min(s[-1] for s in stamps if s) if all(stamps) else 0.0
    loser = max(stamps, key=lambda s: s[-1] if s else 0)
    before = sum(t < first_done for t in loser)
    # a CLI `memory add` beside a writer that never pauses for 20 s
    busy = subprocess.Popen([PY, "-c", WRITER, db, "busy", "0", "20"], stdout=subprocess.DEVNULL)
    time.sleep(2)
    t0 = time.monotonic()
    cli = subprocess.run([KEEL, "memory", "add", "beside a busy writer", "--db", db, "--embedder", "hash-32"],
                         capture_output=True, text=True, timeout=300)
    cli_seconds = time.monotonic() - t0
    busy.wait(timeout=120)
    return {"writers": 2, "adds_each": n, "committed": [len(s) for s in stamps],
            "loser_commits_before_the_other_finished": before,
            "loser_share_before_the_other_finished": round(before / max(1, n), 3),
            "cli_add_beside_writer_exit": cli.returncode, "cli_add_seconds": round(cli_seconds, 2),
            "cli_add_message": (cli.stderr.strip().splitlines() or [""])[-1][:200]}


# ---------------------------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a few cases per group (development)")
    ap.add_argument("--jobs", type=int, default=2, help="cases run at once")
    args = ap.parse_args()
    load_start = list(os.getloadavg())
    work = Path(tempfile.mkdtemp(prefix="keel-robustness-"))
    fixtures = work / "fixtures"
    fixtures.mkdir()
    build_fixtures(fixtures)
    all_cases = cases()
    if args.quick:
        picked: dict[str, list[Case]] = {}
        for c in all_cases:
            picked.setdefault(c.group, [])
            if len(picked[c.group]) < 3:
                picked[c.group].append(c)
        all_cases = [c for group in picked.values() for c in group]
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int) -> dict:  # cases run side by side, each in its own folder
        row = run_case(all_cases[i], fixtures, work, slot=i)
        print(f"[{i + 1}/{len(all_cases)}] {row['outcome']:16s} {row['group']:12s} {row['case']}  "
              f"({row['seconds']} s)", flush=True)
        return row

    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(one, range(len(all_cases))))
    sandbox, forged, escaped = sandbox_section()
    conc = concurrency_section(work, 60 if args.quick else 200)
    subprocess.run(["chattr", "-R", "-i", str(work)], capture_output=True)
    shutil.rmtree(work, ignore_errors=True)

    count = {k: sum(r["outcome"] == k for r in rows) for k in
             ("clear error", "ok", "traceback", "hang", "accepted", "data lost", "wrong", "unexpected error")}
    failing = [r for r in rows if r["outcome"] not in ("clear error", "ok")]
    fair = conc["loser_share_before_the_other_finished"] >= 0.2
    cli_ok = conc["cli_add_beside_writer_exit"] == 0
    goals = [
        goal("cases tried", len(rows), "every case of issue 17 plus the ones that passed", "cases", None,
             "a count, not a pass/fail goal"),
        goal("clear errors (or correct success)", count["clear error"] + count["ok"], len(rows), "cases",
             count["clear error"] + count["ok"] == len(rows)),
        goal("tracebacks", count["traceback"], 0, "cases", count["traceback"] == 0),
        goal("hangs and resource bombs", count["hang"], 0, "cases", count["hang"] == 0),
        goal("data lost", count["data lost"], 0, "cases", count["data lost"] == 0),
        goal("bad inputs silently accepted", count["accepted"], 0, "cases", count["accepted"] == 0),
        goal("sandbox forgeries", forged, 0, "attempts that scored better than honest", forged == 0),
        goal("sandbox escapes", escaped, 0, "attempts that touched the filesystem", escaped == 0),
        goal("two writers: the later one commits part of its work while the other still writes",
             conc["loser_share_before_the_other_finished"], ">= 0.2", "share of its adds", fair),
        goal("CLI memory add beside a busy writer succeeds", conc["cli_add_beside_writer_exit"], 0, "exit code", cli_ok),
    ]
    tables = {"cases": rows, "by_outcome": count, "failing": failing, "sandbox": sandbox, "concurrency": conc}
    notes = [
        f"{len(rows)} cases, each `keel ...` (or a snippet against the public API) in a fresh process and a fresh "
        f"copy of the fixtures; timeout {TIMEOUT:.0f} s, address space {MEMORY_LIMIT >> 30} GiB.",
        "Sandbox rows: each forgery/escape with the static check on and off (off = as if a candidate got past it).",
        "Guard-policy cases call the guard's public API (keel redteam policy, keel.guard.Guard); those rules are "
        "owned by keel/guard.",
    ] + (["--quick: 3 cases per group, shorter concurrency run"] if args.quick else [])
    out = write_results("robustness" + ("-quick" if args.quick else ""), tables, goals, notes, load_start)
    print(json.dumps(count), f"forged={forged} escaped={escaped}", json.dumps(conc))
    print("wrote", out)


if __name__ == "__main__":
    main()
