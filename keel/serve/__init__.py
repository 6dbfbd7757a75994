"""`keel serve`: a local, read-only web dashboard over a runs folder (and optionally a memory).

    keel serve --runs runs/ --port 8765            # http://127.0.0.1:8765

FastAPI + uvicorn serve the pages; Plotly (its bundled plotly.min.js, served locally) draws the curves.
Modules: `paths` (what may be read), `index` (the runs table), `metrics` (incremental metric reading),
`campaign` (red-team results), `memory_view` (the memory browser), `app` (routes).
"""
