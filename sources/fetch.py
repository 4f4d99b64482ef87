"""Fetching web pages, politely and defensively: the one place for the user agent, timeouts, redirect cap,
size cap, content-type and charset rules that every URL-based source shares.

Every failure becomes a `FetchError` with a short message meant for the `documents.error` column
("HTTP 404", "too many redirects (more than 5)", "page larger than 5 MB", "not a text/HTML page (image/png)",
"timed out after 20s waiting for the server"): callers turn it into a failed row, never a traceback.

Redirects are checked before they are followed: never from the web into a loopback or private address
(netguard.py), and, where a caller passes a `guard` (a crawl keeping to its site), never where it refuses.
"""

from __future__ import annotations

import codecs
import functools
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import requests
import requests.auth

from ..core.storable import strip_userinfo
from ..core.types import Document, utcnow
from .deadline import Deadline, EnvSession
from .netguard import address_kind, redirect_refusal
from .urlnorm import ParamRules, normalize_url  # noqa: F401 - re-exported: sources import it from here

USER_AGENT = "revprompt/0.1 (+https://github.com/revprompt; prompt analysis)"
MB = 1024 * 1024

# What counts as a page we can analyse; everything else is "not a text/HTML page (...)".
HTML_TYPES = {"text/html", "application/xhtml+xml"}
TEXT_TYPES = {"text/plain", "text/markdown", "text/x-markdown"}
# Transient answers worth one more try; everything else fails at once.
RETRY_STATUSES = {429, 502, 503, 504}


@dataclass
class FetchSettings:
    """How patient and how greedy a fetch may be. `from_options` reads the batch options."""

    user_agent: str = USER_AGENT
    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    total_timeout: float = 60.0  # wall clock for one try, whatever the server does (see deadline.py)
    max_redirects: int = 5
    max_bytes: int = 5 * MB
    retries: int = 1  # extra tries for connection errors and 429/502/503/504
    retry_backoff: float = 1.0

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None) -> FetchSettings:
        options = options or {}
        settings = cls()
        if options.get("timeout") is not None:
            # One knob for people (`--timeout`): the most a page may take, connecting, waiting and reading
            # included; a server that drips bytes is cut off then, not when its next chunk arrives.
            settings.read_timeout = settings.total_timeout = float(options["timeout"])
            settings.connect_timeout = min(settings.connect_timeout, settings.read_timeout)
        for key in (
            "user_agent",
            "connect_timeout",
            "read_timeout",
            "total_timeout",
            "max_redirects",
            "max_bytes",
            "retries",
            "retry_backoff",
        ):
            if options.get(key) is not None:
                setattr(settings, key, type(getattr(settings, key))(options[key]))
        return settings


class FetchError(Exception):
    """A fetch that produced no usable body. `str(exc)` is the row's error message."""

    def __init__(
        self,
        message: str,
        http_status: int | None = None,
        content_type: str | None = None,
        final_url: str | None = None,
    ):
        super().__init__(message)
        self.http_status = http_status
        self.content_type = content_type
        self.final_url = final_url


@dataclass
class Response:
    url: str  # as asked for
    final_url: str  # after redirects
    status: int
    media_type: str  # lower-cased, no parameters ('' when the server sent none)
    charset: str | None  # declared in Content-Type, if any
    body: bytes
    headers: dict = field(default_factory=dict)
    truncated: bool = False  # only the first max_bytes were read (Fetcher.get(truncate=True))

    def text(self) -> str:
        return decode_body(self.body, self.charset, html=self.media_type in HTML_TYPES or not self.media_type)


# -- URLs -----------------------------------------------------------------------------------------------
def is_http_url(target: str) -> bool:
    return url_problem(target) is None


def url_problem(target: str) -> str | None:
    """Why `target` is not a URL revprompt can fetch, as a row's error, or None when it is one.

    'malformed URL (...)' for an http(s) URL that urllib cannot even split (`http://[::1/`): such a line in a
    URL list or a sitemap used to be a traceback; now it is a failed row like any other.
    """
    if not isinstance(target, str) or any(c.isspace() for c in target.strip()) or len(target) > 4096:
        return "not an http(s) URL"
    try:
        parts = urlsplit(target.strip())
        if parts.scheme.lower() not in ("http", "https"):
            return "not an http(s) URL"
        if not parts.hostname:
            return "malformed URL (no host)"
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number or out of range
    except ValueError as exc:
        return f"malformed URL ({exc})"
    return None


def site_root(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/", "", ""))


# -- charsets -------------------------------------------------------------------------------------------
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
# What browsers do (WHATWG encoding standard): these labels mean windows-1252.
_WESTERN = {"cp1252", "latin_1", "iso8859_15"}
_AS_CP1252 = {"iso-8859-1", "iso8859-1", "latin-1", "latin1", "l1", "us-ascii", "ascii", "cp819", "ibm819"}


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    if label in _AS_CP1252:
        return "cp1252"
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def decode_body(body: bytes, declared: str | None = None, html: bool = True) -> str:
    """Bytes to text: BOM, then the declared charset, then <meta charset>, then UTF-8, then a detector."""
    for bom, codec in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if body.startswith(bom):
            return body.decode(codec, errors="replace")
    candidates: list[str | None] = [_codec(declared)]
    if html:
        m = _META_CHARSET.search(body[:8192])
        candidates.append(_codec(m.group(1).decode("ascii", "ignore")) if m else None)
    for name in candidates:
        if name:
            try:
                return body.decode(name)
            except (UnicodeDecodeError, LookupError):
                continue
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        from charset_normalizer import from_bytes

        matches = from_bytes(body[: 256 * 1024])
        best = matches.best()
        if best is not None and best.encoding:
            # Detectors cannot tell Western code pages apart on short text; among equally clean readings,
            # prefer windows-1252, which is what an undeclared legacy Western page almost always is.
            for match in matches:
                if match.chaos <= best.chaos + 0.02 and _WESTERN & set(match.could_be_from_charset):
                    return body.decode("cp1252", errors="replace")
            return body.decode(best.encoding, errors="replace")
    except Exception:  # detection is a best effort; cp1252 below decodes anything
        pass
    return body.decode("cp1252", errors="replace")


# -- fetching -------------------------------------------------------------------------------------------
def _short_reason(exc: BaseException) -> str:
    text = str(exc)
    for needle, reason in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "unknown host"),
        ("NameResolutionError", "unknown host"),
        ("nodename nor servname", "unknown host"),
        ("Temporary failure in name resolution", "unknown host"),
        ("Connection reset", "connection reset by the server"),
        ("RemoteDisconnected", "the server closed the connection"),
        ("IncompleteRead", "the server closed the connection mid-page"),
        ("Network is unreachable", "network unreachable"),
        ("CERTIFICATE_VERIFY_FAILED", "TLS certificate not trusted"),
    ):
        if needle in text:
            return reason
    return type(exc).__name__


def _is_read_timeout(exc: BaseException) -> bool:
    from urllib3.exceptions import ReadTimeoutError

    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 8:
        if isinstance(current, (ReadTimeoutError, requests.exceptions.ReadTimeout)):
            return True
        if any(isinstance(a, ReadTimeoutError) for a in getattr(current, "args", ())):
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


class ThreadSessions:
    """One requests.Session per thread (Sessions are not thread-safe), made by `configure` on first use.
    Sessions read proxies and the CA bundle from the environment as requests does, never .netrc credentials,
    and their connections obey a fetch's wall-clock `Deadline` (deadline.py)."""

    def __init__(self, configure):
        self._configure = configure
        self._local = threading.local()

    def get(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = EnvSession()
            self._configure(session)
            self._local.session = session
        return session


class HostAuth(requests.auth.HTTPBasicAuth):
    """Basic-auth credentials taken out of a URL (`http://user:pw@host/`), sent to that scheme, host and port
    only. A crawl keeps them out of every URL it queues, stores, logs or reports, and gives them to its fetcher
    this way; requests drops the header on a redirect to another host, as it does for credentials in a URL."""

    def __init__(self, username: str, password: str, url: str):
        super().__init__(username, password)
        self.origin = _origin(url)

    def __call__(self, r):
        return super().__call__(r) if _origin(r.url) == self.origin else r


def split_credentials(url: str) -> tuple[str, HostAuth | None]:
    """(`url` without its user info, the HostAuth that sends it) or (`url`, None) when it has none."""
    try:
        parts = urlsplit(url)
        username, password = parts.username, parts.password
    except ValueError:
        return url, None
    if username is None and password is None:
        return url, None
    return strip_userinfo(url), HostAuth(unquote(username or ""), unquote(password or ""), url)


def _origin(url: str) -> tuple[str, str, int | None]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return ("", "", None)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), port or {"http": 80, "https": 443}.get(scheme)


class Fetcher:
    """GETs with the project's rules. Thread-safe: each thread gets its own requests.Session.
    `auth` (a HostAuth) goes with every request its sessions make."""

    def __init__(self, settings: FetchSettings | None = None, auth: requests.auth.AuthBase | None = None):
        self.settings = settings or FetchSettings()
        self.auth = auth
        self._sessions = ThreadSessions(self._configure)

    def _configure(self, session: requests.Session) -> None:
        session.headers["User-Agent"] = self.settings.user_agent
        session.headers["Accept"] = "text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.5"
        session.max_redirects = self.settings.max_redirects
        if self.auth is not None:
            session.auth = self.auth

    @property
    def session(self) -> requests.Session:
        return self._sessions.get()

    def get(self, url: str, guard: Guard | None = None, truncate: bool = False) -> Response:
        """The body of `url` (any content type), or FetchError. HTTP errors (>= 400) are FetchErrors.

        `guard(target)` is asked before each redirect is followed; a reason it returns is the FetchError.
        `truncate` keeps the first max_bytes of a larger body (robots.txt) instead of failing.
        """
        s = self.settings
        attempt = 0
        while True:
            try:
                return self._get_once(url, guard, truncate)
            except _Retryable as exc:
                attempt += 1
                if attempt > s.retries:
                    raise exc.error from None
                time.sleep(exc.wait if exc.wait is not None else s.retry_backoff * attempt)

    def _get_once(self, url: str, guard: Guard | None, truncate: bool) -> Response:
        """One try, cut off after `total_timeout` seconds of wall clock whatever the server does."""
        s = self.settings
        with Deadline(s.total_timeout) as deadline:
            try:
                resp = self._request(url, guard, truncate)
            except (FetchError, _Retryable, requests.exceptions.RequestException, OSError) as exc:
                if not deadline.expired:
                    raise
                error = exc.error if isinstance(exc, _Retryable) else exc
                status = getattr(error, "http_status", None)
                what = "reading the page" if status is not None else "waiting for the server"
                raise FetchError(
                    f"timed out after {s.total_timeout:g}s {what}",
                    status,
                    getattr(error, "content_type", None),
                    getattr(error, "final_url", None),
                ) from None
            if deadline.expired:  # a body without Content-Length ends "cleanly" when its socket is shut: it is cut
                raise FetchError(
                    f"timed out after {s.total_timeout:g}s reading the page",
                    resp.status,
                    resp.media_type or None,
                    resp.final_url,
                )
            return resp

    def _request(self, url: str, guard: Guard | None, truncate: bool) -> Response:
        s = self.settings
        started = time.monotonic()
        try:
            resp = self.session.get(
                url,
                timeout=(s.connect_timeout, s.read_timeout),
                stream=True,
                allow_redirects=True,
                hooks={"response": _redirect_check(url, guard)},
            )
        except requests.exceptions.TooManyRedirects:
            raise FetchError(f"too many redirects (more than {s.max_redirects})") from None
        except requests.exceptions.ConnectTimeout:
            raise FetchError(f"timed out after {s.connect_timeout:g}s connecting to the server") from None
        except requests.exceptions.ReadTimeout:
            raise FetchError(f"timed out after {s.read_timeout:g}s waiting for the server") from None
        except requests.exceptions.SSLError:
            raise FetchError("TLS error (certificate or handshake)") from None
        except (
            requests.exceptions.InvalidURL,
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema,
            ValueError,
        ):
            raise FetchError("invalid URL") from None
        except requests.exceptions.ConnectionError as exc:
            if _is_read_timeout(exc):
                raise FetchError(f"timed out after {s.read_timeout:g}s waiting for the server") from None
            raise _Retryable(FetchError(f"cannot connect: {_short_reason(exc)}")) from None
        except requests.exceptions.RequestException as exc:
            raise FetchError(f"request failed: {_short_reason(exc)}") from None
        with resp:
            content_type = resp.headers.get("Content-Type", "")
            media_type = content_type.split(";")[0].strip().lower()
            charset = None
            m = re.search(r"charset\s*=\s*[\"']?([^\s;\"']+)", content_type, re.I)
            if m:
                charset = m.group(1)
            if resp.status_code >= 400:
                error = FetchError(f"HTTP {resp.status_code}", resp.status_code, media_type or None, resp.url)
                if resp.status_code in RETRY_STATUSES:
                    raise _Retryable(error, _retry_after(resp.headers.get("Retry-After")))
                raise error
            declared = resp.headers.get("Content-Length")
            limit = s.max_bytes
            too_big = f"page larger than {_size(limit)}"
            if declared and declared.isdigit() and int(declared) > limit and not truncate:
                raise FetchError(too_big, resp.status_code, media_type or None, resp.url)
            chunks, size, truncated = [], 0, False
            try:
                for chunk in resp.iter_content(64 * 1024):
                    if size + len(chunk) > limit:
                        if not truncate:
                            raise FetchError(too_big, resp.status_code, media_type or None, resp.url)
                        chunks.append(chunk[: limit - size])
                        truncated = True
                        break
                    size += len(chunk)
                    chunks.append(chunk)
                    if time.monotonic() - started > s.total_timeout:
                        raise FetchError(
                            f"timed out after {s.total_timeout:g}s reading the page",
                            resp.status_code,
                            media_type or None,
                            resp.url,
                        )
            except requests.exceptions.RequestException as exc:
                if _is_read_timeout(exc):
                    raise FetchError(
                        f"timed out after {s.read_timeout:g}s waiting for the server",
                        resp.status_code,
                        media_type or None,
                        resp.url,
                    ) from None
                raise FetchError(
                    f"download failed: {_short_reason(exc)}", resp.status_code, media_type or None, resp.url
                ) from None
            return Response(
                url=url,
                final_url=resp.url,
                status=resp.status_code,
                media_type=media_type,
                charset=charset,
                body=b"".join(chunks),
                headers=dict(resp.headers),
                truncated=truncated,
            )


#: asked before a redirect is followed: the target URL in, a refusal ("redirect leaves the site ...") or None out
Guard = Callable[[str], "str | None"]


def _redirect_check(asked: str, guard: Guard | None):
    """A requests response hook: it sees each redirect answer before requests follows it, so a refused target
    is never connected to. The refusal is a FetchError carrying the redirecting answer's status and URL."""
    asked_kind = functools.cache(lambda: address_kind(urlsplit(asked).hostname))

    def hook(resp: requests.Response, **_kwargs):
        if not resp.is_redirect:
            return resp
        location = resp.headers.get("Location", "")
        try:
            location = location.encode("latin1").decode("utf-8")  # as requests reads it
        except UnicodeError:
            pass
        target = urljoin(resp.url, location)
        reason = redirect_refusal(target, asked_kind) or (guard(target) if guard else None)
        if reason:
            resp.close()
            raise FetchError(reason, resp.status_code, None, resp.url)
        return resp

    return hook


class _Retryable(Exception):
    def __init__(self, error: FetchError, wait: float | None = None):
        super().__init__(str(error))
        self.error = error
        self.wait = wait


def _retry_after(value: str | None) -> float | None:
    if value and value.strip().isdigit():
        return min(float(value.strip()), 30.0)
    return None


def _size(n: int) -> str:
    return f"{n / MB:g} MB" if n >= MB else f"{n / 1024:g} KB" if n >= 1024 else f"{n} bytes"


# -- pages ----------------------------------------------------------------------------------------------
@dataclass
class FetchedPage:
    """A loaded page: the Document (done-to-be or failed) plus the raw HTML for link extraction."""

    doc: Document
    html: str | None = None
    final_url: str | None = None


def page_kind(media_type: str, body: bytes) -> str | None:
    """'html', 'text', or None (not something we analyse). Sniffs when the server sent no type."""
    if media_type in HTML_TYPES:
        return "html"
    if media_type in TEXT_TYPES:
        return "text"
    if not media_type or media_type == "application/octet-stream":
        head = body[:2048]
        if b"\x00" in head:
            return None
        if re.search(rb"<(!doctype html|html|head|body)\b", head, re.I):
            return "html"
        return "text" if not media_type else None
    return None


def fetch_page(url: str, fetcher: Fetcher, source: str = "url", guard: Guard | None = None) -> FetchedPage:
    """Fetch one page and extract its main content as markdown. Failures come back as a failed Document.
    `guard` vets redirects (see Fetcher.get)."""
    from ..core.errors import UserError
    from .extract import extract_page
    from .text import check_text

    doc = Document(uri=url, source=source, fetched_at=utcnow())
    try:
        resp = fetcher.get(url, guard=guard)
    except FetchError as exc:
        doc.http_status, doc.content_type = exc.http_status, exc.content_type
        if exc.final_url and exc.final_url != url:
            doc.meta["final_url"] = exc.final_url
        return FetchedPage(doc.failed(str(exc)), final_url=exc.final_url)
    doc.http_status, doc.content_type = resp.status, resp.media_type or None
    if resp.final_url != url:
        doc.meta["final_url"] = resp.final_url
    kind = page_kind(resp.media_type, resp.body)
    if kind is None:
        what = resp.media_type or "binary content"
        return FetchedPage(doc.failed(f"not a text/HTML page ({what})"), final_url=resp.final_url)
    text = resp.text()
    if "\x00" in text[:8192]:
        return FetchedPage(doc.failed("not a text/HTML page (binary content)"), final_url=resp.final_url)
    html = None
    try:
        if kind == "html":
            html = text
            page = extract_page(html, url=resp.final_url)
            doc.title, doc.description = page.title, page.description
            _record_canonical(doc, page.canonical or _link_header_canonical(resp))
            text = page.markdown
        doc.text = check_text(text, "the page")
    except UserError:
        return FetchedPage(doc.failed("no text found on the page"), html, resp.final_url)
    except Exception as exc:  # an extractor bug costs this page, not the batch
        return FetchedPage(doc.failed(f"cannot extract the page's text: {type(exc).__name__}"), html, resp.final_url)
    return FetchedPage(doc, html, resp.final_url)


def _link_header_canonical(resp: Response) -> str | None:
    """A canonical sent as an HTTP header (`Link: <https://example.com/a>; rel="canonical"`), absolute."""
    value = next((v for k, v in resp.headers.items() if k.lower() == "link"), None)
    if not value:
        return None
    for link in requests.utils.parse_header_links(value):
        if "canonical" in str(link.get("rel", "")).lower().split() and link.get("url"):
            return urljoin(resp.final_url, link["url"])
    return None


def _record_canonical(doc: Document, canonical: str | None) -> None:
    """`meta["canonical"]`: the page's canonical URL, normalised; stored in its own column (core/store.py)."""
    if canonical and url_problem(canonical) is None:
        try:
            doc.meta["canonical"] = normalize_url(canonical)
        except ValueError:
            pass
