"""SERP input: the pages ranking on Google for a keyword, as SEO people start most analyses.

    revprompt analyze --serp "best running shoes" --location "United Kingdom" --language en --depth 10
    revprompt analyze --serp "best running shoes" --source dataforseo      (pages fetched by DataForSEO too)

One `POST /v3/serp/google/organic/live/advanced` (DataForSEO, same credentials as --source dataforseo) lists
the result; the `url` of each `organic` item, in rank order, becomes a page to analyse. Ads, featured
snippets, "People also ask" and the other SERP features are not the pages that rank, so they are left out.

The pages themselves are fetched by revprompt's own fetcher, like a --urls list (free, robots.txt obeyed,
--timeout and --concurrency apply); with `--source dataforseo` they go through DataForSEO's content parsing
instead (paid per page; for sites that block ordinary fetchers). Each page's row keeps its rank in
`meta.serp`. A re-run of the same command asks for the SERP again (one more paid call) and resumes: pages
already analysed are skipped.
"""

from __future__ import annotations

import threading

from ..core.errors import UserError
from ..core.types import Document
from .base import Source, SourceContext
from .dataforseo import DataForSEOError, DataForSEOSource
from .fetch import is_http_url, normalize_url
from .web import PageLoader

SERP_ENDPOINT = "/v3/serp/google/organic/live/advanced"
DEFAULT_LOCATION = "United States"
DEFAULT_LANGUAGE = "en"
DEFAULT_DEPTH = 10
# docs: "Live" base price covers the first page of 10 results; each further page of 10 costs 0.75 of it
SERP_BASE_PRICE = 0.002


def serp_request(keyword: str, location: str | None, language: str | None, depth: int | None) -> dict:
    """The task body: a numeric location is a `location_code` (2840), anything else a `location_name`;
    a short language ("en", "pt-BR") is a `language_code`, a longer one ("English") a `language_name`."""
    keyword = (keyword or "").strip()
    if not keyword:
        raise UserError("--serp needs a keyword")
    if len(keyword) > 700:
        raise UserError("--serp keyword is longer than DataForSEO's 700 characters")
    location = (location or DEFAULT_LOCATION).strip()
    language = (language or DEFAULT_LANGUAGE).strip()
    body: dict = {"keyword": keyword, "depth": int(depth or DEFAULT_DEPTH)}
    if location.isdigit():
        body["location_code"] = int(location)
    else:
        body["location_name"] = location
    if len(language) <= 5 and " " not in language:
        body["language_code"] = language
    else:
        body["language_name"] = language
    return body


def serp_cost(depth: int | None) -> float:
    pages = max(1, -(-int(depth or DEFAULT_DEPTH) // 10))
    return SERP_BASE_PRICE * (1 + 0.75 * (pages - 1))


def organic_results(task: dict) -> list[dict]:
    """[{url, rank, title, domain}] of the `organic` items, best rank first, each URL once."""
    results = task.get("result") or []
    items = results[0].get("items") if results and isinstance(results[0], dict) else None
    seen: set[str] = set()
    out: list[dict] = []
    for item in items or []:
        if not isinstance(item, dict) or item.get("type") != "organic":
            continue
        url = item.get("url")
        if not isinstance(url, str) or not is_http_url(url):
            continue
        url = normalize_url(url)
        if url in seen:
            continue
        seen.add(url)
        out.append(
            {
                "url": url,
                "rank": item.get("rank_group"),
                "rank_absolute": item.get("rank_absolute"),
                "title": item.get("title"),
                "domain": item.get("domain"),
            }
        )
    return out


class SerpSource(Source):
    name = "serp"
    description = "The pages ranking on Google for a keyword (--serp; DataForSEO SERP API, then fetched)"
    concurrent_loads = True

    def __init__(self):
        self._dataforseo = DataForSEOSource()
        self._pages = PageLoader()
        self._ranks: dict[str, dict] = {}
        self._keyword = ""
        self._lock = threading.Lock()

    def claims(self, target: str, options: SourceContext) -> bool:
        return False  # costs money: only with --serp

    def discover(self, target: str, options: SourceContext):
        body = serp_request(
            target, options.get("serp_location"), options.get("serp_language"), options.get("serp_depth")
        )
        client = self._dataforseo.client(options)
        try:
            task = client.call(SERP_ENDPOINT, body)
        except DataForSEOError as exc:
            raise UserError(f"SERP for {body['keyword']!r}: {client.settings.redact(exc)}", 1) from None
        results = organic_results(task)
        if not results:
            raise UserError(
                f"SERP for {body['keyword']!r}: no organic results "
                f"({body.get('location_name', body.get('location_code'))}, "
                f"{body.get('language_code', body.get('language_name'))})",
                1,
            )
        with self._lock:
            self._keyword = body["keyword"]
            self._ranks = {r["url"]: r for r in results}
        return [r["url"] for r in results]

    def load(self, uri: str, options: SourceContext) -> Document:
        loader = self._dataforseo if options.get("serp_fetch") == "dataforseo" else self._pages
        doc = loader.load(uri, options)
        rank = self._ranks.get(uri)
        if rank is not None:
            doc.meta["serp"] = {"keyword": self._keyword, **{k: v for k, v in rank.items() if k != "url"}}
        return doc
