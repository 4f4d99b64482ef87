"""DataForSEO On-Page content parsing: DataForSEO fetches and parses the page, revprompt analyses its main text.

    revprompt analyze --source dataforseo https://example.com/page
    revprompt analyze --source dataforseo --urls urls.txt

One `POST /v3/on_page/content_parsing/live` per page, body `[{"url": ..., "enable_javascript": false}]`, HTTP
Basic auth. Credentials come from the environment or the config file, never from the command line:

    DATAFORSEO_LOGIN / DATAFORSEO_PASSWORD            (environment), or
    # ~/.config/revprompt/config.toml  (or the file REVPROMPT_CONFIG names)
    [dataforseo]
    login = "me@example.com"
    password = "..."
    base_url = "https://api.dataforseo.com"         # optional; also REVPROMPT_DATAFORSEO_BASE_URL
    enable_javascript = false                        # optional

The password is held in a `Secret` and every message that leaves this module is redacted, so it never
reaches the database, a log line or an error message. An authorization or payment failure (status codes
401xx/402xx/403xx) is remembered: the remaining pages of the batch fail with the same message without
calling the API again, each still getting its row; fix the credentials and re-run with `--retry-failed`.
"""

from __future__ import annotations

import base64
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests

from revprompt.core.errors import UserError
from revprompt.core.types import Document, utcnow

from .fetch import USER_AGENT, ThreadSessions, is_http_url, normalize_url
from .web import read_url_list
from revprompt.core.config import Secret, config_path  # noqa: F401  (re-exported)
from revprompt.core.config import read_config_section as _read_config_section
from revprompt.core.config import truthy as _truthy

DEFAULT_BASE_URL = "https://api.dataforseo.com"
ENDPOINT = "/v3/on_page/content_parsing/live"
LOGIN_ENV = "DATAFORSEO_LOGIN"
PASSWORD_ENV = "DATAFORSEO_PASSWORD"
BASE_URL_ENV = "REVPROMPT_DATAFORSEO_BASE_URL"
OK = 20000


def read_config_section(path: Path | None = None) -> dict:
    """The `[dataforseo]` table of the config file; {} when there is no file."""
    return _read_config_section("dataforseo", path)


@dataclass
class DataForSEOSettings:
    login: str
    password: Secret = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    enable_javascript: bool = False
    timeout: float = 120.0  # the live endpoint fetches and parses the page itself: give it time

    @classmethod
    def resolve(cls, options: dict | None = None) -> "DataForSEOSettings":
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
        base_url = options.get("dataforseo_base_url") or env.get(BASE_URL_ENV) or conf.get("base_url") or DEFAULT_BASE_URL
        if not is_http_url(base_url):
            raise UserError(f"DataForSEO base URL must be an http(s) URL, not {base_url!r}")
        js = options.get("dataforseo_javascript")
        return cls(
            login=str(login).strip(),
            password=Secret(str(password).strip()),
            base_url=base_url.rstrip("/"),
            enable_javascript=_truthy(js if js is not None else conf.get("enable_javascript", False)),
            timeout=float(options.get("dataforseo_timeout") or conf.get("timeout") or 120.0),
        )

    def redact(self, text) -> str:
        """`text` with the password (and the Authorization header built from it) masked."""
        text = str(text)
        secret = self.password.reveal()
        if secret:
            token = base64.b64encode(f"{self.login}:{secret}".encode()).decode()
            text = text.replace(token, "***").replace(secret, "***")
        return text


class DataForSEOError(Exception):
    """One page that DataForSEO could not give us. `fatal`: no later call can succeed (auth, funds)."""

    def __init__(self, message: str, fatal: bool = False, http_status: int | None = None):
        super().__init__(message)
        self.fatal = fatal
        self.http_status = http_status


def _is_fatal(code: int | None, http_status: int) -> bool:
    return http_status in (401, 402, 403) or (isinstance(code, int) and code // 100 in (401, 402, 403))


def content_to_markdown(page_content: dict | None, page_as_markdown: str | None = None) -> tuple[str, str | None, dict]:
    """(markdown, title, facts) from a content_parsing item: the main topics as headed sections."""
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
    def __init__(self, settings: DataForSEOSettings):
        self.settings = settings
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
        endpoint = s.base_url + ENDPOINT
        body = [{"url": url, "enable_javascript": s.enable_javascript}]
        try:
            resp = self.session.post(endpoint, json=body, timeout=(10, s.timeout), allow_redirects=False)
        except requests.exceptions.Timeout:
            raise DataForSEOError(f"DataForSEO: timed out after {s.timeout:g}s") from None
        except requests.exceptions.RequestException as exc:
            host = urlsplit(s.base_url).netloc
            raise DataForSEOError(f"DataForSEO: cannot reach {host} ({type(exc).__name__})") from None
        try:
            envelope = resp.json()
        except ValueError:
            envelope = None
        if not isinstance(envelope, dict):
            fatal = _is_fatal(None, resp.status_code)
            hint = self._auth_hint() if resp.status_code == 401 else ""
            raise DataForSEOError(f"DataForSEO: HTTP {resp.status_code}{hint}", fatal, resp.status_code)
        code = envelope.get("status_code")
        message = self.settings.redact(envelope.get("status_message") or "").strip().rstrip(".")
        if code != OK or resp.status_code >= 400:
            fatal = _is_fatal(code, resp.status_code)
            hint = self._auth_hint() if (code == 40100 or resp.status_code == 401) else ""
            raise DataForSEOError(f"DataForSEO error {code or resp.status_code}: {message or 'no message'}{hint}",
                                  fatal, resp.status_code)
        tasks = envelope.get("tasks") or []
        if not tasks or not isinstance(tasks[0], dict):
            raise DataForSEOError("DataForSEO returned no task")
        task = tasks[0]
        task_code = task.get("status_code")
        if task_code != OK:
            task_message = self.settings.redact(task.get("status_message") or "").strip().rstrip(".")
            raise DataForSEOError(f"DataForSEO task error {task_code}: {task_message or 'no message'}",
                                  _is_fatal(task_code, 200))
        return task

    def _auth_hint(self) -> str:
        return f" (check {LOGIN_ENV} / {PASSWORD_ENV} or [dataforseo] in {config_path()})"


def task_to_document(uri: str, task: dict) -> Document:
    doc = Document(uri=uri, source="dataforseo", fetched_at=utcnow())
    doc.meta["dataforseo"] = {"task_id": task.get("id"), "cost": task.get("cost")}
    results = task.get("result") or []
    if not results or not isinstance(results[0], dict):
        return doc.failed("DataForSEO returned no result for the page")
    result = results[0]
    page_status = result.get("status_code")
    doc.http_status = page_status if isinstance(page_status, int) else None
    items = [i for i in result.get("items") or [] if isinstance(i, dict)]
    item = next((i for i in items if i.get("type", "content_parsing_element") == "content_parsing_element"), None)
    if isinstance(page_status, int) and page_status >= 400:
        return doc.failed(f"HTTP {page_status} (fetched by DataForSEO)")
    if item is None:
        return doc.failed("DataForSEO found no content on the page")
    text, title, facts = content_to_markdown(item.get("page_content"), item.get("page_as_markdown"))
    doc.title = title
    doc.meta.update(facts)
    if item.get("fetch_time"):
        doc.meta["dataforseo"]["fetch_time"] = item["fetch_time"]
    if not text.strip():
        return doc.failed("DataForSEO found no text on the page")
    doc.text = text
    return doc


class DataForSEOSource:
    name = "dataforseo"
    description = "DataForSEO On-Page content parsing of URLs (credentials: DATAFORSEO_LOGIN / DATAFORSEO_PASSWORD)"
    concurrent_loads = True

    def __init__(self):
        self._client: DataForSEOClient | None = None
        self._lock = threading.Lock()
        self._fatal: str | None = None  # set after an auth/payment failure: later pages fail without a call

    def claims(self, target: str, options: dict) -> bool:
        return False  # DataForSEO costs money: only when asked for with --source dataforseo

    def client(self, options: dict) -> DataForSEOClient:
        with self._lock:
            if self._client is None:
                self._client = DataForSEOClient(DataForSEOSettings.resolve(options))
            return self._client

    def discover(self, target: str, options: dict):
        self.client(options)  # no credentials: say so before the first page, not once per page
        if is_http_url(target):
            return [normalize_url(target)]
        if target == "-" or Path(target).expanduser().is_file():
            return read_url_list(target, self.name)
        raise UserError(f"--source dataforseo needs a URL or a file of URLs, not {target!r}")

    def load(self, uri: str, options: dict) -> Document:
        if self._fatal:
            return Document(uri=uri, source=self.name, fetched_at=utcnow()).failed(self._fatal)
        client = self.client(options)
        try:
            task = client.content_parsing(uri)
        except DataForSEOError as exc:
            message = client.settings.redact(exc)
            if exc.fatal:
                self._fatal = message
            return Document(uri=uri, source=self.name, fetched_at=utcnow()).failed(message)
        doc = task_to_document(uri, task)
        if doc.error:
            doc.error = client.settings.redact(doc.error)
        return doc
