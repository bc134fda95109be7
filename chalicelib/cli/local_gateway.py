"""The local API Gateway and its Lambda execution environments.

On AWS an execution environment serves one event at a time and several run side by side.
Chalice's own local server runs every request on a thread of one process sharing one app
object, whose ``current_request`` is a single attribute (aws/chalice#759): concurrent requests
read each other's headers, bodies and principals. Here each execution environment is a worker
process holding its own app (``python -m chalicelib.cli.local_gateway --worker FD``) and serving
one request at a time over a socket; the gateway (a threaded HTTP server in the supervisor)
hands each request to an idle environment, waiting for one when all are busy.

Like API Gateway, the gateway answers for itself only what never reaches a function: unknown
routes (``TallyLocalGateway``), request lines and headers over 10,240 bytes (431), bodies over
10 MB (413), malformed HTTP (400), no environment free within 29 s (503), a function that runs
past 29 s (504) or dies (502). Every one of those answers is the JSON error envelope.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import itertools
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from typing import Any

from chalice.local import ForbiddenError, LocalGateway

from chalicelib.api import stripe_webhook
from chalicelib.api.middleware import resolve_request_id
from chalicelib.api.responses import dumps, error_body

NO_ROUTE_BODY = error_body(404, "NOT_FOUND", "No such route.")
INTEGRATION_TIMEOUT = 29.0  # API Gateway's limit for a synchronous Lambda integration
MAX_HEADER_BYTES = 10_240  # request line plus headers, as API Gateway counts them
MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit


#: Routes API Gateway sends to a function of their own (aws_proxy), not to the API handler: (method, path) → name.
FUNCTION_ROUTES = {(stripe_webhook.METHOD, stripe_webhook.PATH): stripe_webhook.FUNCTION}


def proxy_event(method: str, path: str, headers: dict, body: bytes | None, request_id: str) -> dict[str, Any]:
    """The REST API's Lambda proxy event for a request (a text body as text, any other base64-encoded)."""
    from urllib.parse import parse_qs

    bare, _, query = path.partition("?")
    params = parse_qs(query, keep_blank_values=True)
    text: str | None = None
    if body:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
    return {
        "resource": bare,
        "path": bare,
        "httpMethod": method,
        "headers": dict(headers),
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in params.items()} or None,
        "multiValueQueryStringParameters": params or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {"resourcePath": bare, "httpMethod": method, "path": "/api" + bare, "stage": "api",
                           "requestId": request_id},
        "body": text if text is not None or not body else base64.b64encode(body).decode("ascii"),
        "isBase64Encoded": text is None and bool(body),
    }


class TallyLocalGateway(LocalGateway):
    """API Gateway answers unknown routes itself; the deployed stack maps that answer
    (MISSING_AUTHENTICATION_TOKEN) to a 404 envelope in ``infra/resources.json``, and so does this.
    Routes of ``FUNCTION_ROUTES`` go to their own function, as the deployed integration sends them."""

    def handle_request(self, method: str, path: str, headers: dict, body: bytes | None) -> Any:
        function = FUNCTION_ROUTES.get((method, path.split("?", 1)[0]))
        if function is not None:
            context = self._generate_lambda_context()
            event = proxy_event(method, path, headers, body, context.aws_request_id)
            return self._app_object.handler_map[function](event, context)
        try:
            return super().handle_request(method=method, path=path, headers=headers, body=body)
        except ForbiddenError:
            # Raised by LocalGateway only when no route matches (we use no authorizers).
            supplied = next((v for k, v in headers.items() if k.lower() == "x-request-id"), None)
            return {
                "statusCode": 404,
                "headers": {"Content-Type": "application/json", "X-Request-Id": resolve_request_id(supplied)},
                "multiValueHeaders": {},
                "body": dumps(NO_ROUTE_BODY),
            }


# --- an execution environment (worker process) ------------------------------------------------------

def serve_one_at_a_time(fd: int) -> int:
    """Worker main loop: receive a request, run it through the app, send the answer; repeat."""
    from chalice.config import Config

    from chalicelib.cli.devstack import load_app
    from chalicelib.cli.emulator import die_with_parent
    from chalicelib.cli.resources import PROJECT_DIR

    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor stops us (SIGTERM)
    # On AWS every function has CPU of its own; here all share a few cores. Requests come in as fast as
    # clients send them, so the request-serving environments yield the CPU to the emulated AWS services and
    # the background functions rather than starve them.
    with contextlib.suppress(OSError):
        os.nice(5)
    app = load_app()
    config = Config.create(chalice_stage="local", app_name="tally", chalice_app=app, project_dir=str(PROJECT_DIR))
    gateway = TallyLocalGateway(app, config)
    conn = Connection(fd)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            method, path, headers, body = conn.recv()
        except (EOFError, OSError):
            return 0
        try:
            answer = gateway.handle_request(method, path, headers, body)
        except Exception:  # a crash outside the app's own error handling: API Gateway answers 502
            import traceback

            traceback.print_exc()
            answer = None
        conn.send(answer)


# --- the gateway ---------------------------------------------------------------------------------------

class ExecutionEnvironment:
    """One worker process and the socket to it."""

    _numbers = itertools.count(1)

    def __init__(self) -> None:
        self.number = next(self._numbers)
        parent, child = socket.socketpair()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "chalicelib.cli.local_gateway", "--worker", str(child.fileno())],
            pass_fds=(child.fileno(),), env={**os.environ, "AWS_SDK_UA_APP_ID": "tally-api"})
        child.close()
        self.conn = Connection(parent.detach())
        self.ready = False

    def wait_ready(self, timeout: float) -> None:
        if not self.conn.poll(timeout):
            raise RuntimeError(f"execution environment {self.number} did not start within {timeout:.0f} s")
        self.conn.recv()
        self.ready = True

    def invoke(self, request: tuple, timeout: float) -> Any:
        """The function's answer; TimeoutError past ``timeout``; EOFError if the process died."""
        self.conn.send(request)
        if not self.conn.poll(timeout):
            raise TimeoutError
        return self.conn.recv()

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.process.kill()
        with contextlib.suppress(OSError):
            self.conn.close()


class Pool:
    """Execution environments, each lent to one request at a time."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._idle: queue.Queue[ExecutionEnvironment] = queue.Queue()
        self._all: list[ExecutionEnvironment] = []
        self._lock = threading.Lock()
        self._closed = False

    def start(self, timeout: float = 60.0) -> None:
        started = [self._spawn() for _ in range(self.size)]
        deadline = time.monotonic() + timeout
        for environment in started:
            environment.wait_ready(max(1.0, deadline - time.monotonic()))
            self._idle.put(environment)

    def _spawn(self) -> ExecutionEnvironment:
        environment = ExecutionEnvironment()
        with self._lock:
            self._all.append(environment)
        return environment

    def _replace(self, broken: ExecutionEnvironment) -> None:
        """A dead or stuck environment is killed and a fresh one takes its place (as Lambda does)."""
        broken.kill()
        with self._lock:
            if broken in self._all:
                self._all.remove(broken)
            if self._closed:
                return

        def start() -> None:
            fresh = self._spawn()
            try:
                fresh.wait_ready(60.0)
            except (RuntimeError, EOFError, OSError):
                self._replace(fresh)
                return
            self._idle.put(fresh)

        threading.Thread(target=start, daemon=True).start()

    def invoke(self, request: tuple) -> tuple[int, Any]:
        """(status, answer): 200 with the function's answer, else 502/503/504 with None."""
        deadline = time.monotonic() + INTEGRATION_TIMEOUT
        while True:
            try:
                environment = self._idle.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return 503, None
            if environment.process.poll() is None:
                break
            self._replace(environment)  # ended while idle (killed, crashed): never hand a request to it
        try:
            answer = environment.invoke(request, INTEGRATION_TIMEOUT)
        except TimeoutError:
            self._replace(environment)
            return 504, None
        except (EOFError, OSError):
            self._replace(environment)
            return 502, None
        self._idle.put(environment)
        return (200, answer) if answer is not None else (502, None)

    def pids(self) -> list[int]:
        with self._lock:
            return [e.process.pid for e in self._all]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            environments = list(self._all)
        for environment in environments:
            with contextlib.suppress(OSError):
                environment.process.terminate()
        for environment in environments:
            with contextlib.suppress(subprocess.TimeoutExpired):
                environment.process.wait(timeout=1.0)
            environment.kill()


_GATEWAY_ERRORS = {
    400: ("BAD_REQUEST", "The request could not be parsed."),
    413: ("PAYLOAD_TOO_LARGE", "The request body exceeds 10 MB."),
    414: ("URI_TOO_LONG", "The request line is too long."),
    431: ("REQUEST_HEADER_FIELDS_TOO_LARGE", "The request line and headers exceed 10,240 bytes."),
    501: ("NOT_IMPLEMENTED", "The request method is not supported."),
    502: ("BAD_GATEWAY", "The function ended without answering."),
    503: ("SERVICE_UNAVAILABLE", "No execution environment became free in time; retry."),
    504: ("GATEWAY_TIMEOUT", "The function did not answer within 29 seconds."),
    505: ("HTTP_VERSION_NOT_SUPPORTED", "Only HTTP/1.0 and HTTP/1.1 are supported."),
}


class GatewayHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive; every request goes to an execution environment of the pool."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: GatewayServer

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):  # any method token: the function (or the gateway) answers it
            return self._handle
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:  # the app logs each request as JSON
        return

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (bad request line, header too long, …) as the JSON envelope."""
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            self.request_version = "HTTP/1.0"  # an unparsed request line: answer with a status line and headers
            self.close_connection = True
        self._send_envelope(code)

    def _send_envelope(self, status: int, headers: dict[str, str] | None = None) -> None:
        code, message = _GATEWAY_ERRORS.get(status, ("ERROR", "The request failed."))
        supplied = self.headers.get("X-Request-Id") if getattr(self, "headers", None) else None
        body = dumps(error_body(status, code, message)).encode()
        self.close_connection = self.close_connection or status in (400, 413, 414, 431, 505)
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Request-Id", resolve_request_id(supplied))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if getattr(self, "command", None) != "HEAD":
                self.wfile.write(body)
        except OSError:
            self.close_connection = True

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while True:
                size = int(self.rfile.readline(1024).split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                total += size
                if total > MAX_BODY_BYTES:
                    raise OverflowError
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)
            return b"".join(chunks) or None
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        if length > MAX_BODY_BYTES:
            raise OverflowError
        return self.rfile.read(length) if length else None

    def _handle(self) -> None:
        header_bytes = len(self.requestline) + sum(len(k) + len(v) + 4 for k, v in self.headers.items())
        if header_bytes > MAX_HEADER_BYTES:
            self._send_envelope(431)
            return
        try:
            body = self._read_body()
        except OverflowError:
            self._send_envelope(413)
            return
        except ValueError:
            self._send_envelope(400)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("transfer-encoding", "connection")}
        status, answer = self.server.pool.invoke((self.command, self.path, headers, body))
        if answer is None:
            self._send_envelope(status, {"Retry-After": "1"} if status == 503 else None)
            return
        self._send_answer(answer)

    def _send_answer(self, answer: dict[str, Any]) -> None:
        import base64

        body = answer.get("body")
        if answer.get("isBase64Encoded") and body is not None:
            body = base64.b64decode(body)
        if isinstance(body, str):
            body = body.encode("utf-8")
        headers = dict(answer.get("headers") or {})
        content_type = headers.pop("Content-Type", None) or headers.pop("content-type", "application/json")
        self.send_response(int(answer["statusCode"]))
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body or b"")))
        for name, value in headers.items():
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, str(value))
        for name, values in (answer.get("multiValueHeaders") or {}).items():
            for value in values:
                self.send_header(name, str(value))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)


class GatewayServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a stop never waits for in-flight requests
    request_queue_size = 128  # socketserver's default backlog of 5 overflows when many clients connect at once
    pool: Pool


class Gateway:
    """The HTTP front and its pool of execution environments."""

    def __init__(self, host: str, port: int, environments: int) -> None:
        self.pool = Pool(environments)
        self.server = GatewayServer((host, port), GatewayHandler, bind_and_activate=False)
        self.server.pool = self.pool
        self.server.allow_reuse_address = True
        self.host, self.port = host, port

    def start(self) -> None:
        self.server.server_bind()
        self.server.server_activate()
        self.pool.start()
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="gateway", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if getattr(self, "_thread", None):
            self.server.shutdown()
        self.server.server_close()
        self.pool.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chalicelib.cli.local_gateway")
    parser.add_argument("--worker", type=int, required=True, help="socket file descriptor to serve on")
    return serve_one_at_a_time(parser.parse_args(argv).worker)


if __name__ == "__main__":
    sys.exit(main())
