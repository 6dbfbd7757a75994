"""`keel memory add|search|stats|export|import`: a memory file (or PostgreSQL URL) from the shell."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from keel.cliutil import JSON_HELP, console, emit
from keel.errors import KeelError

app = typer.Typer(help="Long-term agent memory: add, search, inspect, export and import.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
DbOpt = Annotated[str, typer.Option("--db", envvar="KEEL_MEMORY", help="Memory file, or a postgresql:// URL")]
NsOpt = Annotated[str, typer.Option("--namespace", "-n", help="Whose memory (one namespace per user)")]
EmbOpt = Annotated[str, typer.Option(help="Embedder: auto (the one the store was made with), minilm or hash")]


def _open(db: str, namespace: str, embedder: str, must_exist: bool = False, organise: bool = True):
    from keel.memory.embedder import HashEmbedder, default_embedder
    from keel.memory.memory import Memory

    is_url = db.startswith(("postgresql://", "postgres://"))
    if must_exist and not is_url and not Path(db).exists():
        raise KeelError(f"no memory at {db}; add something first (keel memory add ...) or pass --db")
    if embedder == "auto":
        embedder = _stored_embedder(db) if not is_url else "minilm"
    if embedder in ("minilm", "all-MiniLM-L6-v2"):
        emb = default_embedder()
    elif embedder == "hash" or embedder.startswith("hash-"):
        emb = HashEmbedder(_hash_dim(embedder))
    else:
        raise KeelError(f"unknown embedder {embedder!r}; use auto, minilm or hash")
    return Memory(db, namespace=namespace, embedder=emb, organise=organise)


def _hash_dim(name: str) -> int:
    """The dimension in `hash-N` (384 for plain `hash`), a whole number from 2 to 65536."""
    dim = name.removeprefix("hash-") if name != "hash" else "384"
    if not dim.isdigit() or not 2 <= int(dim) <= 65536:
        raise KeelError(f"embedder {name!r}: hash-N needs a dimension N from 2 to 65536 (e.g. hash-384)")
    return int(dim)


def _stored_embedder(db: str) -> str:
    import sqlite3

    if not Path(db).is_file():
        return "minilm"
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        row = con.execute("SELECT value FROM meta WHERE key = 'embedder'").fetchone()
        con.close()
    except sqlite3.DatabaseError as e:
        raise KeelError(f"{db} is not a readable Keel memory ({e}); restore it or choose another --db") from None
    return row[0] if row else "minilm"


def _known_namespace(mem) -> None:
    known = mem.namespaces()
    if known and mem.namespace not in known:
        # name only the one asked for: other namespaces are other users' and not this caller's business
        raise KeelError(f"namespace {mem.namespace!r} has no memories here; check --namespace")


def _parse_filters(items: list[str] | None) -> dict[str, Any]:
    out: dict[str, list[Any]] = {}
    for item in items or []:
        if "=" not in item:
            raise KeelError(f"filter {item!r} must look like key=value (e.g. source=user, metadata.topic=travel)")
        key, value = item.split("=", 1)
        try:
            v = json.loads(value)
        except json.JSONDecodeError:
            v = value
        out.setdefault(key.strip(), []).append(v)
    return out


@app.command()
def add(
    text: Annotated[str, typer.Argument(help="The text to remember")],
    source: Annotated[str, typer.Option(help="Who said it (credibility comes from this)")] = "user",
    timestamp: Annotated[str | None, typer.Option(help="When (ISO 8601 or seconds); default now")] = None,
    metadata: Annotated[str | None, typer.Option(help="Metadata as a JSON object")] = None,
    modality: Annotated[str, typer.Option(help="text, image-caption, ...")] = "text",
    db: DbOpt = "memory.db",
    namespace: NsOpt = "default",
    embedder: EmbOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Remember TEXT."""
    md = None
    if metadata is not None:
        try:
            md = json.loads(metadata)
        except json.JSONDecodeError as e:
            raise KeelError(f"--metadata is not JSON ({e.msg}); e.g. --metadata '{{\"topic\": \"travel\"}}'") from None
    ts: Any = timestamp
    if timestamp is not None:
        try:
            ts = float(timestamp)
        except ValueError:
            ts = timestamp
    with _open(db, namespace, embedder) as mem:
        ids = mem.add(text, source=source, timestamp=ts, modality=modality, metadata=md)
        emit({"id": ids[0], "namespace": namespace, "db": db}, as_json, title="added")


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for")],
    k: Annotated[int, typer.Option("-k", help="How many hits")] = 5,
    mode: Annotated[str, typer.Option(help="bm25, dense, hybrid, reliable or hierarchical")] = "reliable",
    filter_: Annotated[list[str] | None, typer.Option("--filter", help="key=value; repeat to combine")] = None,
    since: Annotated[str | None, typer.Option(help="Only items at or after this time")] = None,
    until: Annotated[str | None, typer.Option(help="Only items at or before this time")] = None,
    db: DbOpt = "memory.db",
    namespace: NsOpt = "default",
    embedder: EmbOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Search memory: hybrid BM25 + dense retrieval weighted by reliability (abstains on weak support)."""
    with _open(db, namespace, embedder, must_exist=True) as mem:
        _known_namespace(mem)
        tr = None if since is None and until is None else (since, until)
        hits = mem.search(query, k=k, filters=_parse_filters(filter_), time_range=tr, mode=mode)
        slim = [{key: h[key] for key in ("id", "text", "score", "reliability", "source", "ts", "metadata")}
                for h in hits]
        result = {"query": query, "mode": mode, "abstained": hits.abstained, "support": hits.support, "hits": slim}
        if as_json:
            emit(result, True)
            return
        if hits.abstained:
            console.print(f"[yellow]abstained[/]: best support {hits.support:.3f} is below the threshold",
                          markup=True)
        for i, h in enumerate(slim, 1):
            console.print(f"{i}. [bold]{h['score']:.4f}[/] (reliability {h['reliability']:.2f}) {escape(h['text'])}",
                          markup=True)


@app.command()
def stats(db: DbOpt = "memory.db", namespace: NsOpt = "default", embedder: EmbOpt = "auto",
          as_json: JsonOpt = False) -> None:
    """Counts of messages, episodes, facts and themes by state."""
    with _open(db, namespace, embedder, must_exist=True) as mem:
        _known_namespace(mem)
        out = mem.stats()
        out["namespaces"] = len(mem.namespaces())
        emit(out, as_json, title=f"memory {db}")


@app.command("export")
def export_(
    path: Annotated[str, typer.Argument(help="Output .jsonl file")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite PATH if it exists")] = False,
    db: DbOpt = "memory.db",
    namespace: NsOpt = "default",
    embedder: EmbOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Write a namespace (all items, with history) as JSON lines (atomically: PATH is whole or untouched)."""
    _check_export_target(path, db, force)
    with _open(db, namespace, embedder, must_exist=True) as mem:
        _known_namespace(mem)
        try:
            n = mem.export(path)
        except KeelError:  # keel.io's UnwritableError already says what went wrong
            raise
        except OSError as e:
            raise KeelError(f"cannot write {path}: {e.strerror or e}; choose another output path") from None
        emit({"exported": n, "path": path, "namespace": namespace}, as_json)


def _check_export_target(path: str, db: str, force: bool) -> None:
    """Never let an export replace the memory it reads (or its WAL, shared memory or index files), a
    folder, or any existing file unless --force says so."""
    out = Path(path)
    if not db.startswith(("postgresql://", "postgres://")):
        store = Path(db).resolve()
        own = {store, *(store.with_name(store.name + s) for s in ("-wal", "-shm", "-journal", ".vec"))}
        if out.resolve() in own or (out.exists() and store.exists() and out.samefile(store)):
            raise KeelError(f"{path} is the memory database itself; export to a new .jsonl file")
        if store.with_name(store.name + ".vec") in out.resolve().parents:
            raise KeelError(f"{path} is inside the memory's index folder; export to a new .jsonl file")
    if out.is_dir():
        raise KeelError(f"{path} is a folder; give the path of a .jsonl file to write")
    if out.exists() and not force:
        raise KeelError(f"{path} already exists; pass --force to overwrite it, or choose a new path")


@app.command("import")
def import_(
    path: Annotated[str, typer.Argument(help="A .jsonl file written by export")],
    db: DbOpt = "memory.db",
    namespace: NsOpt = "default",
    embedder: EmbOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Read a JSON-lines export into a namespace (all lines or none)."""
    with _open(db, namespace, embedder, organise=False) as mem:
        emit({"imported": mem.import_(path), "path": path, "namespace": namespace}, as_json)
