"""One spelling per page: URL normalisation, so a crawl or a URL list analyses each page once.

`normalize_url` drops the fragment, lower-cases scheme and host, drops the default port, sorts the query and
normalises percent-escapes (w3lib's `canonicalize_url`, Scrapy's, does these), then drops the query parameters
that never change a page: click and campaign trackers (`utm_*`, `gclid`, `fbclid`, ...) and session ids
(`sessionid`, `phpsessid`, `jsessionid`, `sid`, ...; also as `;jsessionid=...` path parameters).

Why w3lib and not courlan (already installed with trafilatura): courlan's `normalize_url` keeps fragments
unless `strict`, which also drops every parameter outside a short allow-list; it loses blank values (`?q=`);
its tracker pattern drops meaningful parameters (`ref`, `source`, `keyword`, `campaign`) yet keeps `phpsessid`,
`jsessionid` and `sid`; and none of it is configurable. The parameter rules here are a short list people can
change: `--strip-params` adds names, `--keep-params` keeps names the defaults would drop (`*` keeps all).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus, urlsplit, urlunsplit

# Lower-case names; a trailing '*' matches any name that starts with the rest.
DEFAULT_STRIP_PARAMS = (
    # campaign and click trackers
    "utm_*",
    "gclid",
    "gclsrc",
    "dclid",
    "gbraid",
    "wbraid",
    "fbclid",
    "msclkid",
    "yclid",
    "twclid",
    "ttclid",
    "igshid",
    "mc_cid",
    "mc_eid",
    "_ga",
    "_gl",
    "_hsenc",
    "_hsmi",
    "mkt_tok",
    "oly_anon_id",
    "oly_enc_id",
    "vero_id",
    "srsltid",
    # session ids
    "sessionid",
    "session_id",
    "phpsessid",
    "jsessionid",
    "sid",
    "aspsessionid*",
    "cfid",
    "cftoken",
)
_PATH_PARAM = re.compile(r";([^/;=]+)=[^/;]*")  # /page;jsessionid=ABC


@dataclass(frozen=True)
class ParamRules:
    """Which query parameters a URL loses. `keep` wins over `strip`."""

    strip: tuple[str, ...] = DEFAULT_STRIP_PARAMS
    keep: tuple[str, ...] = ()

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None) -> ParamRules:
        """`strip_params` / `keep_params` options: comma-separated names or lists (`--strip-params search`)."""
        options = options or {}
        return cls(
            strip=DEFAULT_STRIP_PARAMS + _names(options.get("strip_params")), keep=_names(options.get("keep_params"))
        )

    def drops(self, name: str) -> bool:
        name = name.lower()
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in self.keep):
            return False
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.strip)


DEFAULT_RULES = ParamRules()


def _names(value) -> tuple[str, ...]:
    if not value:
        return ()
    items = value.split(",") if isinstance(value, str) else [n for v in value for n in str(v).split(",")]
    return tuple(n.strip().lower() for n in items if n.strip())


def normalize_url(url: str, rules: ParamRules | None = None) -> str:
    """The one spelling of `url` (see the module). Raises ValueError only where urllib cannot split it."""
    from w3lib.url import canonicalize_url

    rules = rules or DEFAULT_RULES
    url = url.strip()
    try:
        url = canonicalize_url(url)
    except ValueError:  # a port out of range and the like: urllib's split below still decides
        url = url.split("#", 1)[0]
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host
    if port and not ((scheme == "http" and port == 80) or (scheme == "https" and port == 443)):
        netloc = f"{host}:{port}"
    if parts.username:
        netloc = f"{parts.username}{':' + parts.password if parts.password else ''}@{netloc}"
    path = _PATH_PARAM.sub(lambda m: "" if rules.drops(m.group(1)) else m.group(0), parts.path)
    # Pieces are filtered as canonicalize_url spelled them (sorted, escaped), not decoded and re-encoded.
    query = "&".join(p for p in parts.query.split("&") if p and not rules.drops(unquote_plus(p.split("=", 1)[0])))
    return urlunsplit((scheme, netloc, path or "/", query, ""))
