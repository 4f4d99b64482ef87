"""`revprompt report`: one self-contained HTML file per run, for a client to open from an email attachment.

Two halves:

- `collect(store, run_id)` reads the run through the store's read API (`Store.query`, run-wide queries, so a
  5,000-page run is a handful of queries, not thousands) into one plain dict: the run summary, every document
  with its ranked candidates (tokens and their probabilities), key phrases and word counts, and the site-level
  tables (intent clusters, cannibalisation pairs, `keyword_matches` when that table exists), plus a table for
  every run view (core/views.py) another analyzer declares, e.g. a third-party plugin's.
- `render(data)` writes the HTML: inline CSS, inline JS, the data as one JSON blob in a
  `<script type="application/json">`, and a Content-Security-Policy that forbids every network fetch, so nothing
  is loaded at view time even if a crawled title held a URL. The run summary and the intent map are rendered
  here as static HTML/SVG (readable even where a mail previewer runs no script); the per-document views are
  rendered by the inline JS on demand from the blob (a table page of 10 documents at a time; a document's candidates,
  token shading, token bar chart, key phrases and heatmap only when it is opened), which is what keeps a
  5,000-document report fast to open.

Charts are hand-written SVG (bar charts, heatmap, scatter): a library that renders offline would either inline
~3.5 MB of plotly.js once, or (Altair + vl-convert) render one SVG per chart in Python, i.e. tens of thousands
of pre-rendered SVGs for a big run, which is both slow to build and large; the charts here are simple enough
that ~150 lines of SVG code draw them at a few hundred bytes each, only when shown.
"""

from __future__ import annotations

import html
import json
import math
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import UserError
from ..core.types import config_label
from .text import is_stopword, words

if TYPE_CHECKING:
    from ..core.store import Store

TOP_PHRASES = 15  # key phrases shown per document
TOP_WORDS = 12  # heatmap rows per document
MAX_SITE_ROWS = 20000  # cannibalisation pairs / keyword matches embedded at most
PALETTE = [
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
    "#1f77b4",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
]


# -- reading ------------------------------------------------------------------------------------------------
def _rows(store: Store, sql: str, params=None) -> list[dict]:
    cols, rows = store.query(sql, params)
    return [dict(zip(cols, r)) for r in rows]


def _columns(store: Store, table: str) -> list[str]:
    _, rows = store.query(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? AND table_schema = 'main' "
        "ORDER BY ordinal_position",
        [table],
    )
    return [r[0] for r in rows]


def resolve_run(store: Store, run_id: str | None) -> str:
    """The run to report: `run_id` (or a unique prefix of one), else the latest run."""
    if not _columns(store, "runs"):
        raise UserError(f"{store.path} holds no revprompt results (no runs table); run `revprompt analyze` first")
    if run_id is None:
        _, rows = store.query("SELECT run_id FROM runs ORDER BY created_at DESC, run_id LIMIT 1")
        if not rows:
            raise UserError(f"{store.path} holds no runs yet; run `revprompt analyze` first")
        return rows[0][0]
    _, rows = store.query("SELECT run_id FROM runs WHERE starts_with(run_id, ?) ORDER BY run_id", [run_id])
    ids = [r[0] for r in rows]
    if run_id in ids:
        return run_id
    if len(ids) == 1:
        return ids[0]
    if not ids:
        raise UserError(f'no run {run_id!r} in {store.path} (see `revprompt sql "SELECT * FROM runs"`)')
    raise UserError(f"{run_id!r} matches {len(ids)} runs ({', '.join(ids[:5])}); give more of the id")


def _num(value, digits: int = 3):
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return round(float(value), digits)


def _plain(value):
    """A value as JSON can hold it (timestamps as ISO text, floats rounded, lists kept)."""
    if isinstance(value, float):
        return _num(value, 4)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (int, str, bool)):
        return value
    return str(value)


def _word_matrix(cands: list[dict], counts: dict[int, Counter] | None) -> list:
    """[words, rows of counts per candidate] for the heatmap: from the word_frequencies rows when the document
    has them (content words only), else counted from the prompts."""
    per_word: dict[str, Counter] = defaultdict(Counter)
    if counts:
        for i, cand in enumerate(cands):
            for word, n in counts.get(cand["candidate_id"], Counter()).items():
                per_word[word][i] += n
    if not per_word:
        for i, cand in enumerate(cands):
            for word in words(cand["prompt"]):
                if not is_stopword(word):
                    per_word[word][i] += 1
    ordered = sorted(per_word, key=lambda w: (-sum(per_word[w].values()), -len(per_word[w]), w))[:TOP_WORDS]
    return [ordered, [[per_word[w].get(i, 0) for i in range(len(cands))] for w in ordered]]


def _site_table(store: Store, table: str, run_id: str, doc_ids_sql: str) -> dict | None:
    """A run-level table as {columns, rows, total}; rows of this run only (by run_id, else by doc_id);
    doc_id columns get the page's uri next to them."""
    cols = _columns(store, table)
    if not cols:
        return None
    if "run_id" in cols:
        where, params = "WHERE t.run_id = ?", [run_id]
    elif "doc_id" in cols:
        where, params = f"WHERE t.doc_id IN ({doc_ids_sql})", [run_id]
    elif "doc_id_a" in cols:
        where, params = f"WHERE t.doc_id_a IN ({doc_ids_sql})", [run_id]
    else:
        where, params = "", []
    joins, extra = [], []
    for i, c in enumerate(c for c in cols if c in ("doc_id", "doc_id_a", "doc_id_b")):
        joins.append(f'LEFT JOIN documents d{i} ON d{i}.doc_id = t."{c}"')
        extra.append(f'coalesce(d{i}.title, d{i}.uri) AS "page{c[6:]}"')  # page, page_a, page_b
    order_by = [c for c in ("similarity DESC", "keyword", "rank") if c.split()[0] in cols]
    order_sql = "ORDER BY " + ", ".join(f"t.{c}" for c in order_by) if order_by else ""
    skip = {"run_id", "embedding"}
    shown = [f't."{c}"' for c in cols if c not in skip]
    _, total = store.query(f'SELECT count(*) FROM "{table}" t {where}', params)
    c_out, rows = store.query(
        f'SELECT {", ".join(extra + shown)} FROM "{table}" t {" ".join(joins)} {where} {order_sql} '
        f"LIMIT {MAX_SITE_ROWS}",
        params,
    )
    return {"columns": c_out, "rows": [[_plain(v) for v in r] for r in rows], "total": int(total[0][0])}


OWN_SECTIONS = {"site_intent"}  # analyzers whose run views the report draws itself (intent map, cannibalisation)


def _view_tables(store: Store, run_id: str) -> list[dict]:
    """The run views (`table` kind) of the registered analyzers the report has no section of its own for, as
    {title, columns, rows, total}; a `doc_column` is kept as `doc_id`, so a click opens the page."""
    from ..core.views import analyzer_views, read_view

    out = []
    for view in analyzer_views(scope="run"):
        if view.kind != "table" or view.analyzer in OWN_SECTIONS:
            continue
        data = read_view(store, view, run_id)
        if not data.has_rows or data.problem:
            continue
        columns, headings = list(data.columns), list(data.headings)
        if view.doc_column and view.doc_column not in columns:
            columns.append(view.doc_column)
            headings.append("doc_id")
        out.append(
            {
                "title": view.title,
                "columns": headings,
                "total": len(data.rows),
                "rows": [[_plain(row.get(c)) for c in columns] for row in data.rows[:MAX_SITE_ROWS]],
            }
        )
    return out


def collect(store: Store, run_id: str | None = None) -> dict:
    """Everything the report shows for one run (the latest when `run_id` is None), as plain JSON-able data."""
    run_id = resolve_run(store, run_id)
    run = _rows(store, "SELECT * FROM runs WHERE run_id = ?", [run_id])[0]
    try:
        config = json.loads(run.get("config") or "{}")
    except (TypeError, ValueError):
        config = {}
    docs = _rows(
        store,
        """SELECT doc_id, uri, title, status, error, http_status, n_input_tokens, truncated,
                                  seconds, duplicate_of FROM documents WHERE run_id = ? ORDER BY doc_id""",
        [run_id],
    )
    cands = _rows(
        store,
        """SELECT c.doc_id, c.candidate_id, c.rank, c.prompt, c.perplexity, c.confidence, c.configs,
                                   c.top_k, c.penalty_alpha,
                                   list(t.token ORDER BY t.position) FILTER (WHERE t.token IS NOT NULL) AS tokens,
                                   list(t.prob ORDER BY t.position) FILTER (WHERE t.token IS NOT NULL) AS probs
                            FROM candidates c LEFT JOIN candidate_tokens t ON t.candidate_id = c.candidate_id
                            WHERE c.run_id = ? GROUP BY ALL ORDER BY c.doc_id, c.rank""",
        [run_id],
    )
    by_doc: dict[int, list[dict]] = defaultdict(list)
    for cand in cands:
        by_doc[cand["doc_id"]].append(cand)
    doc_ids_sql = "SELECT doc_id FROM documents WHERE run_id = ?"

    phrases: dict[int, list] = defaultdict(list)
    kp_cols = _columns(store, "key_phrases")
    if {"doc_id", "phrase"} <= set(kp_cols):
        weight = "weight" if "weight" in kp_cols else "NULL"
        maximal = "AND coalesce(maximal, true)" if "maximal" in kp_cols else ""
        for row in _rows(
            store,
            f"""SELECT doc_id, phrase, {weight} AS weight FROM key_phrases
                                   WHERE doc_id IN ({doc_ids_sql}) {maximal}
                                   QUALIFY row_number() OVER (PARTITION BY doc_id
                                       ORDER BY {weight} DESC NULLS LAST, phrase) <= {TOP_PHRASES}
                                   ORDER BY doc_id, weight DESC NULLS LAST, phrase""",
            [run_id],
        ):
            phrases[row["doc_id"]].append([row["phrase"], _num(row["weight"], 2)])

    word_counts: dict[int, dict[int, Counter]] = defaultdict(lambda: defaultdict(Counter))
    wf_cols = set(_columns(store, "word_frequencies"))
    if {"doc_id", "candidate_id", "word", "count"} <= wf_cols:
        content = "AND NOT coalesce(stopword, false)" if "stopword" in wf_cols else ""
        _, rows = store.query(
            f"""SELECT doc_id, candidate_id, word, count FROM word_frequencies
                                 WHERE doc_id IN ({doc_ids_sql}) {content}""",
            [run_id],
        )
        for doc_id, cand_id, word, count in rows:
            if word:
                word_counts[doc_id][cand_id][word] += int(count or 0)

    clusters_of: dict[int, int] = {}
    points, clusters = [], []
    ic_cols = set(_columns(store, "intent_clusters"))
    if {"doc_id", "cluster_id"} <= ic_cols:
        where = "WHERE i.run_id = ?" if "run_id" in ic_cols else f"WHERE i.doc_id IN ({doc_ids_sql})"
        xy = "i.x, i.y" if {"x", "y"} <= ic_cols else "NULL AS x, NULL AS y"
        label = "i.cluster_label" if "cluster_label" in ic_cols else "NULL"
        seen: dict[int, dict] = {}
        for row in _rows(
            store,
            f"""SELECT i.doc_id, i.cluster_id, {label} AS label, {xy}, d.uri, d.title
                                    FROM intent_clusters i LEFT JOIN documents d ON d.doc_id = i.doc_id
                                    {where} ORDER BY i.cluster_id, i.doc_id""",
            [run_id],
        ):
            cid = int(row["cluster_id"])
            clusters_of[row["doc_id"]] = cid
            cl = seen.setdefault(cid, {"id": cid, "label": row["label"] or f"cluster {cid}", "size": 0, "docs": []})
            cl["size"] += 1
            cl["docs"].append(row["doc_id"])
            if row["x"] is not None and row["y"] is not None:
                points.append([row["doc_id"], _num(row["x"], 4), _num(row["y"], 4), cid])
        clusters = sorted(seen.values(), key=lambda c: (-c["size"], c["id"]))

    out_docs = []
    for d in docs:
        cs = by_doc.get(d["doc_id"], [])
        out_docs.append(
            {
                "i": d["doc_id"],
                "u": d["uri"],
                "t": d["title"] or "",
                "s": d["status"],
                "e": d["error"],
                "h": d["http_status"],
                "n": d["n_input_tokens"],
                "tr": bool(d["truncated"]),
                "dup": d["duplicate_of"],
                "c": [
                    [
                        c["rank"],
                        c["prompt"],
                        _num(c["perplexity"], 2),
                        _num(c["confidence"], 3),
                        config_label(c["configs"], c["top_k"], c["penalty_alpha"]),
                        [t.replace("\u2581", " ") for t in (c["tokens"] or [])],
                        [int(round(100 * float(p))) for p in (c["probs"] or [])],
                    ]
                    for c in cs
                ],
                "k": phrases.get(d["doc_id"], []),
                "w": _word_matrix(cs, word_counts.get(d["doc_id"])) if cs else [[], []],
                "cl": clusters_of.get(d["doc_id"]),
            }
        )

    status = Counter(d["status"] for d in docs)
    return {
        "run": {
            "run_id": run_id,
            "command": run.get("command"),
            "model": run.get("model"),
            "status": run.get("status"),
            "created_at": _plain(run.get("created_at")),
            "finished_at": _plain(run.get("finished_at")),
            "seconds": _num((run["finished_at"] - run["created_at"]).total_seconds(), 1)
            if run.get("finished_at") and run.get("created_at")
            else None,
            "config": _plain(json.loads(json.dumps(config, default=str))),
            "n_docs": len(docs),
            "n_done": status.get("done", 0),
            "n_failed": status.get("failed", 0),
            "n_duplicate": status.get("duplicate", 0),
            "n_candidates": len(cands),
            "n_clusters": len(clusters),
        },
        "docs": out_docs,
        "clusters": [{k: c[k] for k in ("id", "label", "size", "docs")} for c in clusters],
        "points": points,
        "pairs": _site_table(store, "cannibalisation_pairs", run_id, doc_ids_sql),
        "keywords": _site_table(store, "keyword_matches", run_id, doc_ids_sql),
        "views": _view_tables(store, run_id),
        "generated_at": datetime.now().isoformat(sep=" ", timespec="seconds"),
    }


# -- rendering ----------------------------------------------------------------------------------------------
def _e(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _intent_map_svg(data: dict, width: int = 760, height: int = 440) -> str:
    """The intent map as static SVG: one dot per page at its 2-D position, coloured by cluster."""
    pts = data["points"]
    if not pts:
        return (
            '<p class="muted">No intent map for this run (the site intent analysis did not run, or '
            "fewer than two pages were analysed).</p>"
        )
    pad = 24
    xs, ys = [p[1] for p in pts], [p[2] for p in pts]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    sx = (width - 2 * pad) / ((x1 - x0) or 1)
    sy = (height - 2 * pad) / ((y1 - y0) or 1)
    order = {c["id"]: i for i, c in enumerate(data["clusters"])}
    docs = {d["i"]: d for d in data["docs"]}
    labels = {c["id"]: c["label"] for c in data["clusters"]}
    r = 5 if len(pts) < 300 else 3 if len(pts) < 2000 else 2
    dots = []
    for doc_id, x, y, cid in pts:
        doc = docs.get(doc_id, {})
        best = doc.get("c", [[None, ""]])[0][1] if doc.get("c") else ""
        cx = pad + (x - x0) * sx if x1 != x0 else width / 2
        cy = height - pad - (y - y0) * sy if y1 != y0 else height / 2
        colour = PALETTE[order.get(cid, 0) % len(PALETTE)]
        dots.append(
            f'<circle class="pt" data-doc="{doc_id}" data-cluster="{cid}" cx="{cx:.1f}" cy="{cy:.1f}" '
            f'r="{r}" fill="{colour}"><title>{_e(doc.get("t") or doc.get("u"))}\n{_e(best)}\n'
            f"cluster {cid}: {_e(labels.get(cid))}</title></circle>"
        )
    return (
        f'<svg id="intent-map" class="chart" viewBox="0 0 {width} {height}" width="100%" '
        f'role="img" aria-label="intent map: pages by the question they answer">'
        f'<rect x="0" y="0" width="{width}" height="{height}" class="plot-bg"/>{"".join(dots)}</svg>'
    )


def _summary_html(run: dict) -> str:
    cost = run["config"].get("cost_usd") if isinstance(run.get("config"), dict) else None
    items = [
        ("Run", run["run_id"]),
        ("What", run["command"]),
        ("Model", run["model"]),
        ("Status", run["status"]),
        ("Started", run["created_at"]),
        ("Finished", run["finished_at"]),
        ("Took", f"{run['seconds']:g} s" if run.get("seconds") is not None else None),
        ("Pages", run["n_docs"]),
        ("Analysed", run["n_done"]),
        ("Failed", run["n_failed"]),
        ("Duplicates", run["n_duplicate"]),
        ("Candidate prompts", run["n_candidates"]),
        ("Intent clusters", run["n_clusters"]),
        ("API cost", ", ".join(f"{k}: ${v:.2f}" for k, v in cost.items()) if isinstance(cost, dict) and cost else None),
    ]
    cells = "".join(
        f'<div class="kv"><span class="k">{_e(k)}</span><span class="v">{_e(v)}</span></div>'
        for k, v in items
        if v is not None and v != ""
    )
    return f'<div class="summary-grid">{cells}</div>'


def render(data: dict) -> str:
    """The report as one HTML document (see the module docstring)."""
    run = data["run"]
    blob = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    # Inside <script> only "</" (and "<!--") can end or confuse the element; the JSON parser reads "<\/" as "</".
    blob = blob.replace("</", "<\\/").replace("<!--", "<\\!--")
    legend = "".join(
        f'<span class="legend-item" data-cluster="{c["id"]}"><i style="background:{PALETTE[i % len(PALETTE)]}"></i>'
        f"{_e(c['label'])} <b>{c['size']}</b></span>"
        for i, c in enumerate(data["clusters"][:12])
    )
    title = f"revprompt report: {run['command'] or run['run_id']}"
    return (
        _TEMPLATE.replace("%%TITLE%%", _e(title))
        .replace("%%HEADING%%", _e(run["command"] or run["run_id"]))
        .replace("%%GENERATED%%", _e(data.get("generated_at")))
        .replace("%%SUMMARY%%", _summary_html(run))
        .replace("%%INTENT_MAP%%", _intent_map_svg(data))
        .replace("%%LEGEND%%", legend)
        .replace(
            "%%VIEWS%%",
            "".join(
                f'<section id="view-{i}"><h2>{_e(v["title"])}</h2><div id="view-table-{i}"></div></section>\n'
                for i, v in enumerate(data.get("views") or [])
            ),
        )
        .replace("%%CSS%%", _CSS)
        .replace("%%JS%%", _JS)
        .replace("%%DATA%%", blob)
    )


def write_report(store: Store, output: str | Path, run_id: str | None = None) -> dict:
    """Collect and render the run into `output`; returns {run_id, docs, bytes}."""
    output = Path(output)
    if output.is_dir():
        raise UserError(f"{str(output)!r} is a folder; give a file name")
    if not output.parent.exists():
        raise UserError(f"folder {str(output.parent)!r} does not exist")
    data = collect(store, run_id)
    text = render(data)
    output.write_text(text, encoding="utf-8")
    return {"run_id": data["run"]["run_id"], "docs": len(data["docs"]), "bytes": len(text.encode("utf-8"))}


_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; "
    "font-src data:; connect-src 'none'; form-action 'none'; base-uri 'none'"
)

_TEMPLATE = (
    """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content=\""""
    + _CSP
    + """\">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="revprompt report">
<link rel="icon" href="data:,">
<title>%%TITLE%%</title>
<style>%%CSS%%</style>
</head>
<body>
<header class="top">
  <div class="brand">revprompt report</div>
  <input id="search" type="search" placeholder="Search pages, prompts, key phrases, tables…" aria-label="search">
  <nav><a href="#summary">Summary</a><a href="#documents">Pages</a><a href="#intent">Intent map</a>
  <a href="#cannibalisation">Cannibalisation</a><a href="#keywords">Keywords</a></nav>
</header>
<main>
<section id="summary">
  <h1>%%HEADING%%</h1>
  <p class="muted">Generated %%GENERATED%% · which questions does each page answer, as reconstructed by a reverse-prompt model.
  Lower perplexity = the model is surer the page answers that prompt.</p>
  %%SUMMARY%%
  <div id="failures"></div>
</section>
<section id="documents">
  <h2>Pages</h2>
  <p class="muted">Click a page to see its candidate prompts, per-token confidence, key phrases and word heatmap.</p>
  <div id="doc-table"></div>
  <div id="doc-detail"></div>
</section>
<section id="intent">
  <h2>Intent map</h2>
  <p class="muted">Each dot is a page, placed by the question it answers (pages close together answer similar questions);
  colours are clusters of pages answering the same question. Click a dot to open the page.</p>
  <div class="map-wrap">%%INTENT_MAP%%<div class="legend">%%LEGEND%%</div></div>
  <div id="cluster-table"></div>
</section>
<section id="cannibalisation">
  <h2>Cannibalisation</h2>
  <p class="muted">Pairs of pages whose intents nearly coincide: they may compete for the same searches.</p>
  <div id="pair-table"></div>
</section>
<section id="keywords">
  <h2>Keyword matches</h2>
  <div id="keyword-table"></div>
</section>
%%VIEWS%%<noscript><p class="warn">Scripts are off: the summary and the intent map are shown, but the per-page views need
JavaScript (open the file in a browser).</p></noscript>
</main>
<script type="application/json" id="report-data">%%DATA%%</script>
<script>%%JS%%</script>
</body>
</html>
"""
)

_CSS = r"""
:root{--fg:#1d2330;--muted:#667085;--line:#e4e7ec;--bg:#f7f8fa;--card:#fff;--acc:#3056d3;--bar:#3056d3}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:var(--fg);background:var(--bg)}
.top{position:sticky;top:0;z-index:5;display:flex;gap:16px;align-items:center;padding:10px 24px;background:#101828;color:#fff}
.brand{font-weight:700;letter-spacing:.02em;white-space:nowrap}.top nav a{color:#c7d2fe;margin-right:12px;text-decoration:none;font-size:13px}
#search{flex:1;max-width:460px;padding:6px 10px;border-radius:6px;border:0;font:inherit}
main{max-width:1280px;margin:0 auto;padding:8px 24px 48px}
section,.detail{scroll-margin-top:64px}section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:16px 20px;margin:16px 0}
h1{font-size:20px;margin:4px 0}h2{font-size:17px;margin:0 0 6px}h3{font-size:15px;margin:14px 0 6px}
.muted{color:var(--muted);font-size:13px;margin:2px 0 10px}.warn{color:#b42318}
.summary-grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:8px;margin:10px 0}
.kv{background:var(--bg);border-radius:8px;padding:8px 10px;overflow-wrap:anywhere}.kv .k{display:block;color:var(--muted);font-size:12px}.kv .v{font-weight:600}
table.dt{border-collapse:collapse;width:100%;font-size:13px}
.dt th{text-align:left;border-bottom:2px solid var(--line);padding:6px 8px;cursor:pointer;white-space:nowrap;user-select:none;background:#fafbfc}
.dt th.sorted-asc::after{content:" \25B2";font-size:10px}.dt th.sorted-desc::after{content:" \25BC";font-size:10px}
.dt td{border-bottom:1px solid var(--line);padding:5px 8px;vertical-align:top;overflow-wrap:anywhere}
.dt tr.clickable{cursor:pointer}.dt tr.clickable:hover td{background:#f0f4ff}.dt tr.selected td{background:#e0e8ff}
.dt td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.tbar{display:flex;gap:10px;align-items:center;margin:6px 0;font-size:13px;color:var(--muted)}
.tbar input,.tbar select{font:inherit;padding:3px 6px;border:1px solid var(--line);border-radius:5px}
.pager button{font:inherit;padding:2px 8px;border:1px solid var(--line);background:#fff;border-radius:5px;cursor:pointer}
.pager button:disabled{opacity:.4;cursor:default}
.page-title{font-weight:600}.uri{color:var(--muted);font-size:12px}
.status{display:inline-block;padding:0 6px;border-radius:9px;font-size:12px;background:#ecfdf3;color:#067647}
.status.failed{background:#fef3f2;color:#b42318}.status.duplicate{background:#f2f4f7;color:#475467}
#doc-detail{margin-top:16px}#doc-detail:empty{display:none}
.detail{border-top:3px solid var(--acc);padding-top:8px}
.grid2{display:grid;grid-template-columns:minmax(0,3fr) minmax(0,2fr);gap:20px}
@media (max-width:900px){.grid2{grid-template-columns:1fr}}
.prompt{font-size:14px}.tok{white-space:pre-wrap;border-radius:3px;background:rgba(48,86,211,.07)}
.spark{vertical-align:middle}
.chips span{display:inline-block;margin:2px 4px 2px 0;padding:2px 8px;border-radius:12px;background:#eef2ff;font-size:13px}
.chips b{font-weight:600;color:var(--muted);font-size:11px;margin-left:4px}
svg.chart{display:block;max-width:100%;height:auto;font:11px system-ui,sans-serif}
svg .plot-bg{fill:#fbfcfe;stroke:var(--line)}svg .axis{stroke:#98a2b3}svg .lbl{fill:#475467}
svg .pt{cursor:pointer;opacity:.85;stroke:#fff;stroke-width:.5}svg .pt:hover,svg .pt.hl{stroke:#101828;stroke-width:2;opacity:1}
svg .pt.dim{opacity:.12}
.map-wrap{display:grid;grid-template-columns:minmax(0,3fr) minmax(0,1fr);gap:16px;align-items:start}
@media (max-width:900px){.map-wrap{grid-template-columns:1fr}}
.legend-item{display:block;font-size:12px;margin:3px 0;cursor:pointer}.legend-item i{display:inline-block;width:10px;height:10px;border-radius:50%;margin-right:6px}
.legend-item b{color:var(--muted);font-weight:500}
.nowrap{white-space:nowrap}.empty{color:var(--muted);font-style:italic}
.err{color:#b42318;font-family:ui-monospace,monospace;font-size:12px}
"""

_JS = r"""
"use strict";
(function(){
var DATA = JSON.parse(document.getElementById("report-data").textContent);
var DOCS = DATA.docs, BY_ID = {};
DOCS.forEach(function(d){ BY_ID[d.i] = d;
  d.best = d.c.length ? d.c[0][1] : ""; d.ppl = d.c.length ? d.c[0][2] : null;
  d.search = (d.t + " " + d.u + " " + d.c.map(function(c){return c[1];}).join(" ") + " " +
              d.k.map(function(k){return k[0];}).join(" ")).toLowerCase(); });
var CLUSTER = {}; DATA.clusters.forEach(function(c){ CLUSTER[c.id] = c; });

function esc(s){ return String(s == null ? "" : s).replace(/[&<>"']/g, function(ch){
  return {"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;","'":"&#39;"}[ch]; }); }
function fmt(v, digits){ if (v == null || v === "") return ""; if (typeof v === "number")
  return digits != null ? v.toFixed(digits) : Number.isInteger(v) ? String(v) : v.toFixed(3); return String(v); }
function el(tag, attrs, html){ var e = document.createElement(tag); for (var k in (attrs||{})) e.setAttribute(k, attrs[k]);
  if (html != null) e.innerHTML = html; return e; }
function confColour(p){ // 0..1 -> red..amber..blue
  var h = 0 + 220 * Math.max(0, Math.min(1, p)); return "hsl(" + h.toFixed(0) + ",70%,48%)"; }

// ---- a small sortable, filterable, paginated table ------------------------------------------------------
var TABLES = [];
function DataTable(host, opts){
  this.host = host; this.cols = opts.columns; this.all = opts.rows; this.pageSize = opts.pageSize || 25;
  this.onClick = opts.onClick; this.text = opts.text || function(r){ return JSON.stringify(r).toLowerCase(); };
  this.filter = ""; this.extra = null; this.sortKey = null; this.sortDir = 1; this.page = 0; this.selected = null;
  this.name = opts.name || "rows"; this.cache = this.all.map(this.text);
  host.innerHTML = "";
  var bar = el("div", {"class":"tbar"});
  this.input = el("input", {type:"search", placeholder:"Filter " + this.name + "…", "class":"tfilter"});
  this.count = el("span"); this.pager = el("span", {"class":"pager"});
  bar.appendChild(this.input); bar.appendChild(this.count); bar.appendChild(this.pager);
  if (opts.toolbar) bar.appendChild(opts.toolbar);
  this.table = el("table", {"class":"dt " + (opts.cls || "")});
  host.appendChild(bar); host.appendChild(this.table);
  var self = this;
  this.input.addEventListener("input", function(){ self.filter = self.input.value.toLowerCase(); self.page = 0; self.draw(); });
  TABLES.push(this); this.draw();
}
DataTable.prototype.rows = function(){
  var self = this, f = this.filter, out = [];
  for (var i = 0; i < this.all.length; i++){
    if (f && this.cache[i].indexOf(f) < 0) continue;
    if (this.extra && !this.extra(this.all[i])) continue;
    out.push(this.all[i]); }
  if (this.sortKey != null){ var col = this.cols[this.sortKey], d = this.sortDir;
    out.sort(function(a, b){ var x = col.value(a), y = col.value(b);
      if (x == null && y == null) return 0; if (x == null) return 1; if (y == null) return -1;
      if (typeof x === "number" && typeof y === "number") return d * (x - y);
      return d * String(x).localeCompare(String(y)); }); }
  return out; };
DataTable.prototype.draw = function(){
  var self = this, rows = this.rows(), n = rows.length, pages = Math.max(1, Math.ceil(n / this.pageSize));
  if (this.page >= pages) this.page = pages - 1;
  var head = "<thead><tr>" + this.cols.map(function(c, i){
    var cls = i === self.sortKey ? (self.sortDir > 0 ? "sorted-asc" : "sorted-desc") : "";
    return '<th data-col="' + i + '" class="' + cls + '">' + esc(c.label) + "</th>"; }).join("") + "</tr></thead>";
  var start = this.page * this.pageSize, body = rows.slice(start, start + this.pageSize).map(function(r){
    var key = self.onClick ? ' class="clickable' + (self.selected === r ? " selected" : "") + '"' : "";
    return "<tr" + key + ">" + self.cols.map(function(c){
      return '<td class="' + (c.num ? "num" : "") + '">' + (c.html ? c.html(r) : esc(fmt(c.value(r), c.digits))) + "</td>";
    }).join("") + "</tr>"; }).join("");
  this.table.innerHTML = head + "<tbody>" + (body || '<tr><td class="empty" colspan="' + this.cols.length + '">nothing matches</td></tr>') + "</tbody>";
  this.visible = rows.slice(start, start + this.pageSize);
  this.count.textContent = n === this.all.length ? n + " " + this.name : n + " of " + this.all.length + " " + this.name;
  this.pager.innerHTML = "";
  if (pages > 1){
    var prev = el("button", {type:"button"}, "&lsaquo; prev"), next = el("button", {type:"button"}, "next &rsaquo;");
    prev.disabled = this.page === 0; next.disabled = this.page >= pages - 1;
    prev.onclick = function(){ self.page--; self.draw(); }; next.onclick = function(){ self.page++; self.draw(); };
    this.pager.appendChild(prev); this.pager.appendChild(document.createTextNode(" page " + (this.page + 1) + " / " + pages + " "));
    this.pager.appendChild(next); }
  Array.prototype.forEach.call(this.table.querySelectorAll("th"), function(th){
    th.onclick = function(){ var i = +th.getAttribute("data-col");
      if (self.sortKey === i) self.sortDir = -self.sortDir; else { self.sortKey = i; self.sortDir = self.cols[i].desc ? -1 : 1; }
      self.draw(); }; });
  if (this.onClick) Array.prototype.forEach.call(this.table.querySelectorAll("tbody tr.clickable"), function(tr, i){
    tr.onclick = function(){ self.selected = self.visible[i]; self.onClick(self.visible[i]); self.draw(); }; });
};
DataTable.prototype.setFilter = function(q){ this.input.value = q; this.filter = q.toLowerCase(); this.page = 0; this.draw(); };

// ---- charts (inline SVG) --------------------------------------------------------------------------------
function sparkline(probs){
  var w = Math.max(24, probs.length * 5), h = 18, bw = w / Math.max(1, probs.length), s = "";
  probs.forEach(function(p, i){ var bh = Math.max(1, p / 100 * h);
    s += '<rect x="' + (i * bw).toFixed(1) + '" y="' + (h - bh).toFixed(1) + '" width="' + Math.max(1, bw - 1).toFixed(1) +
         '" height="' + bh.toFixed(1) + '" fill="' + confColour(p / 100) + '"/>'; });
  return '<svg class="spark" width="' + w + '" height="' + h + '" viewBox="0 0 ' + w + " " + h + '">' + s + "</svg>"; }

function tokenChart(cand){
  var toks = cand[5], probs = cand[6], n = toks.length, bw = 34, left = 34, top = 10, ph = 140, bottom = 70;
  var w = left + Math.max(1, n) * bw + 10, h = top + ph + bottom, s = "";
  s += '<rect class="plot-bg" x="' + left + '" y="' + top + '" width="' + (n * bw) + '" height="' + ph + '"/>';
  [0, 25, 50, 75, 100].forEach(function(t){ var y = top + ph - t / 100 * ph;
    s += '<line class="axis" x1="' + left + '" x2="' + (left + n * bw) + '" y1="' + y + '" y2="' + y + '" stroke-dasharray="2,3"/>' +
         '<text class="lbl" x="' + (left - 4) + '" y="' + (y + 4) + '" text-anchor="end">' + t + "%</text>"; });
  toks.forEach(function(t, i){ var p = probs[i], bh = p / 100 * ph, x = left + i * bw + 4;
    s += '<rect class="tbar-rect" x="' + x + '" y="' + (top + ph - bh).toFixed(1) + '" width="' + (bw - 8) + '" height="' + bh.toFixed(1) +
         '" fill="' + confColour(p / 100) + '"><title>' + esc(JSON.stringify(t)) + ": " + p + "%</title></rect>" +
         '<text class="lbl" transform="translate(' + (x + (bw - 8) / 2 + 3) + "," + (top + ph + 6) + ') rotate(55)">' +
         esc(t.length > 12 ? t.slice(0, 11) + "…" : t) + "</text>"; });
  return '<svg class="chart token-chart" role="img" aria-label="per-token confidence" width="' + w + '" height="' + h +
         '" viewBox="0 0 ' + w + " " + h + '">' + s + "</svg>"; }

function heatmap(doc){
  var wordsList = doc.w[0], counts = doc.w[1], nc = doc.c.length;
  if (!wordsList.length) return '<p class="empty">No content words.</p>';
  var cw = 34, ch = 22, left = 130, top = 24, w = left + nc * cw + 4, h = top + wordsList.length * ch + 4, s = "";
  var max = 1; counts.forEach(function(r){ r.forEach(function(v){ if (v > max) max = v; }); });
  for (var j = 0; j < nc; j++) s += '<text class="lbl" x="' + (left + j * cw + cw / 2) + '" y="16" text-anchor="middle">#' + doc.c[j][0] + "</text>";
  wordsList.forEach(function(word, i){ var y = top + i * ch;
    s += '<text class="lbl" x="' + (left - 6) + '" y="' + (y + ch / 2 + 4) + '" text-anchor="end">' + esc(word.length > 18 ? word.slice(0, 17) + "…" : word) + "</text>";
    counts[i].forEach(function(v, j){ var a = v ? 0.18 + 0.82 * v / max : 0;
      s += '<rect class="hm-cell" x="' + (left + j * cw + 1) + '" y="' + (y + 1) + '" width="' + (cw - 2) + '" height="' + (ch - 2) +
           '" rx="3" fill="' + (v ? "rgba(48,86,211," + a.toFixed(2) + ")" : "#f2f4f7") + '"><title>' + esc(word) + " in prompt #" + doc.c[j][0] + ": " + v + "</title></rect>" +
           (v ? '<text x="' + (left + j * cw + cw / 2) + '" y="' + (y + ch / 2 + 4) + '" text-anchor="middle" fill="' + (a > .55 ? "#fff" : "#1d2330") + '">' + v + "</text>" : ""); }); });
  return '<svg class="chart heatmap" role="img" aria-label="word frequency heatmap" width="' + w + '" height="' + h + '" viewBox="0 0 ' + w + " " + h + '">' + s + "</svg>"; }

function shaded(cand){
  if (!cand[5].length) return esc(cand[1]);
  return cand[5].map(function(t, i){ var p = cand[6][i] / 100;
    return '<span class="tok" style="opacity:' + (0.25 + 0.75 * p).toFixed(2) + '" title="' + esc(JSON.stringify(t)) + ": " + cand[6][i] + '%">' + esc(t) + "</span>"; }).join(""); }

// ---- the document detail ------------------------------------------------------------------------------
var detail = document.getElementById("doc-detail");
function showDoc(doc, scroll){
  var h = '<div class="detail" data-doc="' + doc.i + '"><h3 class="page-title">' + esc(doc.t || doc.u) + "</h3>" +
    '<div class="uri">' + esc(doc.u) + " · " + statusBadge(doc.s) + (doc.n != null ? " · " + doc.n + " input tokens" + (doc.tr ? " (truncated)" : "") : "") +
    (doc.cl != null && CLUSTER[doc.cl] ? " · intent cluster: " + esc(CLUSTER[doc.cl].label) : "") + "</div>";
  if (doc.e) h += '<p class="err">' + esc(doc.e) + "</p>";
  if (doc.dup) h += '<p class="muted">Duplicate of ' + esc(doc.dup) + " (not analysed again).</p>";
  if (!doc.c.length){ detail.innerHTML = h + '<p class="empty">No candidate prompts for this page.</p></div>'; return; }
  h += '<div class="grid2"><div><h3>Candidate prompts</h3><p class="muted">Each token is shaded by the model\'s confidence in it (fainter = less sure). Click a row for its token chart.</p><div id="cand-table"></div>' +
       '<h3>Per-token confidence <span class="muted" id="chart-title"></span></h3><div id="token-chart"></div></div>' +
       '<div><h3>Key phrases</h3><div class="chips key-phrases">' +
       (doc.k.length ? doc.k.map(function(k){ return "<span>" + esc(k[0]) + (k[1] != null ? "<b>" + fmt(k[1], 2) + "</b>" : "") + "</span>"; }).join("") : '<span class="empty">none</span>') +
       "</div><h3>Word frequency (words × candidate prompts)</h3>" + heatmap(doc) + "</div></div></div>";
  detail.innerHTML = h;
  var rows = doc.c.map(function(c){ return c; });
  function pick(c){ document.getElementById("token-chart").innerHTML = tokenChart(c);
    document.getElementById("chart-title").textContent = "prompt #" + c[0] + ": " + c[1]; }
  new DataTable(document.getElementById("cand-table"), {name:"candidates", rows: rows, pageSize: 50, cls: "candidates",
    text: function(c){ return c[1].toLowerCase(); }, onClick: pick,
    columns: [
      {label:"#", num:true, value:function(c){ return c[0]; }},
      {label:"prompt", value:function(c){ return c[1]; }, html: function(c){ return '<span class="prompt">' + shaded(c) + "</span>"; }},
      {label:"tokens", value:function(c){ var m = 0; c[6].forEach(function(p){ m += p; }); return c[6].length ? m / c[6].length : null; }, html:function(c){ return sparkline(c[6]); }},
      {label:"perplexity", num:true, digits:2, value:function(c){ return c[2]; }},
      {label:"confidence", num:true, desc:true, digits:3, value:function(c){ return c[3]; }},
      {label:"config", value:function(c){ return c[4]; }, html:function(c){ return '<span class="nowrap">' + esc(c[4]) + "</span>"; }} ]});
  pick(doc.c[0]);
  document.querySelectorAll("svg .pt").forEach(function(p){ p.classList.toggle("hl", +p.getAttribute("data-doc") === doc.i); });
  if (scroll) detail.scrollIntoView({behavior:"smooth", block:"start"}); }
function statusBadge(s){ return '<span class="status ' + esc(s) + '">' + esc(s) + "</span>"; }

// ---- tables -------------------------------------------------------------------------------------------
var failed = DOCS.filter(function(d){ return d.s === "failed"; });
if (failed.length){ var fh = document.getElementById("failures"); fh.appendChild(el("h3", {}, "Failures (" + failed.length + ")"));
  var fdiv = el("div"); fh.appendChild(fdiv);
  new DataTable(fdiv, {name:"failures", rows: failed, pageSize: 10, cls:"failures", text:function(d){ return (d.u + " " + d.e).toLowerCase(); },
    columns:[{label:"page", value:function(d){ return d.u; }}, {label:"error", value:function(d){ return d.e; }, html:function(d){ return '<span class="err">' + esc(d.e) + "</span>"; }}]}); }

var statusSel = el("select", {"aria-label":"status"}, '<option value="">all statuses</option><option>done</option><option>failed</option><option>duplicate</option>');
var docTable = new DataTable(document.getElementById("doc-table"), {name:"pages", rows: DOCS, pageSize: 10, cls:"documents",
  text:function(d){ return d.search; }, onClick:function(d){ showDoc(d, true); }, toolbar: statusSel,
  columns:[
    {label:"#", num:true, value:function(d){ return d.i; }},
    {label:"page", value:function(d){ return d.t || d.u; }, html:function(d){ return '<div class="page-title">' + esc(d.t || d.u) + '</div><div class="uri">' + esc(d.u) + "</div>"; }},
    {label:"best prompt", value:function(d){ return d.best; }},
    {label:"perplexity", num:true, digits:2, value:function(d){ return d.ppl; }},
    {label:"prompts", num:true, desc:true, value:function(d){ return d.c.length; }},
    {label:"intent cluster", value:function(d){ return d.cl != null && CLUSTER[d.cl] ? CLUSTER[d.cl].label : null; }},
    {label:"status", value:function(d){ return d.s; }, html:function(d){ return statusBadge(d.s); }} ]});
statusSel.onchange = function(){ var v = statusSel.value; docTable.extra = v ? function(d){ return d.s === v; } : null; docTable.page = 0; docTable.draw(); };

function openDoc(id){ var d = BY_ID[id]; if (!d) return; docTable.selected = d; docTable.draw(); showDoc(d, true); }

if (DATA.clusters.length) new DataTable(document.getElementById("cluster-table"), {name:"clusters", rows: DATA.clusters, pageSize: 15, cls:"clusters",
  text:function(c){ return (c.label + " " + c.docs.map(function(i){ return BY_ID[i] ? BY_ID[i].u + " " + BY_ID[i].t : ""; }).join(" ")).toLowerCase(); },
  onClick:function(c){ document.querySelectorAll("svg .pt").forEach(function(p){ p.classList.toggle("dim", +p.getAttribute("data-cluster") !== c.id); }); },
  columns:[{label:"cluster", num:true, value:function(c){ return c.id; }}, {label:"question (label)", value:function(c){ return c.label; }},
           {label:"pages", num:true, desc:true, value:function(c){ return c.size; }},
           {label:"examples", value:function(c){ return c.docs.slice(0, 3).map(function(i){ return BY_ID[i] ? (BY_ID[i].t || BY_ID[i].u) : i; }).join(" · "); }} ]});

function siteTable(hostId, t, name, empty){
  var host = document.getElementById(hostId);
  if (!t){ host.innerHTML = '<p class="empty">' + empty + "</p>"; return; }
  if (!t.rows.length){ host.innerHTML = '<p class="empty">No ' + name + " in this run.</p>"; return; }
  var cols = t.columns.map(function(c, i){ return {label: c, num: typeof t.rows[0][i] === "number", desc: /similar|score|cosine|clicks|impress/.test(c),
      value: function(r){ return Array.isArray(r[i]) ? r[i].join(", ") : r[i]; }}; });
  var docCol = t.columns.indexOf("doc_id") >= 0 ? t.columns.indexOf("doc_id") : t.columns.indexOf("doc_id_a");
  new DataTable(host, {name: name, rows: t.rows, pageSize: 20, cls: name.replace(/\W+/g, "-"), columns: cols,
    onClick: docCol >= 0 ? function(r){ openDoc(r[docCol]); } : null});
  if (t.total > t.rows.length) host.appendChild(el("p", {"class":"muted"}, "Showing the first " + t.rows.length + " of " + t.total + "."));
}
siteTable("pair-table", DATA.pairs, "pairs", "No cannibalisation table (the site intent analysis did not run).");
siteTable("keyword-table", DATA.keywords, "keyword matches", "No keyword matches in this database (run <code>revprompt match</code>).");
(DATA.views || []).forEach(function(v, i){ siteTable("view-table-" + i, v, "view " + i, ""); });

// ---- intent map interaction and the global search -------------------------------------------------------
document.querySelectorAll("svg .pt").forEach(function(p){ p.addEventListener("click", function(){ openDoc(+p.getAttribute("data-doc")); }); });
document.querySelectorAll(".legend-item").forEach(function(li){ li.addEventListener("click", function(){
  var cid = +li.getAttribute("data-cluster"), on = li.classList.toggle("active");
  document.querySelectorAll("svg .pt").forEach(function(p){ p.classList.toggle("dim", on && +p.getAttribute("data-cluster") !== cid); }); }); });
var search = document.getElementById("search"), timer = null;
search.addEventListener("input", function(){ clearTimeout(timer); timer = setTimeout(function(){
  var q = search.value; TABLES.forEach(function(t){ if (t.name !== "candidates") t.setFilter(q); });
  var ql = q.toLowerCase();
  document.querySelectorAll("svg .pt").forEach(function(p){ var d = BY_ID[+p.getAttribute("data-doc")];
    p.classList.toggle("dim", !!ql && !(d && d.search.indexOf(ql) >= 0)); }); }, 120); });

var first = DOCS.filter(function(d){ return d.c.length; })[0];
if (first){ docTable.selected = first; docTable.draw(); showDoc(first, false); }
window.__report = {renderedMs: performance.now(), docs: DOCS.length};
document.body.setAttribute("data-rendered", "1");
})();
"""
