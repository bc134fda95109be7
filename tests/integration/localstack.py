"""The real local stack for black-box tests: `tally dev up` in a subprocess, as `make run` starts it.

One stack per test module (each with its own TALLY_HOME and port); talk to it over real HTTP
with :func:`call` and through the CLI with :func:`tally`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

TALLY = str(Path(sys.executable).with_name("tally"))


_next_port = [0]


def api_port() -> int:
    """A free port below Linux's ephemeral range (32768+) for a test stack's API.

    ``bind(0)`` ports come from the ephemeral range: a port picked that way and released can be handed to
    another stack's emulator (started by the other pytest worker) before this stack binds it, and then this
    stack's health check talks to someone else's moto. Ports below the range are never handed out that way;
    each pytest worker takes its own slice of them."""
    import socket

    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").lstrip("gw") or 0)
    base = 21000 + 2000 * worker
    while True:
        _next_port[0] += 1
        port = base + _next_port[0] % 2000
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


def stack_env(home: Path) -> dict[str, str]:
    """This process's environment minus test settings, pointing the CLI at ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TALLY_", "AWS_"))}
    env["TALLY_HOME"] = str(home)
    return env


def call(method: str, url: str, headers: dict | None = None, body: dict | None = None) -> tuple[int, dict, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


class Stack:
    """`tally dev up` in a subprocess on a TALLY_HOME of its own; start, stop, kill and start again."""

    def __init__(self, home: Path, port: int | None = None, args: tuple[str, ...] = ()) -> None:
        self.home = home
        self.args = args  # more `tally dev up` options
        self.port = port or api_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self._log = None

    @property
    def log_text(self) -> str:
        path = self.home / "stack.log"
        return path.read_text() if path.exists() else ""

    def start(self, timeout: float = 90.0) -> Stack:
        self._log = (self.home / "stack.log").open("a")
        self.proc = subprocess.Popen([TALLY, "dev", "up", "--port", str(self.port), *self.args],
                                     env=stack_env(self.home), stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if call("GET", f"{self.base}/health")[0] == 200 and (self.home / "state.json").exists():
                    return self
            except OSError:
                time.sleep(0.2)
            assert self.proc.poll() is None, self.log_text
        self.proc.kill()
        pytest.fail("local stack did not start: " + self.log_text)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20.0) -> float:
        """Send ``sig`` and wait for the whole stack to end; returns the seconds it took."""
        assert self.proc is not None
        began = time.monotonic()
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGUSR1)  # faulthandler: every thread's stack into stack.log
            time.sleep(1)
            self.proc.kill()  # never leak a stack; the test still fails on the timeout
            self.proc.wait()
            pytest.fail(f"local stack ignored signal {sig} for {timeout:.0f} s; its threads:\n"
                        + self.log_text[-6000:])
        took = time.monotonic() - began
        if self._log:
            self._log.close()
        return took

    def kill(self) -> None:
        """SIGKILL the supervisor, as an OOM killer or `kill -9` would; its children follow it."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        if self._log:
            self._log.close()

    def children_alive(self) -> list[int]:
        state_pids = []
        try:
            state = json.loads((self.home / "state.json").read_text())
            processes = state.get("processes", {})
            state_pids = [processes.get("emulator"), *processes.get("jobs", []), *processes.get("environments", [])]
        except (OSError, ValueError):
            pass
        alive = []
        for pid in filter(None, state_pids):
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0]
            except (OSError, IndexError):
                continue
            if state != "Z":  # a zombie has ended: it only waits for its (new) parent to reap it
                alive.append(pid)
        return alive

    def info(self) -> dict:
        return {"base": self.base, "home": self.home, "proc": self.proc, "stack": self}


_TEMPLATE: dict[str, Path] = {}


def _seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home whose stack was started once (demo data seeded) and stopped: copied for each module's stack,
    so each starts from the state a first `make run` leaves, without seeding it again."""
    if "home" not in _TEMPLATE:
        home = tmp_path_factory.mktemp("tally-template")
        stack = Stack(home).start()
        stack.stop()
        for leftover in ("stack.log", "cookies.txt", "state.json"):
            (home / leftover).unlink(missing_ok=True)
        _TEMPLATE["home"] = home
    return _TEMPLATE["home"]


def seeded_home(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A new TALLY_HOME holding what a first `make run` leaves behind (demo data seeded, stack stopped)."""
    home = tmp_path_factory.mktemp(name)
    shutil.copytree(_seeded_template(tmp_path_factory), home, dirs_exist_ok=True)
    return home


def local_stack(tmp_path_factory: pytest.TempPathFactory, name: str, *, fresh: bool = False) -> Iterator[dict]:
    """Start a stack (on a copy of the seeded template unless ``fresh``), yield ``{"base", "home", "proc",
    "stack"}``, stop it with Ctrl-C (SIGINT)."""
    home = tmp_path_factory.mktemp(name) if fresh else seeded_home(tmp_path_factory, name)
    stack = Stack(home).start()
    try:
        yield stack.info()
    finally:
        if stack.proc is not None and stack.proc.poll() is None:
            stack.stop()


STOP_BUDGET = 5.0


def credentials(stack: Stack) -> dict:
    """`tally dev credentials --json` of this stack."""
    return json.loads(tally(stack.info(), "dev", "credentials", "--json"))


def emit(stack: Stack, key: str, customer: str, n: int) -> tuple[int, dict]:
    """POST one delta of ``n`` units (referenceId ``r-{n}``)."""
    status, _h, body = call("POST", f"{stack.base}/api/v1/balance/delta",
                            {"X-Api-Key": key, "Content-Type": "application/json"},
                            {"customerId": customer, "delta": n, "reason": f"unit {n}", "referenceId": f"r-{n}"})
    return status, body


def status_of(stack: Stack, key: str, record_id: str) -> tuple[int, dict]:
    status, _h, body = call("GET", f"{stack.base}/api/v1/balance/delta/{record_id}", {"X-Api-Key": key})
    return status, body


def published_keys(stack: Stack) -> dict:
    status, _h, body = call("GET", f"{stack.base}/api/v1/verification-keys")
    assert status == 200
    return body


def wait_verified(stack: Stack, key: str, record_ids: list[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    pending = list(record_ids)
    while pending and time.monotonic() < deadline:
        pending = [r for r in pending if status_of(stack, key, r)[1]["data"]["status"] != "VERIFIED"]
        if pending:
            time.sleep(0.5)
    assert pending == [], f"{len(pending)} deltas never verified"


def run(stack: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([TALLY, *args], env=stack_env(stack["home"]), capture_output=True, text=True, timeout=60)


def tally(stack: dict, *args: str) -> str:
    done = run(stack, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


class Recorder:
    """The SDK's own urllib transport, keeping each raw answer: tests read the exact JSON the server sent
    (the SDK rewrites some fields, e.g. every ``status`` it does not know becomes ``QUEUED``)."""

    def __init__(self) -> None:
        from pacspace_sdk.client import TransportResponse

        self.responses: list[TransportResponse] = []

    def __call__(self, method: str, url: str, headers: dict, body: object, timeout_ms: int) -> object:
        from pacspace_sdk.client import default_transport

        response = default_transport(method, url, headers, body, timeout_ms)
        self.responses.append(response)
        return response

    @property
    def last_text(self) -> str:
        return self.responses[-1].body.decode()

    @property
    def last_json(self) -> dict:
        return json.loads(self.responses[-1].body)
