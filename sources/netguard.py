"""Where a redirect may take a fetch: not from the web into the user's own network.

A page on the internet that answers `301 -> http://10.0.0.1/admin` (or `http://169.254.169.254/`, a cloud's
metadata service) would make revprompt fetch, analyse and store a page its user never meant to reach. The URL a
person gives is trusted as it stands (crawling an intranet, or a dev server on 127.0.0.1, is fine), but a
redirect may reach a loopback or private address only when the URL asked for is already one of the same kind.

The check runs on the redirect answer, before the next request: nothing ever connects to a refused address.
A host name is resolved to decide (a resolver answer is not a connection); one that does not resolve is left to
fail as an unknown host.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

_LOOPBACK = [ipaddress.ip_network(n) for n in ("127.0.0.0/8", "0.0.0.0/8", "::1/128", "::/128")]
_PRIVATE = [
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "fc00::/7", "fe80::/10")
]


def _kind_of_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:10.0.0.1 is 10.0.0.1
    if mapped is not None:
        ip = mapped
    if any(ip in net for net in _PRIVATE if net.version == ip.version):
        return "private"
    if any(ip in net for net in _LOOPBACK if net.version == ip.version):
        return "loopback"
    return "public"


def address_kind(host: str | None) -> str | None:
    """'loopback', 'private' or 'public' for a host name or IP literal; None when it does not resolve.

    A name with several addresses takes the least public of them, so one private A record is enough to refuse.
    """
    if not host:
        return None
    host = host.strip("[]")
    try:
        return _kind_of_ip(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return None
    kinds = set()
    for info in infos:
        try:
            kinds.add(_kind_of_ip(ipaddress.ip_address(str(info[4][0]).split("%")[0])))
        except ValueError:
            continue
    for kind in ("private", "loopback", "public"):
        if kind in kinds:
            return kind
    return None


def redirect_refusal(target_url: str, asked_kind: Callable[[], str | None]) -> str | None:
    """Why a redirect to `target_url` must not be followed, or None when it may.

    `asked_kind()` gives the kind of the URL asked for; it is called only when the target is not public, so a
    chain of ordinary redirects costs no extra look-up of the asked host.
    """
    try:
        target_host = urlsplit(target_url).hostname
    except ValueError:
        return None  # requests refuses a malformed URL on its own ("invalid URL")
    kind = address_kind(target_host)
    if kind in (None, "public") or asked_kind() == kind:
        return None
    return f"redirect to a {kind} address refused ({target_host})"
