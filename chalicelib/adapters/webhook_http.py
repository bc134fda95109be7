"""Sending one webhook delivery over HTTP (stdlib only: nothing extra in the Lambda bundle)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from dataclasses import dataclass

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


class HttpSender:
    def __init__(self, timeout_seconds: float) -> None:
        self._timeout = timeout_seconds
        self._opener = urllib.request.build_opener(_NoRedirects)

    def post(self, url: str, body: str, headers: dict[str, str]) -> SendResult:
        request = urllib.request.Request(url, data=body.encode("utf-8"), headers=headers, method="POST")
        started = time.monotonic()
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                excerpt = response.read(EXCERPT).decode("utf-8", "replace")
                return SendResult(response.status, _ms(started), None, excerpt)
        except urllib.error.HTTPError as exc:
            excerpt = exc.read(EXCERPT).decode("utf-8", "replace") if exc.fp else None
            return SendResult(exc.code, _ms(started), f"HTTP {exc.code}", excerpt)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            return SendResult(None, _ms(started), f"{type(exc).__name__}: {reason}"[:200])


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
