"""Sending one webhook delivery over HTTP (stdlib only: nothing extra in the Lambda bundle)."""

from __future__ import annotations

import ipaddress
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

EXCERPT = 256


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect could lead past the URL checks made at registration: treat it as the answer."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


@dataclass(frozen=True)
class SendResult:
    status_code: int | None
    duration_ms: int
    error: str | None = None
    excerpt: str | None = None


def private_address(host: str) -> str | None:
    """The first non-public address ``host`` resolves to, if any (checked before every request, so a
    name that now points into a private network is refused even though it passed registration)."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return None  # unresolvable: the request itself reports it
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if not address.is_global:
            return str(address)
    return None


class HttpSender:
    def __init__(self, timeout_seconds: float, *, allow_private: bool = False) -> None:
        self._timeout = timeout_seconds
        self._allow_private = allow_private
        self._opener = urllib.request.build_opener(_NoRedirects)

    def post(self, url: str, body: str, headers: dict[str, str]) -> SendResult:
        started = time.monotonic()
        if not self._allow_private:
            blocked = private_address(urlsplit(url).hostname or "")
            if blocked:
                return SendResult(None, _ms(started), f"Refused: the host resolves to a non-public address ({blocked})")
        request = urllib.request.Request(url, data=body.encode("utf-8"), headers=headers, method="POST")
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                excerpt = response.read(EXCERPT).decode("utf-8", "replace")
                return SendResult(response.status, _ms(started), None, excerpt)
        except urllib.error.HTTPError as exc:
            try:
                excerpt = exc.read(EXCERPT).decode("utf-8", "replace") if exc.fp else None
            except Exception:
                excerpt = None
            return SendResult(exc.code, _ms(started), f"HTTP {exc.code}", excerpt)
        except Exception as exc:  # URLError, timeouts, and http.client's protocol errors (bad status line …)
            reason = getattr(exc, "reason", exc)
            return SendResult(None, _ms(started), f"{type(exc).__name__}: {reason}"[:200])


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
