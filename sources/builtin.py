"""Registers the built-in sources through the same hook third-party plugins use.

Order matters: without --source, the first source whose `claims()` is true reads a target. Local paths
first, then sitemap URLs (.xml, .xml.gz, '...sitemap...') before other URLs; `urls`, `crawl`, `dataforseo` and
`serp` claim nothing and are picked by --urls, --crawl, --source and --serp. TextSource claims anything, so it is last.
"""

from ..core.hookspecs import hookimpl
from .crawl import CrawlSource
from .dataforseo import DataForSEOSource
from .serp import SerpSource
from .sitemap import SitemapSource
from .text import FileSource, TextSource
from .web import UrlListSource, UrlSource


@hookimpl
def register_sources(register):
    register(FileSource())
    register(SitemapSource())
    register(UrlSource())
    register(UrlListSource())
    register(CrawlSource())
    register(DataForSEOSource())
    register(SerpSource())
    # TextSource claims anything, so it is registered last and tried last.
    register(TextSource())
