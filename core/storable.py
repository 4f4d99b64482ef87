"""What may go into the store and the logs: valid UTF-8, and URLs without their passwords.

Python strings can hold lone surrogates that UTF-8 cannot: a file name that is not valid UTF-8 comes in as
`caf\\udce9.md` (surrogateescape), escaped JSON (`"\\ud800"`) decodes to one, and so does a command-line
argument with stray bytes. DuckDB refuses such a string, so one odd file used to stop a batch at the same place
on every re-run. `safe_text` writes each lone surrogate as its escape (`\\udce9`), which is readable and keeps
two different names different, so a resumed run still recognises what it stored.

`http://user:secret@host/` is how people pass basic-auth credentials; the fetch needs them, but
`documents.uri`, `runs.command`, meta, errors and progress lines must not show them. `strip_userinfo` drops the
whole user info (a token is often passed as the user name alone).

Query parameters carry credentials too (`?api_key=...`, `?access_token=...`, `?password=...`, a signed URL's
`X-Amz-Signature`): their values are written `***` wherever a URL is stored or shown (`redact_url` for a URL,
`redact_text` for free text). A name that is a credential whatever its value (`password`, `api_key`,
`access_token`, ...) always loses it; a name that is also used for ordinary things (`key`, `token`, `sig`, ...)
loses a value that looks like a secret (16+ characters mixing letters and digits), so `?key=SPACE` keeps
telling two wiki pages apart. Two pages that differ only in a secret value are one page in the store.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_SURROGATE = re.compile("[\ud800-\udfff]")
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#@]*@")
# Query (or path-parameter) names whose value is a credential, lower case, compared case-insensitively.
SECRET_PARAMS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "secret",
        "client_secret",
        "api_key",
        "apikey",
        "api-key",
        "access_token",
        "auth_token",
        "id_token",
        "refresh_token",
        "private_token",
        "session_token",
        "authorization",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "x-goog-signature",
        "x-goog-credential",
    }
)
# ... and names also used for ordinary values: redacted only when the value looks like a secret.
SECRET_IF_LONG = frozenset({"key", "token", "sig", "signature", "auth", "pass", "code"})
REDACTED = "***"
_SECRET_QUERY = re.compile(
    r"(?i)([?&;]("
    + "|".join(re.escape(n) for n in sorted(SECRET_PARAMS | SECRET_IF_LONG, key=len, reverse=True))
    + r")=)([^&#\s\"'<>]+)"
)
_LOOKS_SECRET = re.compile(r"(?=.*[A-Za-z])(?=.*[0-9])[A-Za-z0-9._~+/=%-]{16,}")


def _redact_param(m: re.Match) -> str:
    name, value = m.group(2).lower(), m.group(3)
    core = value.rstrip(")]}.,;:!?")  # a URL quoted in prose ends before its closing bracket or full stop
    if not core or core == REDACTED or (name in SECRET_IF_LONG and not _LOOKS_SECRET.fullmatch(core)):
        return m.group(0)
    return m.group(1) + REDACTED + value[len(core) :]


def _redact_query(text: str) -> str:
    return _SECRET_QUERY.sub(_redact_param, text) if "=" in text else text


def safe_text(value):
    """`value` with every lone surrogate written as its backslash escape; non-strings unchanged."""
    if not isinstance(value, str) or not _SURROGATE.search(value):
        return value
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def safe_value(value):
    """`safe_text` through dicts, lists and tuples (a document's meta before it becomes JSON)."""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, dict):
        return {safe_text(k) if isinstance(k, str) else k: safe_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [safe_value(v) for v in value]
    return value


def strip_userinfo(url):
    """A URL without its user info (`http://me:pw@host/a` -> `http://host/a`); anything else unchanged."""
    if not isinstance(url, str) or "@" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:  # a malformed URL still loses its credentials
        return _URL_USERINFO.sub(lambda m: m.group(1), url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[1], parts.path, parts.query, parts.fragment))


def redact_url(url):
    """A URL as stored and shown: no user info, credential query values as ***; anything else unchanged."""
    if not isinstance(url, str):
        return url
    return _redact_query(strip_userinfo(url))


def redact_text(text):
    """Free text (a command line, an error message, a URL kept in meta) with the user info of every
    `scheme://user:pw@` removed and the value of every credential query parameter (SECRET_PARAMS) shown as ***."""
    if not isinstance(text, str):
        return text
    text = _redact_query(text)
    if "@" in text:
        text = _URL_USERINFO.sub(lambda m: m.group(1), text)
    return text


def redact_value(value):
    """`redact_text` through dicts, lists and tuples (a document's meta: a crawled page's links and the like)."""
    if isinstance(value, str):
        return redact_text(value) if "://" in value else value
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v) for v in value]
    return value


def stored_uri(uri):
    """The spelling of a URI in the store: no credentials (`redact_url`), no lone surrogates. Resume compares
    these."""
    return safe_text(redact_url(uri))
