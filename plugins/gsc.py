"""Google Search Console exports into `gsc_rows`, and what `revprompt match --from-gsc` reads back from them.

Formats read (headers matched case-insensitively, '_' as ' '):

* **Search Analytics API** rows (`searchanalytics.query`): a JSON response `{"rows": [{"keys": [...], "clicks",
  "impressions", "ctr", "position"}]}` (keys in the order of the request's dimensions; with [query, page] the key
  that is an http(s) URL is taken as the page), or the CSV such rows are usually flattened into: columns `query`,
  `page`, `clicks`, `impressions`, `ctr` (a fraction), `position` (1 = top). Connectors such as Fivetran's
  `keyword_page_report` use the same names.
* **BigQuery bulk export**, table `searchdata_url_impression` (Google's table reference): `data_date`,
  `site_url`, `url`, `query`, `is_anonymized_query`, `country`, `search_type`, `device`, `is_*` appearance
  flags, `impressions`, `clicks`, `sum_position`. `sum_position` is zero-based and summed over impressions, so
  position = sum_position / impressions + 1. Anonymised rows (`is_anonymized_query` true, query empty) are
  skipped and counted. (`searchdata_site_impression` has no url: its rows import as queries without a page.)
* **Looker Studio** tables exported to CSV from the Search Console connector's URL-impression data source:
  `Landing Page`, `Query`, `Url Clicks`, `Impressions`, `URL CTR`, `Average Position`. These labels are what that
  connector shows, as far as we know; no public reference for them was found, so they are accepted by name next
  to the API's, and a file that has none of the expected columns says which ones it has.
* **The Search Console web UI's** Performance export (a zip): `Queries.csv` (`Top queries,Clicks,Impressions,
  CTR,Position`, CTR as "2.5%") and `Pages.csv` (`Top pages,...`), plus country, device and date files that are
  not read. The UI exports the two dimensions separately: **there are no query x page pairs in it**, so queries
  and pages import as separate rows (`page` or `query` NULL) and mis-mapped queries cannot be found from it
  (`match --from-gsc` says so).

Rows are aggregated to one per (query, page) and file: clicks and impressions summed, position averaged weighted
by impressions, CTR recomputed as clicks / impressions.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import UserError
from ..core.types import utcnow
from ..sources.tabular import (
    ZIP_MAGIC,
    decode_strict,
    find_column,
    normalise_header,
    parse_csv,
    read_bytes,
)

if TYPE_CHECKING:
    from ..core.store import Store

log = logging.getLogger("revprompt.gsc")

QUERY = ("query", "queries", "top queries", "search query")
PAGE = ("page", "url", "landing page", "top pages", "page url")
CLICKS = ("clicks", "url clicks")
IMPRESSIONS = ("impressions", "url impressions")
CTR = ("ctr", "url ctr", "site ctr")
POSITION = ("position", "average position", "avg position", "avg. position")
SUM_POSITION = ("sum position",)  # BigQuery url table: zero-based, summed over impressions
SUM_TOP_POSITION = ("sum top position",)  # BigQuery site table: the same for the site's topmost result
ANONYMIZED = ("is anonymized query",)

FORMATS = {
    "api": "Search Analytics API rows",
    "bigquery": "BigQuery bulk export (searchdata_*_impression)",
    "looker": "Looker Studio export",
    "ui_queries": "web UI export, Queries.csv",
    "ui_pages": "web UI export, Pages.csv",
}
EXPECTED = (
    "query / Query / Top queries, page / url / Landing Page / Top pages, clicks, impressions, ctr, "
    "position or sum_position"
)


@dataclass
class GscRow:
    query: str | None
    page: str | None
    clicks: float | None = None
    impressions: float | None = None
    ctr: float | None = None
    position: float | None = None
    n_rows: int = 1


@dataclass
class GscFile:
    """One table read from an export: its format and aggregated rows."""

    name: str
    format: str
    rows: list[GscRow] = field(default_factory=list)
    source_rows: int = 0
    anonymized: int = 0

    @property
    def pairs(self) -> bool:
        return any(r.query and r.page for r in self.rows)


# -- reading ------------------------------------------------------------------------------------------------------
def read_export(path: str | Path) -> list[GscFile]:
    """Every table of a Search Console export file (a zip holds two)."""
    name = str(path)
    data = read_bytes(path, "Search Console export")
    if data.startswith(ZIP_MAGIC):
        return read_ui_zip(data, name)
    text = decode_strict(data, name)
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped.startswith(("{", "[")):
        return [read_api_json(stripped, name)]
    return [read_csv_text(text, name)]


def read_ui_zip(data: bytes, name: str) -> list[GscFile]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise UserError(f"{name}: not a readable zip archive ({exc})") from None
    out = []
    members = sorted(m for m in archive.namelist() if m.lower().endswith(".csv"))
    for member in members:
        member_name = f"{name}!{member}"
        try:
            text = decode_strict(archive.read(member), member_name)
        except (zipfile.BadZipFile, OSError, RuntimeError) as exc:  # RuntimeError: an encrypted member
            raise UserError(f"{member_name}: cannot read it from the zip ({exc})") from None
        header, _, _ = parse_csv(text, member_name)
        if find_column(header, QUERY) is None and find_column(header, PAGE) is None:
            continue  # Countries.csv, Devices.csv, Dates.csv, Filters.csv, Search appearance.csv
        out.append(read_csv_text(text, member_name))
    if not out:
        raise UserError(
            f"{name}: a zip without Queries.csv or Pages.csv (found: {', '.join(members) or 'no CSV'}); "
            "export the Performance report from Search Console (Export > Download CSV)"
        )
    return out


def read_csv_text(text: str, name: str) -> GscFile:
    header, rows, delimiter = parse_csv(text, name)
    col = {
        "query": find_column(header, QUERY),
        "page": find_column(header, PAGE),
        "clicks": find_column(header, CLICKS),
        "impressions": find_column(header, IMPRESSIONS),
        "ctr": find_column(header, CTR),
        "position": find_column(header, POSITION),
        "sum_position": find_column(header, SUM_POSITION),
        "sum_top_position": find_column(header, SUM_TOP_POSITION),
        "anonymized": find_column(header, ANONYMIZED),
    }
    if col["query"] is None and col["page"] is None:
        from ..sources.tabular import shown_columns

        raise UserError(
            f"{name}: no query or page column (found: {shown_columns(header)}); expected a Search "
            f"Console export with {EXPECTED}"
        )
    if col["impressions"] is None and col["clicks"] is None:
        from ..sources.tabular import shown_columns

        raise UserError(
            f"{name}: no clicks or impressions column (found: {shown_columns(header)}); expected {EXPECTED}"
        )
    fmt = _format(header, col)
    decimal_comma = delimiter == ";"
    agg = _Aggregate()
    out = GscFile(name, fmt)
    for n, row in enumerate(rows, start=2):

        def cell(key: str, row: list[str] = row) -> str:
            i = col[key]
            return row[i].strip() if i is not None and i < len(row) else ""

        if col["anonymized"] is not None and cell("anonymized").lower() in ("true", "1", "yes"):
            out.anonymized += 1
            continue
        query, page = cell("query") or None, cell("page") or None
        if query is None and page is None:
            if col["query"] is not None:
                out.anonymized += 1  # an empty query: one Google withheld (anonymised)
            continue
        impressions = _number(cell("impressions"), name, n, "impressions", decimal_comma)
        position = _number(cell("position"), name, n, "position", decimal_comma)
        for key in ("sum_position", "sum_top_position"):
            total = _number(cell(key), name, n, key, decimal_comma)
            if total is not None and impressions:
                position = total / impressions + 1.0  # zero-based, summed over impressions
        agg.add(
            query,
            page,
            _number(cell("clicks"), name, n, "clicks", decimal_comma),
            impressions,
            _number(cell("ctr"), name, n, "ctr", decimal_comma, percent=True),
            position,
        )
        out.source_rows += 1
    out.rows = agg.rows()
    if not out.rows:
        raise UserError(
            f"{name}: no rows with a query or page"
            + (f" ({out.anonymized} anonymized rows skipped)" if out.anonymized else "")
        )
    return out


def _format(header: list[str], col: dict) -> str:
    names = {normalise_header(h) for h in header}
    if "top queries" in names:
        return "ui_queries"
    if "top pages" in names:
        return "ui_pages"
    if col["sum_position"] is not None or col["sum_top_position"] is not None or "data date" in names:
        return "bigquery"
    if names & {"landing page", "url clicks", "url ctr", "average position"}:
        return "looker"
    return "api"


def read_api_json(text: str, name: str) -> GscFile:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UserError(f"{name}: not valid JSON ({exc})") from None
    rows = data.get("rows") if isinstance(data, dict) else data
    if not isinstance(rows, list):
        raise UserError(f"{name}: no 'rows' list (a Search Analytics API response has {{\"rows\": [...]}})")
    agg = _Aggregate()
    out = GscFile(name, "api")
    for n, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise UserError(f"{name}: row {n} is not an object")
        query, page = row.get("query"), row.get("page")
        keys = row.get("keys")
        if isinstance(keys, list) and query is None and page is None:
            urls = [k for k in keys if isinstance(k, str) and k.startswith(("http://", "https://"))]
            others = [k for k in keys if isinstance(k, str) and k not in urls]
            if len(urls) > 1 or len(others) > 1:
                raise UserError(
                    f"{name}: row {n} has keys {keys!r}; revprompt reads rows of the dimensions "
                    "[query, page], [query] or [page]"
                )
            page = urls[0] if urls else None
            query = others[0] if others else None
        if not query and not page:
            out.anonymized += 1
            continue
        nums = {}
        for key in ("clicks", "impressions", "ctr", "position"):
            value = row.get(key)
            if value is not None and not isinstance(value, (int, float)):
                raise UserError(f"{name}: row {n}: {key} is not a number: {value!r}")
            nums[key] = None if value is None else float(value)
        agg.add(query or None, page or None, nums["clicks"], nums["impressions"], nums["ctr"], nums["position"])
        out.source_rows += 1
    out.rows = agg.rows()
    if not out.rows:
        raise UserError(f"{name}: no rows with a query or page")
    return out


def _number(text: str, name: str, line: int, column: str, decimal_comma: bool, percent: bool = False) -> float | None:
    raw = text
    text = text.replace("\u00a0", "").replace(" ", "")
    if not text or text in ("-", "--", "null", "NULL"):
        return None
    is_percent = text.endswith("%")
    text = text.rstrip("%")
    text = text.replace(".", "").replace(",", ".") if decimal_comma else text.replace(",", "")
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{name}, line {line}: {column} is not a number: {raw!r}") from None
    return value / 100.0 if (percent and is_percent) else value


class _Aggregate:
    def __init__(self):
        self._rows: dict[tuple[str | None, str | None], dict] = {}

    def add(self, query, page, clicks, impressions, ctr, position) -> None:
        acc = self._rows.setdefault(
            (query, page), {"clicks": None, "impressions": None, "ctr": [], "pos_w": 0.0, "pos_weight": 0.0, "n": 0}
        )
        acc["n"] += 1
        if clicks is not None:
            acc["clicks"] = (acc["clicks"] or 0.0) + clicks
        if impressions is not None:
            acc["impressions"] = (acc["impressions"] or 0.0) + impressions
        if ctr is not None:
            acc["ctr"].append(ctr)
        if position is not None:
            weight = impressions if impressions else 1.0
            acc["pos_w"] += position * weight
            acc["pos_weight"] += weight

    def rows(self) -> list[GscRow]:
        out = []
        for (query, page), acc in self._rows.items():
            impressions, clicks = acc["impressions"], acc["clicks"]
            if impressions and clicks is not None:
                ctr = clicks / impressions
            else:
                ctr = sum(acc["ctr"]) / len(acc["ctr"]) if acc["ctr"] else None
            position = acc["pos_w"] / acc["pos_weight"] if acc["pos_weight"] else None
            out.append(GscRow(query, page, clicks, impressions, ctr, position, acc["n"]))
        out.sort(key=lambda r: (-(r.impressions or 0.0), r.query or "", r.page or ""))
        return out


# -- storing --------------------------------------------------------------------------------------------------------
GSC_COLUMNS = (
    "import_id",
    "source_file",
    "format",
    "query",
    "page",
    "clicks",
    "impressions",
    "ctr",
    "position",
    "n_rows",
    "imported_at",
)


def save_export(store: Store, files: list[GscFile], source_file: str) -> tuple[str, int]:
    """Store an export's tables in `gsc_rows`, replacing what an earlier import of the same file stored.
    (import_id, rows replaced)."""
    import pyarrow as pa

    import_id = uuid.uuid4().hex[:12]
    now = utcnow()
    rows = [
        (import_id, source_file, f.format, r.query, r.page, r.clicks, r.impressions, r.ctr, r.position, r.n_rows, now)
        for f in files
        for r in f.rows
    ]
    table = pa.table(
        {c: [row[i] for row in rows] for i, c in enumerate(GSC_COLUMNS)},
        schema=pa.schema(
            [
                ("import_id", pa.string()),
                ("source_file", pa.string()),
                ("format", pa.string()),
                ("query", pa.string()),
                ("page", pa.string()),
                ("clicks", pa.float64()),
                ("impressions", pa.float64()),
                ("ctr", pa.float64()),
                ("position", pa.float64()),
                ("n_rows", pa.int64()),
                ("imported_at", pa.timestamp("us")),
            ]
        ),
    )
    with store.transaction():
        replaced = store.execute("SELECT count(*) FROM gsc_rows WHERE source_file = ?", [source_file])[0][0]
        store.execute("DELETE FROM gsc_rows WHERE source_file = ?", [source_file])
        with store.registered("_revprompt_gsc_rows", table):
            store.execute(
                f"INSERT INTO gsc_rows ({', '.join(GSC_COLUMNS)}) "
                f"SELECT {', '.join(GSC_COLUMNS)} FROM _revprompt_gsc_rows"
            )
    return import_id, int(replaced)


# -- reading back for `match --from-gsc` ------------------------------------------------------------------------
@dataclass
class GscQuery:
    query: str
    impressions: float
    clicks: float
    position: float | None
    pages: dict[str, tuple[float, float, float | None]] = field(default_factory=dict)  # url -> impr, clicks, pos

    @property
    def google_page(self) -> str | None:
        """The page Google showed most for the query (impressions, then clicks)."""
        if not self.pages:
            return None
        return max(self.pages, key=lambda u: (self.pages[u][0], self.pages[u][1], u))


# A query as `match` spells keywords (plugins/match.py unique_keywords): trimmed, single spaces.
QUERY_SQL = "regexp_replace(trim(query), '\\s+', ' ', 'g')"


def load_queries(store: Store, limit: int | None = None) -> tuple[list[GscQuery], bool]:
    """Queries of `gsc_rows`, most impressions first, with the pages each was shown with; and whether any
    query x page pair is known (False for web UI exports only)."""
    if not store.has_table("gsc_rows"):
        raise UserError(f"{store.path} has no Search Console data: import it first with `revprompt gsc import FILE`")
    _, totals = store.query(
        f"""SELECT {QUERY_SQL} AS q, sum(coalesce(impressions, 0)) AS impressions, sum(coalesce(clicks, 0)) AS clicks,
                  sum(position * coalesce(impressions, 1)) / nullif(sum(CASE WHEN position IS NOT NULL
                      THEN coalesce(impressions, 1) END), 0) AS position
           FROM gsc_rows WHERE query IS NOT NULL AND length(trim(query)) > 0
           GROUP BY q ORDER BY impressions DESC, clicks DESC, q"""
        + (f" LIMIT {int(limit)}" if limit else "")
    )
    if not totals:
        raise UserError(
            f"{store.path} holds no Search Console queries: import an export with queries (`revprompt gsc import FILE`)"
        )
    queries = {q: GscQuery(q, float(i), float(c), p) for q, i, c, p in totals}
    _, pairs = store.query(
        f"""SELECT {QUERY_SQL} AS q, page, sum(coalesce(impressions, 0)), sum(coalesce(clicks, 0)),
                  sum(position * coalesce(impressions, 1)) / nullif(sum(CASE WHEN position IS NOT NULL
                      THEN coalesce(impressions, 1) END), 0)
           FROM gsc_rows WHERE query IS NOT NULL AND page IS NOT NULL GROUP BY q, page"""
    )
    for q, page, impressions, clicks, position in pairs:
        if q in queries:
            queries[q].pages[page] = (float(impressions), float(clicks), position)
    return list(queries.values()), bool(pairs)


def url_key(url: str) -> str:
    """How a GSC page URL and a stored document URI are compared: normalised (sources/urlnorm.py), without a
    trailing slash."""
    from ..sources.urlnorm import normalize_url

    try:
        url = normalize_url(url)
    except ValueError:
        url = url.strip()
    return url.rstrip("/") if "://" in url else url
