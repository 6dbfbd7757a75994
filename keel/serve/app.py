"""The dashboard's routes: HTML pages (Jinja2 templates, plain JS + Plotly) over a JSON API.

Read-only: nothing here writes into `--runs` (SQLite is opened with mode=ro, memory searches pass
track_use=False). Every file served is named by the code, under a run found by `paths.RunsRoot`.
"""

from __future__ import annotations

import html
import json
import sys
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from keel.errors import KeelError
from keel.serve import campaign, views
from keel.serve.index import RunsIndex, read_row
from keel.serve.memory_view import MemoryBrowser
from keel.serve.metrics import read_metrics
from keel.serve.paths import Refused, RunsRoot

HERE = Path(__file__).parent
# Stored reports are our own HTML, but shown under a policy that runs no script and loads nothing.
REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox"


def create_app(runs_dir: str | Path, memory: str | None = None, memory_embedder: str = "minilm") -> FastAPI:
    root = RunsRoot(runs_dir)
    index = RunsIndex(root)
    index.warm_up()
    browser = MemoryBrowser(memory, memory_embedder) if memory else None
    app = FastAPI(title="Keel", docs_url=None, redoc_url=None, openapi_url=None)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    def page(request: Request, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        ctx.setdefault("memory", browser is not None)
        return templates.TemplateResponse(request, name, {"runs_dir": str(root.root), **ctx}, status_code=status)

    @app.exception_handler(Refused)
    async def refused(request: Request, e: Refused):
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": e.message}, status_code=e.status)
        return page(request, "error.html", status=e.status, message=e.message, code=e.status)

    @app.exception_handler(KeelError)
    async def keel_error(request: Request, e: KeelError):
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": str(e)}, status_code=400)
        return page(request, "error.html", status=400, message=str(e), code=400)

    @app.exception_handler(OSError)
    async def unreadable(request: Request, e: OSError):
        name = Path(e.filename).name if isinstance(e.filename, str) else "a file"
        message = f"cannot read {name} ({e.strerror or e}); the run directory may be damaged"
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": message}, status_code=422)
        return page(request, "error.html", status=422, message=message, code=422)

    # -- pages ------------------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse)
    def runs_page(request: Request):
        return page(request, "runs.html")

    @app.get("/run/{name}", response_class=HTMLResponse)
    def run_page(request: Request, name: str):
        d = root.run_dir(name)
        row = read_row(d)
        cfg_text = (d / "config.yaml").read_text(encoding="utf-8", errors="replace")
        summary_text = _pretty_json(d / "summary.json")
        return page(request, "run.html", run=row, config_text=cfg_text, summary_text=summary_text,
                    is_spec=row["kind"] == "spec_rl")

    @app.get("/compare", response_class=HTMLResponse)
    def compare_page(request: Request, a: str, b: str):
        da, db = root.run_dir(a), root.run_dir(b)
        ra, rb = read_row(da), read_row(db)
        rows = views.config_diff(_yaml(da / "config.yaml"), _yaml(db / "config.yaml"))
        return page(request, "compare.html", a=ra, b=rb, rows=rows,
                    differing=sum(r["differs"] for r in rows))

    @app.get("/run/{name}/episode/{episode_id}", response_class=HTMLResponse)
    def episode_page(request: Request, name: str, episode_id: int):
        db = root.run_file(name, "campaign.sqlite")
        ep = campaign.episode(db, db.parent / "audit.jsonl", episode_id)
        return page(request, "episode.html", run_name=name, ep=ep)

    @app.get("/memory", response_class=HTMLResponse)
    def memory_page(request: Request):
        return page(request, "memory.html", location=browser.location if browser else None)

    # -- files a run holds (fixed names) ------------------------------------------------------------
    @app.get("/run/{name}/report.html")
    def report_file(name: str):
        return FileResponse(root.run_file(name, "report.html"), media_type="text/html",
                            headers={"Content-Security-Policy": REPORT_CSP})

    @app.get("/run/{name}/safety_card.html")
    def safety_file(name: str):
        return FileResponse(root.run_file(name, "safety_card.html"), media_type="text/html",
                            headers={"Content-Security-Policy": REPORT_CSP})

    @app.get("/run/{name}/spec", response_class=HTMLResponse)
    def spec_fragment(name: str):
        d = root.run_dir(name)
        cfg = _yaml(d / "config.yaml")
        parts = []
        if isinstance(cfg.get("formula"), str):
            parts.append(f"<h3>Automaton of {html.escape(cfg['formula'])}</h3>{views.automaton_figure(cfg['formula'])}")
        try:
            sections = views.spec_sections(d)
        except KeelError as e:
            sections = [("Greedy trajectory", f"<p class='note'>{html.escape(str(e))}</p>")]
        for title, body in sections:
            if title.startswith("Automaton"):
                continue  # drawn above from the formula
            parts.append(f"<h3>{html.escape(title)}</h3>{body}")
        return HTMLResponse("".join(parts))

    @app.get("/static-lib/plotly.min.js")
    def plotly_js():
        import plotly

        f = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
        return FileResponse(f, media_type="application/javascript", headers={"Cache-Control": "max-age=86400"})

    # -- JSON API ---------------------------------------------------------------------------------
    @app.get("/api/runs")
    def api_runs():
        return _json({"runs_dir": str(root.root), "runs": index.rows()})

    @app.get("/api/runs/{name}/metrics")
    def api_metrics(name: str, offset: int = 0):
        d = root.run_dir(name)
        out = read_metrics(d / "metrics.jsonl", offset)
        row = read_row(d)
        out.update(status=row["status"], problems=row["problems"])
        return _json(out)

    @app.get("/api/runs/{name}/campaign")
    def api_campaign(name: str):
        return campaign.summary(root.run_file(name, "campaign.sqlite"))

    def need_memory() -> MemoryBrowser:
        if browser is None:
            raise Refused(404, "no memory given: start with `keel serve --memory FILE.db` (or a postgresql:// URL)")
        return browser

    @app.get("/api/memory/namespaces")
    def api_namespaces():
        return {"location": need_memory().location, "namespaces": need_memory().namespaces()}

    @app.get("/api/memory/items")
    def api_items(ns: str, offset: int = 0, limit: int = 50, text: str = ""):
        return need_memory().items(ns, max(0, offset), min(max(1, limit), 500), text)

    @app.get("/api/memory/item")
    def api_item(ns: str, id: str):  # noqa: A002 - the query parameter's name
        return need_memory().item(ns, id)

    @app.get("/api/memory/search")
    def api_search(ns: str, q: str, k: int = 5):
        return need_memory().search(ns, q, min(max(1, k), 50))

    @app.get("/favicon.ico")
    def favicon():
        return Response(status_code=204)

    app.state.memory_browser = browser
    return app


def _json(obj: Any) -> Response:
    """Plain dicts and lists straight to JSON (FastAPI's generic encoder costs ~6x more on the runs table)."""
    return Response(json.dumps(obj, allow_nan=False, default=str), media_type="application/json")


def _yaml(p: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        raise Refused(422, f"{p.parent.name}/config.yaml is not valid YAML") from None
    return data if isinstance(data, dict) else {}


def _pretty_json(p: Path) -> str | None:
    if not p.is_file():
        return None
    text = p.read_text(encoding="utf-8", errors="replace")
    try:
        return json.dumps(json.loads(text), indent=2, sort_keys=True)
    except json.JSONDecodeError:
        return f"(summary.json is not valid JSON; the file as stored:)\n{text[:4000]}"


def serve(runs_dir: str, host: str = "127.0.0.1", port: int = 8765, memory: str | None = None,
          memory_embedder: str = "minilm", quiet: bool = False) -> None:
    import uvicorn

    if not Path(runs_dir).is_dir():
        raise KeelError(f"--runs {runs_dir}: no such folder (train something first, or point at your runs folder)")
    app = create_app(runs_dir, memory, memory_embedder)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {host}: anyone who can reach this address can read {runs_dir}"
              + (f" and {memory}" if memory else ""), file=sys.stderr)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning" if quiet else "info")
    finally:
        if app.state.memory_browser is not None:
            app.state.memory_browser.close()
