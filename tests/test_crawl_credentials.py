"""Credentials never reach the store, the logs or an error (issue 13): a crawl of a loopback site behind basic
auth, started from `http://user:password@host/`, whose pages link with user info and with secret query values.

The credentials go to the site as an Authorization header (robots.txt included); no URL the crawl queues, stores
(documents.uri, meta.links, meta.final_url, errors, runs.command) or logs holds them. A link whose secret was
redacted in meta.links cannot be rebuilt from it, so a resumed crawl reads that page again for its links (it is
not analysed or stored twice).
"""

from __future__ import annotations

import base64
import json
import logging
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_batch_site import StopAfter, StubEngine  # noqa: E402

from revprompt.core.batch import BatchRunner  # noqa: E402
from revprompt.core.storable import redact_text, redact_url, stored_uri  # noqa: E402
from revprompt.core.store import Store  # noqa: E402

USER, PASSWORD = "crawler", "hunter2-Secret"
LINK_USERINFO = "other:pw2-LinkSecret"
TOKEN = "tok_9f8e7d6c5b4a39281706"
API_KEY = "k3yV4lue0123456789abc"
SECRETS = (PASSWORD, "pw2-LinkSecret", TOKEN, API_KEY)
OPTIONS = {
    "timeout": 5,
    "retries": 0,
    "crawl_delay": 0,
    "max_depth": 3,
    "max_pages": None,
    "retry_failed": False,
    "concurrency": 1,
}


class AuthSite:
    """Every path, robots.txt included, answers 401 without the right Authorization header."""

    def __init__(self):
        self.hits: Counter = Counter()
        self.unauthorised: list[str] = []
        self._lock = threading.Lock()
        site = self
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                with site._lock:
                    site.hits[self.path] += 1
                    if self.headers.get("Authorization") != expected:
                        site.unauthorised.append(self.path)
                        return self._send(
                            401, b"who are you?", "text/plain", {"WWW-Authenticate": 'Basic realm="staging"'}
                        )
                status, body, kind, headers = site.page(self.path)
                self._send(status, body, kind, headers)

            def _send(self, status, body: bytes, kind: str, headers: dict | None = None):
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def page(self, path: str):
        if path == "/robots.txt":
            return 200, b"User-agent: *\nAllow: /\n", "text/plain", None
        if path == "/away":  # a redirect off the crawled site, carrying a key: refused, and its error redacted
            return 302, b"", "text/html", {"Location": f"http://127.0.0.2:9/x?api_key={API_KEY}"}
        links = ""
        if path == "/":
            links = (
                f'<a href="/a">a</a> <a href="/b?token={TOKEN}">b</a> '
                f'<a href="http://{LINK_USERINFO}@127.0.0.1:{self._server.server_port}/c">c</a> '
                '<a href="/away">away</a>'
            )
        name = path.strip("/").split("?")[0] or "home"
        body = (
            f"<html><head><title>Page {name}</title></head><body><h1>Page {name}</h1><p>The {name} page of the "
            f"staging site explains how to prune {name} roses in early spring, before the buds swell.</p>"
            f"<p>{links}</p></body></html>"
        )
        return 200, body.encode(), "text/html; charset=utf-8", None

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def site():
    with AuthSite() as server:
        yield server


def dump(store: Store) -> str:
    """Everything the store holds about runs and documents, as one string."""
    parts = []
    for table in ("runs", "documents"):
        columns, rows = store.query(f"SELECT * FROM {table}")
        parts.append(json.dumps([dict(zip(columns, r)) for r in rows], default=str))
    return "\n".join(parts)


def test_a_crawl_with_credentials_stores_and_logs_none_and_resumes(site, db_path, caplog):
    caplog.set_level(logging.DEBUG, logger="revprompt")
    target = f"http://{USER}:{PASSWORD}@127.0.0.1:{site._server.server_port}/"
    engine = StubEngine()

    def runner(progress=None):
        return BatchRunner(
            store, lambda: engine, {"model": "stub"}, analyzers=[], options=dict(OPTIONS), progress=progress
        )

    with Store(db_path) as store:
        with pytest.raises(KeyboardInterrupt):  # stopped after the home page and /a are stored
            runner(StopAfter(2)).run(f"analyze --crawl {target}", [target], "crawl")
        ((run_id, status),) = store.query("SELECT run_id, status FROM runs")[1]
        assert status == "interrupted" and len(store.documents(run_id)) == 2
        hits_before = Counter(site.hits)

        summary = runner().run(f"analyze --crawl {target}", [target], "crawl")
        assert summary.run_id == run_id and summary.skipped == 2
        docs = {d["uri"]: d for d in store.documents(run_id)}
        everything = dump(store)

    base = site.base
    assert site.unauthorised == []  # robots.txt and every page got the header
    assert set(docs) == {f"{base}/", f"{base}/a", f"{base}/b?token=***", f"{base}/c", f"{base}/away"}
    assert all(d["status"] == "done" for u, d in docs.items() if not u.endswith("/away"))
    assert docs[f"{base}/away"]["error"] == (
        "redirect leaves the crawled site, not followed (http://127.0.0.2:9/x?api_key=***)"
    )
    home = docs[f"{base}/"]["meta"]
    home = json.loads(home) if isinstance(home, str) else home
    assert home["links"] == [f"{base}/a", f"{base}/b?token=***", f"{base}/c", f"{base}/away"]
    assert home["links_redacted"] is True
    for secret in SECRETS:
        assert secret not in everything, secret
        assert all(secret not in record.getMessage() for record in caplog.records), secret
    assert f"{USER}:" not in everything

    # The resumed crawl read the home page again for its links (their secrets are not in the store), analysed
    # nothing twice, and fetched nothing else twice.
    assert hits_before["/"] == 1 and site.hits["/"] == 2
    assert site.hits["/a"] == 1 and site.hits[f"/b?token={TOKEN}"] == 1 and site.hits["/c"] == 1
    assert len(engine.texts) == len(set(engine.texts)) == 4


def test_redaction_rules():
    assert redact_url("http://me:pw@h/a?x=1&api_key=K&b=2") == "http://h/a?x=1&api_key=***&b=2"
    assert redact_url("https://h/s?X-Amz-Signature=ab12&X-Amz-Credential=AKIA/2025") == (
        "https://h/s?X-Amz-Signature=***&X-Amz-Credential=***"
    )
    # Names that also carry ordinary values lose only values that look like secrets.
    assert redact_url("https://wiki/display?key=SPACE&token=next") == "https://wiki/display?key=SPACE&token=next"
    assert redact_url(f"https://maps/api?key={API_KEY}") == "https://maps/api?key=***"
    assert redact_url("https://h/?monkey=1&keyboard=2") == "https://h/?monkey=1&keyboard=2"
    assert stored_uri(f"https://h/p?token={TOKEN}") == "https://h/p?token=***"
    assert redact_text(f"GET https://u:{PASSWORD}@h/p?password=x failed") == "GET https://h/p?password=*** failed"
    assert redact_text(redact_text(f"https://h/?access_token={TOKEN}")) == "https://h/?access_token=***"
