"""Benchmark of keel.memory: retrieval quality, speed at 10k/100k items, durability, bad input, PAHF.

    python benchmarks/memory.py [--quick]

Writes benchmarks/results/memory.json (raw tables + `goals`). Sections:
  1. retrieval: a generated long-conversation benchmark (many sessions per user, facts that change over
     time, distractors, each question annotated with its evidence turns); evidence recall@5/@10 for
     BM25, dense, hybrid, hybrid + reliability, hierarchical; abstention on unanswerable questions.
     Real embedder (all-MiniLM-L6-v2).
  2. speed: add throughput and search latency p50/p95 at 10k and 100k items. The 100k store uses the
     hashing embedder (synthetic vectors: embedding 100k texts with MiniLM takes ~25 min on this
     machine); the store's work (SQLite + FTS5 + FAISS) is the same for any 384-d vector. MiniLM's own
     add throughput and query-encoding latency are measured separately.
  3. durability: SIGKILL in the middle of a bulk add (3 trials), 4 concurrent writer processes.
  4. bad input: each case must raise KeelError and leave the store intact.
  5. PAHF on the shopping environment: four phases, PAHF vs no memory vs each single channel.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from keel.errors import KeelError  # noqa: E402
from keel.io import atomic_write_json  # noqa: E402
from keel.memory import HashEmbedder, Memory, store_sqlite  # noqa: E402
from keel.memory.embedder import default_embedder  # noqa: E402

MODES = ("bm25", "dense", "hybrid", "reliable", "hierarchical")
DAY = 86400.0

# -- 1. the generated long-conversation benchmark --------------------------------------------------------
SLOTS = {
    "city": (["Lisbon", "Porto", "Berlin", "Madrid", "Oslo", "Vienna", "Prague", "Dublin"],
             ["I moved to {v} last month.", "These days I live in {v}.", "We finally relocated to {v}."],
             "Where does the user live now?"),
    "job": (["nurse", "architect", "teacher", "data analyst", "chef", "pilot"],
            ["I started working as a {v}.", "I work as a {v} now.", "My new job: I'm a {v}."],
            "What is the user's current job?"),
    "food": (["sushi", "tacos", "ramen", "lasagna", "falafel"],
             ["My favourite food is {v} these days.", "Honestly {v} is my favourite food now."],
             "What is the user's favourite food?"),
    "car": (["Volvo", "Tesla", "Fiat", "Toyota", "Renault"],
            ["I drive a {v} now.", "We sold the old car, I drive a {v} these days."],
            "What car does the user drive?"),
    "hobby": (["climbing", "pottery", "chess", "surfing", "painting"],
              ["My main hobby is {v} now.", "I've really gotten into {v} as a hobby."],
              "What is the user's hobby these days?"),
}
EVENTS = [
    ("My dentist appointment is on {v}.", ["Monday", "Tuesday", "Friday"], "When is the user's dentist appointment?"),
    ("My sister's birthday is in {v}.", ["March", "July", "October"], "When is the user's sister's birthday?"),
    ("I'm reading a novel called {v}.", ["The Salt Road", "Glass Rivers", "Night Orchard"],
     "Which book is the user reading?"),
    ("Our wedding anniversary dinner is booked at {v}.", ["Casa Lume", "Blue Fig", "The Larder"],
     "Where is the anniversary dinner booked?"),
]
DISTRACT = ["My friend Tom lives in {city}.", "My colleague works as a {job}.", "I watched a documentary about {city}.",
            "My brother loves {food}.", "A neighbour drives a {car}.", "My cousin is into {hobby}."]
FILLER_USER = ["How was your weekend?", "It rained all day here.", "I need to buy groceries later.",
               "Work was busy today.", "Can you recommend a podcast?", "I slept badly last night.",
               "The train was late again.", "I'm thinking about a holiday.", "What should I cook tonight?",
               "My phone battery dies so fast."]
FILLER_ASSISTANT = ["That sounds nice!", "I'm sorry to hear that.", "Tell me more.", "Happy to help with that.",
                    "Good luck with it!", "That makes sense."]
UNANSWERABLE = ["What is the user's blood type?", "What is the name of the user's boat?",
                "Which instrument did the user's grandfather play?", "What is the user's passport number?"]


def generate_user(rng: np.random.Generator, sessions: int, turns: int, t0: float):
    """Messages [(text, role, ts)], questions [(question, evidence indices, kind)]."""
    msgs: list[tuple[str, str, float]] = []
    latest: dict[str, int] = {}
    changes = {s: sorted(rng.choice(np.arange(1, sessions), size=int(rng.integers(1, 3)), replace=False).tolist())
               for s in SLOTS}
    current = {s: str(rng.choice(v[0])) for s, v in SLOTS.items()}
    events = [(tpl, str(rng.choice(vals)), q, int(rng.integers(sessions))) for tpl, vals, q in EVENTS]
    event_idx: dict[str, int] = {}
    for s in range(sessions):
        ts = t0 + s * 3 * DAY
        plan: list[tuple[str, str | None]] = []
        for slot, (vals, tpls, _) in SLOTS.items():
            if s == 0 or s in changes[slot]:
                if s > 0:
                    current[slot] = str(rng.choice([v for v in vals if v != current[slot]]))
                plan.append((str(rng.choice(tpls)).format(v=current[slot]), slot))
        for tpl, v, q, when in events:
            if when == s:
                plan.append((tpl.format(v=v), "event:" + q))
        for _ in range(2):
            d = str(rng.choice(DISTRACT))
            plan.append((d.format(city=rng.choice(SLOTS["city"][0]), job=rng.choice(SLOTS["job"][0]),
                                  food=rng.choice(SLOTS["food"][0]), car=rng.choice(SLOTS["car"][0]),
                                  hobby=rng.choice(SLOTS["hobby"][0])), None))
        while len(plan) < turns // 2:
            plan.append((str(rng.choice(FILLER_USER)), None))
        rng.shuffle(plan)
        for text, tag in plan:
            msgs.append((text, "user", ts))
            if tag is not None and tag.startswith("event:"):
                event_idx[tag[6:]] = len(msgs) - 1
            elif tag is not None:
                latest[tag] = len(msgs) - 1
            ts += 60
            msgs.append((str(rng.choice(FILLER_ASSISTANT)), "assistant", ts))
            ts += 60
    questions = [(SLOTS[s][2], [i], "current") for s, i in latest.items()]
    questions += [(q, [i], "event") for q, i in event_idx.items()]
    questions += [(q, [], "unanswerable") for q in UNANSWERABLE]
    return msgs, questions


def bench_retrieval(quick: bool, tmp: Path) -> dict:
    rng = np.random.default_rng(7)
    users, sessions, turns = (3, 8, 12) if quick else (6, 16, 12)
    emb = default_embedder()
    mem_path = tmp / "conv.db"
    per_mode = {m: {"r5": [], "r10": [], "mrr": []} for m in MODES}
    per_kind: dict[str, dict[str, list[float]]] = {}
    abst = {"unanswerable": [], "answerable": []}
    n_msgs = 0
    t_add = 0.0
    for u in range(users):
        msgs, questions = generate_user(rng, sessions, turns, 1_760_000_000.0)
        n_msgs += len(msgs)
        mem = Memory(mem_path, namespace=f"user{u}", embedder=emb)
        ids: list[str] = []
        t = time.perf_counter()
        for s in range(0, len(msgs), turns):  # one session per add() call
            chunk = msgs[s : s + turns]
            ids += mem.add([{"role": r, "content": x, "timestamp": ts} for x, r, ts in chunk])
        t_add += time.perf_counter() - t
        now = msgs[-1][2]
        for q, ev, kind in questions:
            if kind == "unanswerable":
                mem.abstain_below = 0.2
                abst["unanswerable"].append(mem.search(q, k=5, now=now, track_use=False).abstained)
                continue
            mem.abstain_below = 0.2
            abst["answerable"].append(mem.search(q, k=5, now=now, track_use=False).abstained)
            mem.abstain_below = -1.0  # recall is measured without abstention
            evidence = {ids[i] for i in ev}
            for mode in MODES:
                got = [h["id"] for h in mem.search(q, k=10, mode=mode, now=now, track_use=False)]
                r5 = len(evidence & set(got[:5])) / len(evidence)
                r10 = len(evidence & set(got[:10])) / len(evidence)
                per_mode[mode]["r5"].append(r5)
                per_mode[mode]["r10"].append(r10)
                per_mode[mode]["mrr"].append(next((1 / (i + 1) for i, g in enumerate(got) if g in evidence), 0.0))
                per_kind.setdefault(f"{mode}/{kind}", []).append(r5)
        stats = mem.stats()
        mem.close()
    table = {m: {"recall@5": float(np.mean(v["r5"])), "recall@10": float(np.mean(v["r10"])),
                 "mrr@10": float(np.mean(v["mrr"]))} for m, v in per_mode.items()}
    return {
        "users": users, "sessions_per_user": sessions, "messages": n_msgs,
        "questions_answerable": len(per_mode["bm25"]["r5"]), "questions_unanswerable": len(abst["unanswerable"]),
        "table": table, "recall@5_by_question_kind": {k: float(np.mean(v)) for k, v in per_kind.items()},
        "abstention": {"on_unanswerable": float(np.mean(abst["unanswerable"])),
                       "on_answerable": float(np.mean(abst["answerable"]))},
        "add_seconds_with_organisation": t_add, "messages_per_s_with_organisation": n_msgs / t_add,
        "last_user_stats": stats,
    }


# -- 2. speed ---------------------------------------------------------------------------------------------
_SYL = ["ka", "lo", "mi", "ne", "ru", "ta", "vi", "so", "pe", "da", "gu", "fi", "ho", "ze", "bo", "wa"]


def _vocab(n: int) -> list[str]:
    """n distinct pseudo-words (2-4 syllables)."""
    rng = np.random.default_rng(123)
    words: dict[str, None] = {}
    while len(words) < n:
        words["".join(rng.choice(_SYL, size=int(rng.integers(2, 5))))] = None
    return list(words)


VOCAB = _vocab(20_000)


def _zipf_words(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Word indices with Zipf's law (s = 1.1) over the vocabulary, as in natural text."""
    ranks = np.arange(1, len(VOCAB) + 1)
    p = ranks ** -1.1
    return rng.choice(len(VOCAB), size=shape, p=p / p.sum())


def synthetic_texts(n: int, rng: np.random.Generator) -> list[str]:
    """Notes of 12 words drawn from a 20k-word Zipfian vocabulary (common words are in many notes)."""
    idx = _zipf_words(rng, (n, 12))
    return [f"note {i}: " + " ".join(VOCAB[j] for j in row) for i, row in enumerate(idx)]


def _latency(mem: Memory, queries: list[str], mode: str, **kw) -> dict:
    wall, cpu = [], []
    for q in queries:
        t, c = time.perf_counter(), time.process_time()
        mem.search(q, k=10, mode=mode, track_use=False, **kw)
        wall.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    return {"p50_ms": float(np.percentile(wall, 50)), "p95_ms": float(np.percentile(wall, 95)),
            "cpu_p50_ms": float(np.percentile(cpu, 50)), "cpu_p95_ms": float(np.percentile(cpu, 95))}


def bench_speed(quick: bool, tmp: Path) -> dict:
    rng = np.random.default_rng(0)
    sizes = [10_000] if quick else [10_000, 100_000]
    out: dict = {"store": {}, "embedder": "hash-384 (synthetic vectors) for the store scale test",
                 "latency_note": "p50/p95 = wall clock (includes waiting for a CPU on the shared machine); "
                                 "cpu_* = CPU time of the search itself"}
    for n in sizes:
        path = tmp / f"speed{n}.db"
        mem = Memory(path, namespace="speed", embedder=HashEmbedder(), organise=False)
        texts = synthetic_texts(n, rng)
        t = time.perf_counter()
        for s in range(0, n, 1000):
            mem.add(texts[s : s + 1000], timestamp=1_760_000_000.0 + s)
        add_s = time.perf_counter() - t
        t = time.perf_counter()
        mem.search("first query", k=10, mode="hybrid", track_use=False)  # builds the BM25 and vector indexes
        first = time.perf_counter() - t
        queries = [" ".join(VOCAB[j] for j in row) for row in _zipf_words(rng, (200, 3))]
        lat: dict[str, dict] = {}
        for mode in ("bm25", "dense", "hybrid", "reliable"):
            lat[mode] = _latency(mem, queries, mode)
        lat["hybrid+time_filter"] = _latency(mem, queries[:50], "hybrid",
                                             time_range=(1_760_000_000.0, 1_760_000_000.0 + n / 2))
        # dense recall of the index against exact search
        vi = mem.store._indexes[("speed", "message")]
        rows = mem.store.db.execute("SELECT rid, vec FROM items WHERE namespace = 'speed'").fetchall()
        allv = np.stack([np.frombuffer(v, dtype=np.float32) for _, v in rows])
        rec = []
        for q in queries[:50]:
            qv = mem.embedder.encode([q])[0]
            tenth = np.sort(allv @ qv)[-10]  # tie-aware: a hit counts if it scores as well as the exact 10th
            dist, _ = vi.search(qv.reshape(1, -1), 10)
            rec.append(float(np.mean(dist[0] >= tenth - 1e-6)))
        del allv
        index_kind = f"IVF (nprobe {store_sqlite.NPROBE} of {vi.index.nlist} cells)" if vi.is_ivf else "exact (flat)"
        mem.close()
        fts5 = Memory(path, namespace="speed", embedder=HashEmbedder(), organise=False, lexical="fts5")
        fts5.search("first query", k=10, mode="dense", track_use=False)
        lat_fts5 = {"bm25": _latency(fts5, queries[:50], "bm25"), "hybrid": _latency(fts5, queries[:50], "hybrid")}
        fts5.close()
        t = time.perf_counter()
        mem = Memory(path, namespace="speed", embedder=HashEmbedder(), organise=False)
        mem.search("first query", k=10, mode="hybrid", track_use=False)
        reopen = time.perf_counter() - t
        mem.close()
        out["store"][str(n)] = {"add_items_per_s": n / add_s, "add_seconds": add_s, "latency": lat,
                                "latency_with_fts5_bm25 (50 queries)": lat_fts5,
                                "vector_index": index_kind, "dense_recall@10_vs_exact": float(np.mean(rec)),
                                "first_search_s (index build)": first, "reopen_and_first_search_s": reopen,
                                "db_mb": path.stat().st_size / 1e6}
    # MiniLM itself: add throughput (embedding + store) and query-encoding latency
    emb = default_embedder()
    n = 200 if quick else 500
    texts = [f"{t} (variant {i})" for i, t in enumerate(synthetic_texts(n, rng))]
    mem = Memory(tmp / "minilm.db", namespace="m", embedder=emb, organise=False)
    t = time.perf_counter()
    for s in range(0, n, 100):
        mem.add(texts[s : s + 100])
    minilm_add = n / (time.perf_counter() - t)
    enc = []
    for i in range(50):
        t = time.perf_counter()
        emb.inner.encode([f"a fresh query number {i} about rivers"])
        enc.append((time.perf_counter() - t) * 1000)
    mem.close()
    out["minilm"] = {"add_items_per_s": minilm_add, "items": n,
                     "query_encode_p50_ms": float(np.percentile(enc, 50)),
                     "query_encode_p95_ms": float(np.percentile(enc, 95))}
    return out


# -- 3. durability ----------------------------------------------------------------------------------------
WRITER = r"""
import sys
sys.path.insert(0, sys.argv[5])
from keel.memory import HashEmbedder, Memory
path, tag, n, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
m = Memory(path, namespace="shared", embedder=HashEmbedder(), organise=False)
for start in range(0, n, batch):
    ids = m.add([f"{tag} item {i} says hello" for i in range(start, min(n, start + batch))])
    print(" ".join(ids), flush=True)
m.close()
"""


def _writer(path: Path, tag: str, n: int, batch: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path), tag, str(n), str(batch), str(ROOT)],
                            stdout=subprocess.PIPE, text=True)


def bench_durability(quick: bool, tmp: Path) -> dict:
    rng = np.random.default_rng(1)
    trials = []
    for trial in range(2 if quick else 3):
        path = tmp / f"kill{trial}.db"
        proc = _writer(path, "w", 1_000_000, 50)
        acked: list[str] = []
        stop_after = float(rng.uniform(2.0, 5.0))
        t0 = time.time()
        while time.time() - t0 < stop_after:
            line = proc.stdout.readline()
            if not line:
                break
            acked += line.split()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        con = sqlite3.connect(path)
        integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
        con.close()
        mem = Memory(path, namespace="shared", embedder=HashEmbedder(), organise=False)
        readable = len(mem.store.get("shared", acked))
        stored = mem.stats()["items"]
        searchable = bool(acked) and mem.search("w item 3 says hello", k=1, mode="dense")[0]["text"] == \
            "w item 3 says hello"
        mem.close()
        trials.append({"killed_after_s": stop_after, "acknowledged": len(acked), "readable": readable,
                       "stored": stored, "integrity": integrity, "searchable": searchable})
    path = tmp / "multi.db"
    Memory(path, namespace="shared", embedder=HashEmbedder()).close()
    procs = [_writer(path, f"p{j}", 500, 10) for j in range(4)]
    t = time.perf_counter()
    outs = [p.communicate(timeout=600)[0] for p in procs]
    multi_s = time.perf_counter() - t
    acked = [i for o in outs for i in o.split()]
    mem = Memory(path, namespace="shared", embedder=HashEmbedder(), organise=False)
    multi = {"processes": 4, "acknowledged": len(acked), "readable": len(mem.store.get("shared", acked)),
             "stored": mem.stats()["items"], "integrity": mem.store.integrity(), "seconds": multi_s,
             "returncodes": [p.returncode for p in procs]}
    mem.close()
    return {"sigkill_trials": trials, "multi_process": multi}


# -- 4. bad input -----------------------------------------------------------------------------------------
def _import_bad(mem: Memory, path: Path) -> None:
    path.write_text('{"text": "a fine line"}\n{oops\n')
    mem.import_(path)


def bench_bad_input(tmp: Path) -> dict:
    path = tmp / "bad.db"
    mem = Memory(path, namespace="alice", embedder=HashEmbedder(), max_chars=100_000)
    mem.add(["a message worth keeping", "another one"])
    before = mem.stats()["items"]
    other_id = Memory(path, namespace="bob", embedder=HashEmbedder()).add("bob's note")[0]
    corrupt = tmp / "corrupt.db"
    corrupt.write_bytes(os.urandom(64 * 1024))
    cases = {
        "empty text": lambda: mem.add(""),
        "whitespace text": lambda: mem.add("  \n "),
        "huge text (1M chars)": lambda: mem.add("x" * 1_000_000),
        "non-string text": lambda: mem.add([123]),
        "unknown filter": lambda: mem.search("keeping", filters={"colour": "red"}),
        "bad filter value": lambda: mem.search("keeping", filters={"source": [{"x": 1}]}),
        "inverted time range": lambda: mem.search("keeping", time_range=(10, 1)),
        "bad k": lambda: mem.search("keeping", k=-1),
        "unknown mode": lambda: mem.search("keeping", mode="psychic"),
        "wrong namespace (get another user's id)": lambda: mem.get(other_id),
        "wrong namespace (delete another user's id)": lambda: mem.delete(other_id),
        "invalid namespace name": lambda: Memory(path, namespace="../../etc", embedder=HashEmbedder()),
        "corrupt file": lambda: Memory(corrupt, embedder=HashEmbedder()),
        "wrong embedder for the file": lambda: Memory(path, embedder=HashEmbedder(64)),
        "metadata not JSON": lambda: mem.add("ok", metadata={"x": {1, 2}}),
        "import file with a bad line": lambda: _import_bad(mem, tmp / "bad.jsonl"),
    }
    results = {}
    for name, fn in cases.items():
        try:
            fn()
            results[name] = {"clear_error": False, "message": "accepted"}
        except KeelError as e:
            results[name] = {"clear_error": True, "message": str(e).splitlines()[0][:160]}
        except Exception as e:  # a traceback-class failure: counted as not met
            results[name] = {"clear_error": False, "message": f"{type(e).__name__}: {e}"[:160]}
    intact = mem.stats()["items"] == before and mem.store.integrity() == "ok"
    mem.close()
    return {"cases": results, "store_intact": intact, "corrupt_file_untouched": corrupt.stat().st_size == 64 * 1024}


# -- 5. PAHF ------------------------------------------------------------------------------------------------
def bench_pahf(quick: bool, tmp: Path) -> dict:
    from keel.memory.pahf import run_protocol

    return run_protocol(tmp / "pahf.db", embedder=default_embedder(), users=2 if quick else 4,
                        train_episodes=24 if quick else 36, test_episodes=16 if quick else 24)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small sizes (10k only, fewer users)")
    ap.add_argument("--only", default="retrieval,speed,durability,bad_input,pahf")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out_path = ROOT / "benchmarks" / "results" / "memory.json"
    result: dict = json.loads(out_path.read_text()) if out_path.exists() and args.only != ap.get_default("only") \
        else {}
    result.update({"quick": args.quick, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   "notes": "Measured on a 2-core machine shared with other jobs (1-minute load average "
                            f"{os.getloadavg()[0]:.1f} when the parts {args.only} started): latencies and "
                            "throughputs are noisy. The 100k store test uses "
                            "hashing-embedder vectors (synthetic); MiniLM throughput is measured separately."})
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for part in args.only.split(","):
            t = time.perf_counter()
            print(f"== {part}", flush=True)
            if part == "retrieval":
                result["retrieval"] = bench_retrieval(args.quick, tmp)
            elif part == "speed":
                result["speed"] = bench_speed(args.quick, tmp)
            elif part == "durability":
                result["durability"] = bench_durability(args.quick, tmp)
            elif part == "bad_input":
                result["bad_input"] = bench_bad_input(tmp)
            elif part == "pahf":
                result["pahf"] = bench_pahf(args.quick, tmp)
            print(json.dumps(result.get(part), indent=1, default=str)[:3000], flush=True)
            print(f"   ({time.perf_counter() - t:.0f} s)", flush=True)
    result["goals"] = goals(result)
    atomic_write_json(out_path, result)
    print_tables(result)


def goals(r: dict) -> list[dict]:
    g = []
    speed = r.get("speed", {}).get("store", {})
    big = speed.get("100000") or speed.get("10000")
    if big:
        n = "100000" if "100000" in speed else "10000"
        for mode in ("hybrid", "reliable", "dense", "bm25"):
            for key, what in (("p95_ms", "wall clock"), ("cpu_p95_ms", "CPU time")):
                v = big["latency"][mode][key]
                g.append({"name": f"{mode} search p95 at {n} items ({what}; hash-embedded query)", "value": v,
                          "target": 20, "unit": "ms", "met": v < 20 and n == "100000"})
        p95 = big["latency"]["hybrid"]["p95_ms"]
        if "minilm" in r.get("speed", {}):
            total = p95 + r["speed"]["minilm"]["query_encode_p95_ms"]
            g.append({"name": f"hybrid search p95 at {n} items including MiniLM query encoding", "value": total,
                      "target": 20, "unit": "ms", "met": total < 20 and n == "100000"})
    dur = r.get("durability")
    if dur:
        ok = all(x["readable"] == x["acknowledged"] and x["integrity"] == "ok" for x in dur["sigkill_trials"])
        g.append({"name": "SIGKILL mid bulk add: every acknowledged item readable, integrity ok",
                  "value": sum(x["readable"] for x in dur["sigkill_trials"]),
                  "target": sum(x["acknowledged"] for x in dur["sigkill_trials"]), "unit": "items", "met": ok})
        m = dur["multi_process"]
        g.append({"name": "4 concurrent writer processes lose nothing", "value": m["readable"],
                  "target": m["acknowledged"], "unit": "items",
                  "met": m["readable"] == m["acknowledged"] == 2000 and m["integrity"] == "ok"})
    bad = r.get("bad_input")
    if bad:
        n_ok = sum(c["clear_error"] for c in bad["cases"].values())
        g.append({"name": "bad input: clear error for every case, store intact", "value": n_ok,
                  "target": len(bad["cases"]), "unit": "cases",
                  "met": n_ok == len(bad["cases"]) and bad["store_intact"] and bad["corrupt_file_untouched"]})
    pahf = r.get("pahf")
    if pahf:
        t = pahf["table"]
        others = {a: t[a]["success overall"] for a in t if a != "pahf"}
        g.append({"name": "PAHF overall success ahead of no-memory, pre-only and post-only",
                  "value": t["pahf"]["success overall"], "target": max(others.values()), "unit": "success rate",
                  "met": pahf["pahf_ahead"]})
    return g


def print_tables(r: dict) -> None:
    if "retrieval" in r:
        print("\nretrieval (evidence recall)        @5      @10     MRR@10")
        for m, v in r["retrieval"]["table"].items():
            print(f"  {m:28s} {v['recall@5']:.3f}   {v['recall@10']:.3f}   {v.get('mrr@10', float('nan')):.3f}")
    if "speed" in r:
        print("\nspeed (ms: wall p50/p95 | cpu p95)   add items/s   bm25            dense           hybrid"
              "          reliable")
        for n, v in r["speed"]["store"].items():
            cells = "  ".join(f"{v['latency'][m]['p50_ms']:5.1f}/{v['latency'][m]['p95_ms']:5.1f}|"
                              f"{v['latency'][m]['cpu_p95_ms']:4.1f}" for m in ("bm25", "dense", "hybrid", "reliable"))
            print(f"  {n:>8s} items {v['add_items_per_s']:22.0f}   {cells}")
    if "pahf" in r:
        print("\nPAHF success per phase")
        for a, row in r["pahf"]["table"].items():
            print(f"  {a:10s} " + "  ".join(f"{v:.2f}" for k, v in row.items() if k.startswith("success")))
    print("\ngoals")
    for goal in r.get("goals", []):
        print(f"  [{'met' if goal['met'] else 'NOT met'}] {goal['name']}: {goal['value']:.4g} (target {goal['target']:.4g})")


if __name__ == "__main__":
    main()
