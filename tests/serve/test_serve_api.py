"""The dashboard's API without a browser: confinement to --runs, damaged files, incremental metrics,
statuses, read-only access."""

from __future__ import annotations

import os
import socket
import time

import pytest
from fastapi.testclient import TestClient

from keel.serve.app import create_app
from keel.serve.index import status_of
from keel.serve.metrics import read_metrics


@pytest.fixture(scope="module")
def client(runs_dir, memory_file):
    return TestClient(create_app(runs_dir, str(memory_file), "hash-256"))


def _snapshot(root):
    # SQLite readers of a WAL database map its -shm index (not data), so that file's time moves
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*")
            if p.is_file() and not p.name.endswith("-shm")}


@pytest.mark.parametrize("path", [
    "/run/..%2Fsecret.txt/report.html", "/run/%2e%2e/report.html", "/run/..%2F..%2Fetc%2Fpasswd/report.html",
    "/api/runs/..%2Fsecret.txt/metrics", "/api/runs/%2e%2e/metrics", "/run/..", "/static/..%2F..%2Fapp.py",
    "/static/../../secret.txt", "/run/spec-seed0/..%2F..%2Fsecret.txt", "/run/%00/report.html",
])
def test_path_traversal_is_refused(server, path):
    # sent as a raw request line (an HTTP client would normalise '..' away): nothing outside --runs
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        raw = b"".join(iter(lambda: s.recv(65536), b"")).decode("utf-8", "replace")
    status = int(raw.split(" ", 2)[1])
    assert status in (400, 403, 404), (path, status)
    assert "top secret" not in raw and "root:" not in raw and "def create_app" not in raw


def test_symlink_out_of_runs_is_refused(runs_dir, client, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "config.yaml").write_text("kind: spec_rl\n")
    (outside / "report.html").write_text("outside!")
    (runs_dir / "sneaky").symlink_to(outside)
    try:
        r = client.get("/run/sneaky/report.html")
        assert r.status_code == 403 and "leads outside the runs directory" in r.text and "outside!" not in r.text
        assert client.get("/api/runs/sneaky/metrics").status_code == 403
        assert "sneaky" not in [x["name"] for x in client.get("/api/runs").json()["runs"]]
    finally:
        (runs_dir / "sneaky").unlink()


def test_damaged_runs_are_listed_with_their_problem(client):
    runs = {r["name"]: r for r in client.get("/api/runs").json()["runs"]}
    assert any("torn line" in p for p in runs["torn"]["problems"])
    assert runs["torn"]["step"] == 400  # the last whole line
    assert any("summary.json is not valid JSON" in p for p in runs["bad-summary"]["problems"])
    assert client.get("/run/bad-summary").status_code == 200
    m = client.get("/api/runs/torn/metrics").json()
    assert len(m["rows"]) == 5 and m["torn_tail"]
    assert any("summary.json cannot be read" in p for p in runs["dir-summary"]["problems"])
    m = client.get("/api/runs/dir-summary/metrics").json()
    assert m["rows"] == [] and m["skipped"] == 2
    assert client.get("/run/dir-summary").status_code in (200, 422)


def test_unknown_run_is_a_404_with_a_message(client):
    r = client.get("/api/runs/nope/metrics")
    assert r.status_code == 404 and "no run 'nope'" in r.json()["error"]
    r = client.get("/run/nope")
    assert r.status_code == 404 and "no run" in r.text
    assert client.get("/run/spec-seed0/safety_card.html").status_code == 404
    assert client.get("/api/runs/spec-seed0/campaign").status_code == 404
    assert client.get("/run/redteam-tiny/episode/99999").status_code == 404


def test_metrics_are_read_incrementally_and_reset_after_truncation(tmp_path):
    f = tmp_path / "metrics.jsonl"
    f.write_text('{"step": 0, "loss": 1.0, "note": "x"}\n{"step": 1, "loss": 0.5}\n{"step": 2, "lo')
    a = read_metrics(f)
    assert [r["step"] for r in a["rows"]] == [0, 1] and "note" not in a["rows"][0] and a["torn_tail"]
    with open(f, "a") as fh:
        fh.write('ss": 0.2}\nnot json\n{"step": 3, "loss": 0.1}\n')
    b = read_metrics(f, a["offset"])
    assert [r["step"] for r in b["rows"]] == [2, 3] and b["skipped"] == 1 and not b["torn_tail"]
    f.write_text('{"step": 0, "loss": 1.0}\n')  # a resume truncated the log
    c = read_metrics(f, b["offset"])
    assert c["reset"] and [r["step"] for r in c["rows"]] == [0]


def test_statuses():
    now = time.time()
    me = {"status": "running", "pid": os.getpid(), "host": __import__("socket").gethostname(), "created": now}
    assert status_of(me, None, now) == "running"
    dead = dict(me, pid=2**22 + 12345)
    assert status_of(dead, None, now) == "interrupted"
    assert status_of({"status": "finished"}, None, now) == "finished"
    assert status_of({"status": "failed"}, None, now) == "failed"
    assert status_of({"status": "partial"}, None, now) == "interrupted"
    old = {"status": "running", "created": now - 3600}  # a run.json from before pids were recorded
    assert status_of(old, now - 5, now) == "running" and status_of(old, now - 3000, now) == "interrupted"


def test_campaign_api_and_read_only(runs_dir, client):
    before = _snapshot(runs_dir)
    d = client.get("/api/runs/redteam-tiny/campaign").json()
    by = {(e["agent"], e["defence"]): e for e in d["table"]}
    assert by[("follower", "none")]["targeted_asr"] == 1.0 and by[("follower", "guard")]["targeted_asr"] == 0.0
    assert set(by[("follower", "none")]["per_language"]) == {"en", "sw"}
    ep = [e for e in d["episodes"] if e["defence"] == "guard" and e["attack"]][0]
    page = client.get(f"/run/redteam-tiny/episode/{ep['id']}")
    assert page.status_code == 200 and "Guard decisions" in page.text
    for url in ("/", "/api/runs", "/run/redteam-tiny", "/run/redteam-tiny/report.html",
                "/run/redteam-tiny/safety_card.html", "/compare?a=spec-seed0&b=spec-seed1"):
        assert client.get(url).status_code == 200, url
    client.get("/api/memory/search", params={"ns": "alice", "q": "where does she live"})
    assert _snapshot(runs_dir) == before  # browsing wrote nothing into --runs


def test_reports_are_served_under_a_no_script_policy(client):
    r = client.get("/run/redteam-tiny/report.html")
    assert "script-src" not in r.headers["content-security-policy"]
    assert "default-src 'none'" in r.headers["content-security-policy"]


def test_memory_api(client):
    ns = {n["namespace"]: n for n in client.get("/api/memory/namespaces").json()["namespaces"]}
    assert set(ns) == {"alice", "bob"}
    items = client.get("/api/memory/items", params={"ns": "alice", "text": "doctor"}).json()
    assert items["total"] >= 1 and all("reliability" in it for it in items["items"])
    one = client.get("/api/memory/item", params={"ns": "alice", "id": items["items"][0]["id"]}).json()
    assert [h["op"] for h in one["history"]][:2] == ["add", "update"]
    res = client.get("/api/memory/search", params={"ns": "bob", "q": "climbing"}).json()
    assert set(res) == {"bm25", "dense", "hybrid", "reliable", "hierarchical"}
    assert "Alps" in res["bm25"]["hits"][0]["text"]
    bad = client.get("/api/memory/item", params={"ns": "alice", "id": "nope"})
    assert bad.status_code == 400 and "no memory" in bad.json()["error"]
    bad = client.get("/api/memory/items", params={"ns": "bad namespace!"})
    assert bad.status_code == 400 and "invalid namespace" in bad.json()["error"]


def test_cli_refuses_bad_arguments(tmp_path):
    from typer.testing import CliRunner

    from keel.cli import app

    r = CliRunner().invoke(app, ["serve", "--runs", str(tmp_path / "missing")])
    assert r.exit_code != 0 and "no such folder" in str(r.exception)
    r = CliRunner().invoke(app, ["serve", "--runs", str(tmp_path), "--memory", str(tmp_path / "nope.db")])
    assert r.exit_code != 0 and "no such memory file" in str(r.exception)
