"""DataForSEO On-Page content parsing: DataForSEO fetches and parses the page, revprompt analyses its main text.

    revprompt analyze --source dataforseo https://example.com/page
    revprompt analyze --source dataforseo --urls urls.txt
    revprompt analyze --source dataforseo --urls urls.txt --dataforseo-js --dataforseo-language de-DE

One `POST /v3/on_page/content_parsing/live` per page, body `[{"url": ..., "markdown_view": true,
"enable_javascript": false}]` (plus `accept_language` / `custom_user_agent` when set), HTTP Basic auth.
The response is read as docs.dataforseo.com documents it: the page's own HTTP status is on
`tasks[0].result[0].items[0].status_code` (an error page is a failed row, not content to analyse), an item of
type `broken` is a page DataForSEO could not load, and `page_as_markdown` only comes because we ask for it.

Credentials come from the environment or the config file, never from the command line:

    DATAFORSEO_LOGIN / DATAFORSEO_PASSWORD            (environment), or
    # ~/.config/revprompt/config.toml  (or the file REVPROMPT_CONFIG names)
    [dataforseo]
    login = "me@example.com"
    password = "..."
    base_url = "https://api.dataforseo.com"         # optional; also REVPROMPT_DATAFORSEO_BASE_URL
    enable_javascript = false                        # optional; --dataforseo-js
    accept_language = "en-US"                        # optional; --dataforseo-language
    user_agent = "Mozilla/5.0 ..."                   # optional; --dataforseo-user-agent
    page_price = 0.000125                            # optional: USD per page for --estimate (default: the
                                                     # list price, $0.000125; $0.00125 with JavaScript)
    retries = 4                                      # optional: retries of a transient error
    retry_backoff = 2.0                              # optional: first wait in seconds, doubled each retry

The password is held in a `Secret` and every message that leaves this module is redacted, so it never
reaches the database, a log line or an error message.

Errors (docs.dataforseo.com/v3/appendix/errors): the rate limit (40202), "too many simultaneous requests"
(40209), the codes that ask to resubmit (40101, 40103), 5xxxx and HTTP 429/5xx are transient: the call is
retried with a doubling wait. An account error (40100 auth, 402xx payment/limits/access, HTTP 401/402/403)
stops the run's DataForSEO calls: the `Account` remembers it, no new call starts after it (waits in other
threads are cut short), and the remaining pages fail with the same message, each still getting its row;
fix the account and re-run with `--retry-failed`. Anything else fails one page.

The `Account` also sums `tasks[].cost` (what DataForSEO says each call cost, in USD) so the command can show
it and store it on the run.
"""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from ..core.config import Secret, config_path  # noqa: F401  (re-exported)
from ..core.config import read_config_section as _read_config_section
from ..core.config import truthy as _truthy
from ..core.errors import UserError
from ..core.types import Document, utcnow
from .base import Source, SourceContext
from .fetch import USER_AGENT, ThreadSessions, is_http_url, normalize_url
from .web import read_url_list

DEFAULT_BASE_URL = "https://api.dataforseo.com"
ENDPOINT = "/v3/on_page/content_parsing/live"
LOGIN_ENV = "DATAFORSEO_LOGIN"
PASSWORD_ENV = "DATAFORSEO_PASSWORD"
BASE_URL_ENV = "REVPROMPT_DATAFORSEO_BASE_URL"
OK = 20000
ACCOUNT_OPTION = "_dataforseo_account"  # the run's shared Account travels in the options under this key

# What one content_parsing/live call costs, for --estimate (the real charge is each task's `cost`, summed by
# Account). DataForSEO's On-Page API price list bills $0.000125 per crawled page (basic), and
# `enable_javascript` adds 9 x basic ($0.00125 a page); their announcement of content parsing shows a live
# call's response with "cost": 0.000125. `page_price` in the config overrides both (prices change).
PAGE_PRICE = 0.000125
PAGE_PRICE_JS = 0.00125
PAGE_PRICE_SOURCE = "DataForSEO's On-Page API list price, dataforseo.com/pricing/on-page/onpage-api"

# Transient: rate limit per minute, too many simultaneous requests, "resubmit the task" codes.
TRANSIENT_CODES = frozenset({40202, 40209, 40101, 40103})
TRANSIENT_HTTP = frozenset({429, 500, 502, 503, 504})
BROKEN_HINT = (
    "the site may refuse DataForSEO's default crawler: try --dataforseo-js, --dataforseo-language "
    "en-US or --dataforseo-user-agent, then re-run with --retry-failed"
)


def read_config_section(path: Path | None = None) -> dict:
    """The `[dataforseo]` table of the config file; {} when there is no file."""
    return _read_config_section("dataforseo", path)


def _option(options: Mapping[str, Any], name: str):
    """A fetch setting from the command line. The CLI passes them as `_name` so that changing one (say
    --dataforseo-js to retry broken pages) still resumes the same run instead of starting a new one."""
    value = options.get("_" + name)
    return value if value is not None else options.get(name)


@dataclass
class DataForSEOSettings:
    login: str
    password: Secret = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    enable_javascript: bool = False
    accept_language: str | None = None
    user_agent: str | None = None
    timeout: float = 120.0  # the live endpoint fetches and parses the page itself: give it time
    retries: int = 4
    retry_backoff: float = 2.0

    @classmethod
    def resolve(cls, options: Mapping[str, Any] | None = None) -> DataForSEOSettings:
        """Options win over the environment, which wins over the config file."""
        options = options or {}
        conf = read_config_section()
        env = os.environ
        login = env.get(LOGIN_ENV) or conf.get("login")
        password = env.get(PASSWORD_ENV) or conf.get("password")
        if not login or not password:
            raise UserError(
                f"no DataForSEO credentials: set {LOGIN_ENV} and {PASSWORD_ENV}, or put login and password "
                f"under [dataforseo] in {config_path()}"
            )
        base_url = (
            options.get("dataforseo_base_url") or env.get(BASE_URL_ENV) or conf.get("base_url") or DEFAULT_BASE_URL
        )
        if not is_http_url(base_url):
            raise UserError(f"DataForSEO base URL must be an http(s) URL, not {base_url!r}")
        js = _option(options, "dataforseo_javascript")
        try:
            retries = int(
                _option(options, "dataforseo_retries")
                if _option(options, "dataforseo_retries") is not None
                else conf.get("retries", 4)
            )
            backoff = float(_option(options, "dataforseo_retry_backoff") or conf.get("retry_backoff") or 2.0)
            timeout = float(options.get("dataforseo_timeout") or conf.get("timeout") or 120.0)
        except (TypeError, ValueError):
            raise UserError(
                f"[dataforseo] retries, retry_backoff and timeout in {config_path()} must be numbers"
            ) from None
        return cls(
            login=str(login).strip(),
            password=Secret(str(password).strip()),
            base_url=base_url.rstrip("/"),
            enable_javascript=_truthy(js if js is not None else conf.get("enable_javascript", False)),
            accept_language=_option(options, "dataforseo_accept_language") or conf.get("accept_language") or None,
            user_agent=_option(options, "dataforseo_user_agent") or conf.get("user_agent") or None,
            timeout=timeout,
            retries=max(0, retries),
            retry_backoff=max(0.0, backoff),
        )

    def redact(self, text) -> str:
        """`text` with the password (and the Authorization header built from it) masked."""
        text = str(text)
        secret = self.password.reveal()
        if secret:
            token = base64.b64encode(f"{self.login}:{secret}".encode()).decode()
            text = text.replace(token, "***").replace(secret, "***")
        return text


class Account:
    """What one run's DataForSEO calls share: the money they cost, and the account error that stops them.

    Created by the command and passed in the options (ACCOUNT_OPTION) so that every source of the run (the
    SERP lookup and the page fetches) adds to one total and obeys one stop.
    """

    def __init__(self):
        self.cost = 0.0
        self.calls = 0
        self.fatal: str | None = None
        self._stopped = threading.Event()
        self._lock = threading.Lock()

    def charge(self, envelope: dict) -> None:
        """Add the `cost` of every task in a response (failed tasks can be billed too)."""
        total = 0.0
        for task in envelope.get("tasks") or []:
            if isinstance(task, dict) and isinstance(task.get("cost"), (int, float)):
                total += float(task["cost"])
        with self._lock:
            self.cost += total
            self.calls += 1

    def stop(self, message: str) -> None:
        with self._lock:
            if self.fatal is None:
                self.fatal = message
        self._stopped.set()

    def wait(self, seconds: float) -> bool:
        """Sleep before a retry; True when an account error stopped the run meanwhile."""
        return self._stopped.wait(seconds)


def account_for(options: MutableMapping[str, Any]) -> Account:
    account = options.get(ACCOUNT_OPTION)
    if not isinstance(account, Account):
        account = Account()
        options[ACCOUNT_OPTION] = account
    return account


class DataForSEOError(Exception):
    """One call that DataForSEO could not answer. `fatal`: no later call can succeed (auth, funds);
    `transient`: the same call may succeed later (rate limit, resubmit, server error)."""

    def __init__(
        self,
        message: str,
        fatal: bool = False,
        http_status: int | None = None,
        transient: bool = False,
        wait: float | None = None,
    ):
        super().__init__(message)
        self.fatal = fatal
        self.http_status = http_status
        self.transient = transient and not fatal
        self.wait = wait


def _is_fatal(code: int | None, http_status: int) -> bool:
    if http_status in (401, 402, 403) or code == 40100:
        return True
    return isinstance(code, int) and code // 100 == 402 and code not in TRANSIENT_CODES


def _is_transient(code: int | None, http_status: int) -> bool:
    if isinstance(code, int) and (code in TRANSIENT_CODES or 50000 <= code < 60000):
        return True
    return http_status in TRANSIENT_HTTP


def _retry_after(resp: requests.Response) -> float | None:
    try:
        return max(0.0, float(resp.headers.get("Retry-After", "")))
    except ValueError:
        return None


def content_to_markdown(page_content: dict | None, page_as_markdown: str | None = None) -> tuple[str, str | None, dict]:
    """(markdown, title, facts) from a content_parsing item: the main topics' primary content as headed
    sections (the page's main text, without header, footer and secondary content); DataForSEO's own
    `page_as_markdown` when the topics hold no text."""
    page_content = page_content or {}
    parts: list[str] = []
    title = None
    language = None
    for topic in page_content.get("main_topic") or []:
        if not isinstance(topic, dict):
            continue
        heading = (topic.get("h_title") or "").strip()
        if title is None:
            title = (topic.get("main_title") or "").strip() or heading or None
        language = language or topic.get("language")
        if heading:
            try:
                level = min(max(int(topic.get("level") or 2), 1), 6)
            except (TypeError, ValueError):
                level = 2
            parts.append("#" * level + " " + heading)
        for block in topic.get("primary_content") or []:
            text = (block.get("text") or "").strip() if isinstance(block, dict) else ""
            if text:
                parts.append(text)
    markdown = "\n\n".join(parts)
    if not markdown.strip() and page_as_markdown and page_as_markdown.strip():
        markdown = page_as_markdown.strip()
    return markdown, title, {"language": language} if language else {}


class DataForSEOClient:
    def __init__(self, settings: DataForSEOSettings, account: Account | None = None):
        self.settings = settings
        self.account = account or Account()
        self._sessions = ThreadSessions(self._configure)

    def _configure(self, session: requests.Session) -> None:
        session.headers["User-Agent"] = USER_AGENT
        session.auth = (self.settings.login, self.settings.password.reveal())

    @property
    def session(self) -> requests.Session:
        return self._sessions.get()

    def content_parsing(self, url: str) -> dict:
        """The task of one live content-parsing call (its `result` holds the page), or DataForSEOError."""
        s = self.settings
        data = {"url": url, "markdown_view": True, "enable_javascript": s.enable_javascript}
        if s.accept_language:
            data["accept_language"] = s.accept_language
        if s.user_agent:
            data["custom_user_agent"] = s.user_agent
        return self.call(ENDPOINT, data)

    def call(self, endpoint: str, data: dict) -> dict:
        """POST one task, retrying transient errors with a doubling wait; the task, or DataForSEOError.

        No call starts once the run's account is stopped, and an account error stops it."""
        s = self.settings
        attempt = 0
        while True:
            if self.account.fatal:
                raise DataForSEOError(self.account.fatal, fatal=True)
            try:
                return self._post_once(endpoint, data)
            except DataForSEOError as exc:
                exc.args = (s.redact(exc),)
                if exc.fatal:
                    self.account.stop(str(exc))
                    raise
                if not exc.transient or attempt >= s.retries:
                    if exc.transient and attempt:
                        exc.args = (f"{exc} (after {attempt + 1} attempts)",)
                    raise
                delay = exc.wait if exc.wait is not None else s.retry_backoff * (2**attempt)
                attempt += 1
                if self.account.wait(min(delay, 120.0)):
                    raise DataForSEOError(self.account.fatal or str(exc), fatal=True) from None

    def _post_once(self, endpoint: str, data: dict) -> dict:
        s = self.settings
        try:
            resp = self.session.post(s.base_url + endpoint, json=[data], timeout=(10, s.timeout), allow_redirects=False)
        except requests.exceptions.Timeout:
            # not retried: a live task that timed out on our side may still have been run (and billed)
            raise DataForSEOError(f"DataForSEO: timed out after {s.timeout:g}s") from None
        except requests.exceptions.RequestException as exc:
            host = urlsplit(s.base_url).netloc
            raise DataForSEOError(f"DataForSEO: cannot reach {host} ({type(exc).__name__})", transient=True) from None
        try:
            envelope = resp.json()
        except ValueError:
            envelope = None
        if not isinstance(envelope, dict):
            fatal = _is_fatal(None, resp.status_code)
            hint = self._auth_hint() if resp.status_code == 401 else ""
            raise DataForSEOError(
                f"DataForSEO: HTTP {resp.status_code}{hint}",
                fatal,
                resp.status_code,
                transient=_is_transient(None, resp.status_code),
                wait=_retry_after(resp),
            )
        self.account.charge(envelope)
        code = envelope.get("status_code")
        message = s.redact(envelope.get("status_message") or "").strip().rstrip(".")
        if code != OK or resp.status_code >= 400:
            fatal = _is_fatal(code, resp.status_code)
            hint = self._auth_hint() if (code == 40100 or resp.status_code == 401) else ""
            raise DataForSEOError(
                f"DataForSEO error {code or resp.status_code}: {message or 'no message'}{hint}",
                fatal,
                resp.status_code,
                transient=_is_transient(code, resp.status_code),
                wait=_retry_after(resp),
            )
        tasks = envelope.get("tasks") or []
        if not tasks or not isinstance(tasks[0], dict):
            raise DataForSEOError("DataForSEO returned no task")
        task = tasks[0]
        task_code = task.get("status_code")
        if task_code != OK:
            task_message = s.redact(task.get("status_message") or "").strip().rstrip(".")
            raise DataForSEOError(
                f"DataForSEO task error {task_code}: {task_message or 'no message'}",
                _is_fatal(task_code, 200),
                transient=_is_transient(task_code, 200),
            )
        return task

    def _auth_hint(self) -> str:
        return f" (check {LOGIN_ENV} / {PASSWORD_ENV} or [dataforseo] in {config_path()})"


def task_to_document(uri: str, task: dict) -> Document:
    """A Document from a content_parsing task: failed when the page answered an error, was `broken` for
    DataForSEO's crawler, or held no text."""
    doc = Document(uri=uri, source="dataforseo", fetched_at=utcnow())
    doc.meta["dataforseo"] = {"task_id": task.get("id"), "cost": task.get("cost")}
    results = task.get("result") or []
    if not results or not isinstance(results[0], dict):
        return doc.failed("DataForSEO returned no result for the page")
    items = [i for i in results[0].get("items") or [] if isinstance(i, dict)]
    if not items:
        return doc.failed("DataForSEO returned no page")
    item = next((i for i in items if i.get("type") == "content_parsing_element"), items[0])
    status = item.get("status_code")
    if isinstance(status, int) and 100 <= status < 600:
        doc.http_status = status
    if item.get("fetch_time"):
        doc.meta["dataforseo"]["fetch_time"] = item["fetch_time"]
    kind = item.get("type") or "content_parsing_element"
    if kind == "broken":
        answered = f"HTTP {doc.http_status}, " if doc.http_status else ""
        return doc.failed(f"DataForSEO could not load the page ({answered}broken): {BROKEN_HINT}")
    if doc.http_status and doc.http_status >= 400:
        return doc.failed(f"HTTP {doc.http_status} (fetched by DataForSEO)")
    if kind != "content_parsing_element":
        return doc.failed(f"DataForSEO returned a {kind!r} item instead of the page's content")
    text, title, facts = content_to_markdown(item.get("page_content"), item.get("page_as_markdown"))
    doc.title = title
    doc.meta.update(facts)
    if not text.strip():
        return doc.failed("DataForSEO found no text on the page")
    doc.text = text
    return doc


class DataForSEOSource(Source):
    name = "dataforseo"
    description = "DataForSEO On-Page content parsing of URLs (credentials: DATAFORSEO_LOGIN / DATAFORSEO_PASSWORD)"
    concurrent_loads = True
    run_neutral_options = frozenset({"dataforseo_timeout"})

    def __init__(self):
        self._client: DataForSEOClient | None = None
        self._lock = threading.Lock()

    def claims(self, target: str, options: SourceContext) -> bool:
        return False  # DataForSEO costs money: only when asked for with --source dataforseo

    def client(self, options: SourceContext) -> DataForSEOClient:
        with self._lock:
            if self._client is None:
                self._client = DataForSEOClient(DataForSEOSettings.resolve(options), account_for(options))
            return self._client

    def discover(self, target: str, options: SourceContext):
        self.client(options)  # no credentials: say so before the first page, not once per page
        if is_http_url(target):
            return [normalize_url(target)]
        if target == "-" or Path(target).expanduser().is_file():
            return read_url_list(target, self.name, options)
        raise UserError(f"--source dataforseo needs a URL or a file of URLs, not {target!r}")

    def load(self, uri: str, options: SourceContext) -> Document:
        client = self.client(options)
        try:
            task = client.content_parsing(uri)
        except DataForSEOError as exc:
            return Document(uri=uri, source=self.name, fetched_at=utcnow()).failed(client.settings.redact(exc))
        doc = task_to_document(uri, task)
        if doc.error:
            doc.error = client.settings.redact(doc.error)
        return doc
