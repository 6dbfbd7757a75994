"""Fixtures for the dashboard: a runs folder made by the test (real red-team campaign, run directories
written through keel.runs, a damaged run), a memory file, `keel serve` started on a free loopback port
as a real subprocess, and headless Debian Chromium driven by Playwright."""

from __future__ import annotations

import math
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"  # screenshots (ignored by git)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_finished(runs: Path, name: str, seed: int, lr: float, steps: int = 40):
    from keel.runs import Run

    r = Run.create(runs, name, {"kind": "spec_rl", "seed": seed, "ppo": {"lr": lr, "epochs": 4}}, "quickstart")
    for i in range(steps):
        r.log(i * 100, satisfaction_train=1 - math.exp(-i / (8 + seed)), violations_train=0, loss=1 / (1 + i))
    r.write_summary({"satisfaction": 0.9 + seed / 100, "wall_seconds": 12.5})
    r.set_status("finished")
    r.close()


def make_campaign(runs: Path) -> Path:
    """A real, tiny red-team campaign (one agent, one suite, two attacks, with and without the guard)."""
    from keel.redteam.campaign import CampaignConfig, run_campaign
    from keel.report.html import write_report
    from keel.report.safety import write_safety_card
    from keel.runs import Run

    cfg = CampaignConfig(name="rt", runs_dir=str(runs), agents=["follower"], suites=["banking"],
                         only_tasks_with_vectors=True, max_user_tasks_per_suite=1, max_injection_tasks_per_suite=1,
                         attacks=["direct", "multilingual_sw"], defences=["none", "guard"])
    r = Run.create(runs, "redteam-tiny", cfg.model_dump(mode="json"), "redteam-tiny")
    result = run_campaign(cfg, r.path, quiet=True)
    r.write_summary(result)
    r.set_status("finished")
    write_report(r)
    r.close()
    write_safety_card(str(r.path))
    return r.path


def make_memory(path: Path) -> Path:
    from keel.memory import Memory
    from keel.memory.embedder import HashEmbedder

    with Memory(path, namespace="alice", embedder=HashEmbedder(256)) as m:
        m.add("I moved to Lisbon last spring", source="user")
        m.add("My favourite food is grilled sardines", source="user")
        ids = m.add("I work as a nurse at the city hospital", source="user")
        m.update(ids[0], "I work as a doctor at the city hospital")
    with Memory(path, namespace="bob", embedder=HashEmbedder(256)) as m:
        m.add("Bob likes climbing in the Alps", source="user")
    return path


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("serve") / "runs"
    runs.mkdir()
    make_finished(runs, "spec-seed0", 0, 1e-3)
    make_finished(runs, "spec-seed1", 1, 3e-3)
    make_campaign(runs)
    # damaged runs: a torn metrics line and a corrupted summary
    make_finished(runs, "torn", 2, 1e-3, steps=5)
    with open(runs / "torn" / "metrics.jsonl", "a") as f:
        f.write('{"step": 999, "loss": 0.')
    make_finished(runs, "bad-summary", 3, 1e-3, steps=5)
    (runs / "bad-summary" / "summary.json").write_text('{"satisfaction": 0.9, "wall')
    make_finished(runs, "dir-summary", 4, 1e-3, steps=3)  # summary.json a folder, metrics.jsonl not text
    (runs / "dir-summary" / "summary.json").unlink()
    (runs / "dir-summary" / "summary.json").mkdir()
    (runs / "dir-summary" / "metrics.jsonl").write_bytes(b"\xff\xfe\x00garbage\n\x80\n")
    # a file outside the runs folder that no URL may reach
    (runs.parent / "secret.txt").write_text("top secret")
    return runs


@pytest.fixture(scope="session")
def memory_file(tmp_path_factory) -> Path:
    return make_memory(tmp_path_factory.mktemp("mem") / "memory.db")


@pytest.fixture(scope="session")
def server(runs_dir, memory_file):
    port = free_port()
    keel = Path(sys.executable).parent / "keel"
    cmd = [str(keel), "serve", "--runs", str(runs_dir), "--port", str(port), "--memory", str(memory_file),
           "--memory-embedder", "hash-256"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"keel serve exited: {proc.stdout.read()}")
        try:
            if httpx.get(base + "/api/runs", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        proc.kill()
        raise RuntimeError("keel serve did not answer within 60 s")
    yield base
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def browser():
    if not shutil.which(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (make install puts it there)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield b
        b.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.errors = errors
    yield pg
    ctx.close()
