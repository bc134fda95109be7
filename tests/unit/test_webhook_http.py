"""The stdlib webhook sender against real sockets: answers, protocol garbage, redirects, private hosts."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from chalicelib.adapters.webhook_http import HttpSender, private_address


@pytest.fixture
def server() -> Iterator[callable]:
    """A one-shot raw TCP server answering each connection with the given bytes; yields its URL maker."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    replies: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(replies.pop(0) if replies else b"")

    threading.Thread(target=serve, daemon=True).start()

    def answer(raw: bytes) -> str:
        replies.append(raw)
        return f"http://127.0.0.1:{listener.getsockname()[1]}/hook"

    yield answer
    listener.close()


SENDER = HttpSender(timeout_seconds=2, allow_private=True)


def test_a_2xx_answer_is_recorded_with_an_excerpt(server):
    url = server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    result = SENDER.post(url, "{}", {"Content-Type": "application/json"})
    assert (result.status_code, result.error, result.excerpt) == (200, None, "ok")


def test_an_error_status_is_recorded(server):
    url = server(b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy")
    result = SENDER.post(url, "{}", {})
    assert (result.status_code, result.error, result.excerpt) == (503, "HTTP 503", "busy")


def test_a_redirect_is_not_followed(server):
    url = server(b"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/\r\nContent-Length: 0\r\n\r\n")
    assert SENDER.post(url, "{}", {}).status_code == 302


@pytest.mark.parametrize("raw", [
    b"garbage\r\n\r\n",  # http.client.BadStatusLine
    b"",  # RemoteDisconnected
    b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",  # a broken chunked error body
])
def test_protocol_garbage_is_an_error_result_not_an_exception(server, raw):
    result = SENDER.post(server(raw), "{}", {})
    assert result.error and result.status_code in (None, 500)


def test_private_hosts_are_refused_before_any_request():
    sender = HttpSender(timeout_seconds=2, allow_private=False)
    result = sender.post("https://localhost:1/hook", "{}", {})
    assert result.status_code is None and result.error.startswith("Refused: the host resolves to a non-public")
    assert private_address("127.0.0.1") == "127.0.0.1"
    assert private_address("name.invalid") is None  # unresolvable: the request reports it
