"""Keyword -> pages in the TUI: the rows of `revprompt match` (`keyword_matches`) as two analysis views.

Declared with core/views.py's `View` like any analyzer's tabs, so the existing screens show them without a
screen of their own:

- `RUN_VIEW` (scope `run`, a tree): each keyword of the run, its scored pages best first, with the NLL, the margin
  and the verdict; Enter on a page opens it.
- `DOCUMENT_VIEW` (scope `document`): the keywords this page was scored for, the ones it answers best first.

`ResultsDB.views()` (tui/data.py) adds `KEYWORD_VIEWS` after the analyzers' views in a database that has the
`keyword_matches` table; one without rows for a run or page shows their `empty` line.
"""

from __future__ import annotations

from ...core.views import View

_VERDICT = """CASE WHEN k.rank = 1 AND NOT k.answers THEN 'no page answers this'
                   WHEN k.cannibalisation THEN 'cannibalisation'
                   WHEN k.rank = 1 THEN 'best' ELSE 'runner-up +' || printf('%.2f', k.gap) END"""

RUN_VIEW = View(
    title="Keywords",
    scope="run",
    kind="groups",
    key="k",
    sql=f"""SELECT k.keyword, coalesce(d.title, k.uri) AS page,
                   printf('#%d  nll %.2f  cos %.2f  ', k.rank, k.nll, k.cosine) || {_VERDICT}
                   || CASE WHEN k.gsc_page THEN '  (Google''s page)' ELSE '' END AS detail,
                   k.doc_id
            FROM keyword_matches k LEFT JOIN documents d USING (doc_id)
            WHERE k.run_id = $run_id
            ORDER BY k.keyword, k.rank""",
    columns={"keyword": "Keyword", "page": "Page", "detail": "Score"},
    doc_column="doc_id",
    tables=("keyword_matches",),
    note="{groups} keywords matched against this run's pages (revprompt match; lower nll answers better)",
    empty="no keyword matched against this run yet: revprompt match KEYWORDS_FILE",
)

DOCUMENT_VIEW = View(
    title="Keywords",
    scope="document",
    kind="table",
    sql=f"""SELECT k.keyword, k.rank, round(k.nll, 2) AS nll, round(k.cosine, 2) AS cosine, {_VERDICT} AS verdict,
                   k.impressions
            FROM keyword_matches k
            WHERE k.doc_id = $doc_id
            ORDER BY k.rank, k.nll""",
    columns={
        "keyword": "Keyword",
        "rank": "Rank",
        "nll": "NLL",
        "cosine": "Cosine",
        "verdict": "Verdict",
        "impressions": "GSC impressions",
    },
    tables=("keyword_matches",),
    note="keywords scored on this page ({rows}); rank 1: the page answers it best",
    empty="no keyword was matched against this page (revprompt match)",
)

KEYWORD_VIEWS = (RUN_VIEW, DOCUMENT_VIEW)
