"""The local stack behind ``make run``, shaped like the deployment.

* The AWS emulator (:mod:`chalicelib.cli.emulator`): moto's server in its own process, its state
  on disk under ``.tally/data`` so it survives a restart or a kill.
* Resources from the deployment template, then idempotent demo data.
* The gateway on 127.0.0.1:8000 with its execution environments (:mod:`chalicelib.cli.local_gateway`):
  worker processes that each serve one request at a time, as Lambda does.
* The job environments (:mod:`chalicelib.cli.runner`): two per queue-triggered function and one for the
  schedules, each serving one event at a time.

One stack per ``.tally`` folder, held by a lock that dies with the process. Environment is configured
here *before* anything imports boto3 or the models, because PynamoDB reads table names and endpoints
at import time; the child processes inherit it.
"""

from __future__ import annotations

import contextlib
import faulthandler
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chalicelib.cli.resources import PROJECT_DIR

STACK_NAME = "tally-local"
REGION = "us-east-1"
STATE_DIR = Path(os.environ.get("TALLY_HOME", PROJECT_DIR / ".tally"))
STATE_FILE = STATE_DIR / "state.json"
SECRETS_FILE = STATE_DIR / "dev-secrets.json"
DATA_DIR = STATE_DIR / "data"
LOCK_FILE = STATE_DIR / "stack.lock"
DEFAULT_WORKERS = int(os.environ.get("TALLY_LOCAL_WORKERS") or 4)
# Lambda polls a queue with several concurrent invocations: environments per queue-triggered function.
DEFAULT_JOB_ENVIRONMENTS = int(os.environ.get("TALLY_LOCAL_JOB_ENVIRONMENTS") or 2)


def load_app() -> Any:
    """The Chalice app object from the project's ``app.py``."""
    if str(PROJECT_DIR) not in sys.path:
        sys.path.insert(0, str(PROJECT_DIR))
    from app import app

    return app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dev_secrets() -> dict[str, Any]:
    """Secrets that stay stable across restarts so demo credentials keep working."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    if SECRETS_FILE.exists():
        return json.loads(SECRETS_FILE.read_text())
    from chalicelib.domain.credentials import new_secret, random_id

    data = {
        "jwtSecret": secrets.token_urlsafe(48),
        "apiKeys": {
            "sandbox": f"pk_test_{random_id('', 16)}.{new_secret()}",
            "production": f"pk_live_{random_id('', 16)}.{new_secret()}",
        },
        "platformToken": f"{random_id('ptk_', 16)}|{new_secret()}",
    }
    SECRETS_FILE.write_text(json.dumps(data, indent=2))
    SECRETS_FILE.chmod(0o600)
    return data


def configure_environment(aws_endpoint: str, base_url: str, extra: dict[str, str] | None = None) -> None:
    """Point boto3/PynamoDB at the local endpoint and set Tally's local settings."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        os.environ.pop(name, None)
    os.environ.update({
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL": aws_endpoint,
        "TALLY_STAGE": "local",
        "TALLY_RESOURCE_PREFIX": f"{STACK_NAME}-",
        "TALLY_JWT_ALGORITHMS": "HS256",
        "TALLY_JWT_SECRET": dev_secrets()["jwtSecret"],
        "TALLY_PUBLIC_BASE_URL": base_url,
    })
    # Quick local feedback on failing receivers: retries after 2 s, 10 s, 50 s … (deployed: 10 s, 50 s …).
    os.environ.setdefault("TALLY_WEBHOOK_RETRY_BASE_SECONDS", "2")
    # One emulator process answers every worker: under a burst on a small machine a call can queue for longer
    # than DynamoDB ever takes, and a 3 s read timeout would turn that queue into retries and 503s.
    os.environ.setdefault("TALLY_DYNAMODB_READ_TIMEOUT_SECONDS", "15")
    os.environ.update(extra or {})
    from chalicelib import bootstrap
    from chalicelib.settings import get_settings

    get_settings.cache_clear()
    bootstrap.reset()
    if "chalicelib.adapters.dynamodb.connection" in sys.modules:
        sys.modules["chalicelib.adapters.dynamodb.connection"].reset()


def _lock_free() -> bool:
    """True when no stack holds the lock (the holder's death releases it, even by SIGKILL)."""
    if not LOCK_FILE.exists():
        return True
    with LOCK_FILE.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
    return True


def read_state() -> dict[str, Any] | None:
    """The running stack's state, or None when no stack is running (a state file left by a killed
    stack is stale: its lock died with it)."""
    if not STATE_FILE.exists() or _lock_free():
        return None
    return json.loads(STATE_FILE.read_text())


class AlreadyRunningError(RuntimeError):
    pass


DATA_LAYOUT = 2  # bumped when stored keys move: 2 = issue 12 (customer partitions, counter shards, credit lanes)
LAYOUT_FILE = DATA_DIR / "layout"


class DataLayoutError(RuntimeError):
    """The data directory was written by an older storage layout: the stack would not find it."""


def check_data_layout() -> None:
    """Refuse data an older layout wrote (its items sit under keys this code no longer reads), with the way
    out; mark a new or empty data directory with the current layout."""
    written = any(DATA_DIR.iterdir()) if DATA_DIR.exists() else False
    layout = int(LAYOUT_FILE.read_text().strip() or 0) if LAYOUT_FILE.exists() else (1 if written else DATA_LAYOUT)
    if layout != DATA_LAYOUT:
        raise DataLayoutError(
            f"The data in {DATA_DIR} was written by storage layout {layout}; this version uses layout "
            f"{DATA_LAYOUT} (customers, usage counters and credits are stored under new keys). Run "
            "`tally dev reset` to start from nothing.")
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    LAYOUT_FILE.write_text(f"{DATA_LAYOUT}\n")


def _terminate(processes: list[subprocess.Popen], grace: float) -> None:
    """SIGTERM to all at once, SIGKILL to whoever is still there after ``grace`` seconds."""
    for process in processes:
        if process.poll() is None:
            with contextlib.suppress(OSError):
                process.terminate()
    deadline = time.monotonic() + grace
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        if process.poll() is None:
            with contextlib.suppress(OSError):
                process.kill()
            process.wait()


@dataclass
class LocalStack:
    """The whole local stack: the AWS emulator, the gateway with its execution environments, the jobs
    process. Each is a process of its own, as each is a service of its own on AWS; all of them end
    within half a second of this one, however it ends."""

    api_port: int = 8000
    host: str = "127.0.0.1"
    workers: int = DEFAULT_WORKERS
    job_environments: int = DEFAULT_JOB_ENVIRONMENTS
    run_jobs: bool = True
    clock_offset_days: float = 0.0  # the stack's clock runs this far ahead (grace periods, month ends)
    timings: dict[str, float] = field(default_factory=dict)

    def start(self) -> LocalStack:
        self._lock = _open_lock()
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            self._lock = None
            raise AlreadyRunningError(f"A local stack is already running (see {STATE_FILE}).") from None
        try:
            check_data_layout()
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> LocalStack:
        started = time.monotonic()
        self.moto_port = free_port()
        self.aws_endpoint = f"http://{self.host}:{self.moto_port}"
        self.base_url = f"http://{self.host}:{self.api_port}"
        self.emulator = subprocess.Popen(
            [sys.executable, "-m", "chalicelib.cli.emulator", "--host", self.host, "--port", str(self.moto_port),
             "--data", str(DATA_DIR)], stdout=subprocess.PIPE, text=True)
        line = self.emulator.stdout.readline() if self.emulator.stdout else ""
        if not line.startswith("{"):
            raise RuntimeError("the AWS emulator did not start (see its output above)")
        self.restored = json.loads(line)
        threading.Thread(target=shutil.copyfileobj, args=(self.emulator.stdout, sys.stdout), daemon=True).start()
        self.timings["emulator"] = time.monotonic() - started
        configure_environment(self.aws_endpoint, self.base_url)

        import boto3

        from chalicelib.cli.resources import provision

        env = provision(boto3.session.Session(), stack_name=STACK_NAME, region=REGION,
                        parameters={"PublicBaseUrl": self.base_url,
                                    "JwtIssuer": "tally-local", "JwtAudience": "tally-dashboard",
                                    "AllowedOrigins": f"{self.base_url},http://localhost:{self.api_port}"})
        # The template's parameters have no Cognito locally: HS256 from dev secrets instead.
        env.pop("TALLY_JWT_JWKS_URL", None)
        # The offset goes into the state file's env too, so `tally` commands share the stack's clock.
        env["TALLY_CLOCK_OFFSET_SECONDS"] = str(int(self.clock_offset_days * 86400))
        configure_environment(self.aws_endpoint, self.base_url, env)
        self.env = env

        from chalicelib.cli import demo

        mark = time.monotonic()
        self.demo = demo.seed(dev_secrets())
        self.timings["demo"] = time.monotonic() - mark
        from chalicelib.cli.local_gateway import Gateway

        self.gateway = Gateway(self.host, self.api_port, self.workers)
        from chalicelib.cli.runner import queue_handlers

        # As on AWS, each queue-triggered function has environments of its own (and one for the schedules).
        self._job_roles = ([("--schedules",)] + [("--queue", name) for name in queue_handlers(load_app())
                                                  for _ in range(self.job_environments)]) if self.run_jobs else []
        self.jobs = [self._job_environment(role) for role in self._job_roles]
        self.gateway.start()
        self.timings["start"] = time.monotonic() - started
        partial = STATE_FILE.with_suffix(".tmp")  # written whole, then renamed: readers never see half of it
        partial.write_text(json.dumps({
            "pid": os.getpid(), "baseUrl": self.base_url, "awsEndpoint": self.aws_endpoint,
            "stackName": STACK_NAME, "region": REGION, "tenantId": self.demo["tenantId"], "env": env,
            "startedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "dataDir": str(DATA_DIR),
            "processes": {"emulator": self.emulator.pid, "jobs": [p.pid for p in self.jobs],
                          "environments": self.gateway.pool.pids()},
        }, indent=2))
        os.replace(partial, STATE_FILE)
        return self

    def watch(self) -> str | None:
        """Replace a job environment that ended (as Lambda would); a reason to stop if the emulator ended."""
        if self.emulator.poll() is not None:
            return f"the AWS emulator ended (exit status {self.emulator.returncode})"
        for index, process in enumerate(self.jobs):
            if process.poll() is not None:
                self.jobs[index] = self._job_environment(self._job_roles[index])
        return None

    @staticmethod
    def _job_environment(role: tuple[str, ...]) -> subprocess.Popen:
        command = [sys.executable, "-m", "chalicelib.cli.runner", *role]
        environment = {**os.environ, "AWS_SDK_UA_APP_ID": "tally-jobs"}  # its class in the emulator's fair lock
        return subprocess.Popen(command, env=environment)

    def stop(self) -> None:
        """Stop promptly: in-flight requests are abandoned, not awaited (what was acknowledged is
        already committed by the emulator)."""
        if getattr(self, "gateway", None):
            self.gateway.stop()
        _terminate([*getattr(self, "jobs", []), *([self.emulator] if getattr(self, "emulator", None) else [])],
                   grace=2.0)
        if getattr(self, "_lock", None):
            if STATE_FILE.exists():
                STATE_FILE.unlink()
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None


def _open_lock() -> Any:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    return LOCK_FILE.open("a")


def reset() -> int:
    """``tally dev reset``: forget every table item, object, message and secret (the stack must be stopped)."""
    if not _lock_free():
        print(f"A local stack is running (see {STATE_FILE}): stop it first.")
        return 1
    if DATA_DIR.exists():
        shutil.rmtree(DATA_DIR)
    for stale in (STATE_FILE, STATE_DIR / "cookies.txt"):
        if stale.exists():
            stale.unlink()
    print(f"Removed {DATA_DIR}: the next `make run` starts from nothing (demo credentials stay in {SECRETS_FILE}).")
    return 0


def run_forever(api_port: int = 8000, workers: int = DEFAULT_WORKERS, clock_offset_days: float = 0.0) -> int:
    """``make run``: start, print how to get credentials, stop cleanly on Ctrl-C or SIGTERM."""
    try:
        stack = LocalStack(api_port=api_port, workers=workers, clock_offset_days=clock_offset_days).start()
    except (AlreadyRunningError, DataLayoutError) as exc:
        print(str(exc))
        return 1
    except OSError as exc:  # e.g. the port is taken by another program
        print(f"The local stack could not start on port {api_port}: {exc.strerror or exc}.")
        return 1
    print(f"Tally is running on {stack.base_url}  (AWS services: moto at {stack.aws_endpoint}; "
          f"{stack.workers} execution environments; data in {DATA_DIR})")
    print(f"Started in {stack.timings['start']:.1f} s (restored {stack.restored.get('objects', 0)} S3 objects and "
          f"{stack.restored.get('messages', 0)} queued messages in {stack.restored.get('restoreSeconds', 0):.2f} s).")
    if clock_offset_days:
        print(f"The stack's clock runs {clock_offset_days:g} days ahead of this machine's "
              "(dashboard JWTs still expire by the real clock).")
    print("Demo credentials:  .venv/bin/tally dev credentials --json")
    print(f"Try:  curl {stack.base_url}/dashboard/tenant -H \"Authorization: Bearer $(.venv/bin/tally dev token)\"")
    print("Stop with Ctrl-C.", flush=True)
    stopping = threading.Event()
    # A shell starts background jobs with SIGINT ignored, and Python then never raises KeyboardInterrupt:
    # take SIGINT back so Ctrl-C (or `kill -INT`) always stops the stack.
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>` prints every thread's stack
    reason = None
    while not stopping.wait(0.5) and reason is None:
        reason = stack.watch()
    began = time.monotonic()
    print(f"\nStopping: {reason}." if reason else "\nStopping…", flush=True)
    stack.stop()
    print(f"Stopped in {time.monotonic() - began:.1f} s.", flush=True)
    return 1 if reason else 0
