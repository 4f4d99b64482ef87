"""What may go into the store and the logs: valid UTF-8, and URLs without their passwords.

Python strings can hold lone surrogates that UTF-8 cannot: a file name that is not valid UTF-8 comes in as
`caf\\udce9.md` (surrogateescape), escaped JSON (`"\\ud800"`) decodes to one, and so does a command-line
argument with stray bytes. DuckDB refuses such a string, so one odd file used to stop a batch at the same place
on every re-run. `safe_text` writes each lone surrogate as its escape (`\\udce9`), which is readable and keeps
two different names different, so a resumed run still recognises what it stored.

`http://user:secret@host/` is how people pass basic-auth credentials; the fetch needs them, but
`documents.uri`, `runs.command` and progress lines must not show them. `redact_url` drops the whole user info
(a token is often passed as the user name alone).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_SURROGATE = re.compile("[\ud800-\udfff]")
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#@]*@")


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


def redact_url(url):
    """A URL without its user info (`http://me:pw@host/a` -> `http://host/a`); anything else unchanged."""
    if not isinstance(url, str) or "@" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:  # a malformed URL still loses its credentials
        return redact_text(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[1], parts.path, parts.query, parts.fragment))


def redact_text(text):
    """Free text (a command line, an error message) with the user info of every `scheme://user:pw@` removed."""
    if not isinstance(text, str) or "@" not in text:
        return text
    return _URL_USERINFO.sub(lambda m: m.group(1), text)


def stored_uri(uri):
    """The spelling of a URI in the store: no password, no lone surrogates. Resume compares these."""
    return safe_text(redact_url(uri))
