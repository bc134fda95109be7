"""The real local stack for black-box tests: `tally dev up` in a subprocess, as `make run` starts it.

One stack per test module (each with its own TALLY_HOME and port); talk to it over real HTTP
with :func:`call` and through the CLI with :func:`tally`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from chalicelib.cli.devstack import free_port

TALLY = str(Path(sys.executable).with_name("tally"))


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


def local_stack(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[dict]:
    """Start the stack, yield ``{"base", "home", "proc"}``, stop it with Ctrl-C (SIGINT)."""
    home = tmp_path_factory.mktemp(name)
    port = free_port()
    log = (home / "stack.log").open("w")
    proc = subprocess.Popen([TALLY, "dev", "up", "--port", str(port)], env=stack_env(home), stdout=log,
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if call("GET", f"{base}/health")[0] == 200 and (home / "state.json").exists():
                break
        except OSError:
            time.sleep(0.2)
        assert proc.poll() is None, (home / "stack.log").read_text()
    else:
        proc.kill()
        pytest.fail("local stack did not start: " + (home / "stack.log").read_text())
    try:
        yield {"base": base, "home": home, "proc": proc}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGUSR1)  # faulthandler: every thread's stack into stack.log
                time.sleep(1)
                proc.kill()  # never leak a stack; the test still fails on the timeout
                proc.wait()
                log.close()
                pytest.fail("local stack ignored Ctrl-C for 20 s; its threads:\n"
                            + (home / "stack.log").read_text()[-6000:])
        log.close()


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
