"""The local stack behind ``make run``: moto in-process, resources from the deployment
template, idempotent demo data, the API on 127.0.0.1:8000 and the job runner.

Environment is configured here *before* anything imports boto3 or the models,
because PynamoDB reads table names and endpoints at import time.
"""

from __future__ import annotations

import faulthandler
import json
import os
import secrets
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib.cli.resources import PROJECT_DIR

STACK_NAME = "tally-local"
REGION = "us-east-1"
STATE_DIR = Path(os.environ.get("TALLY_HOME", PROJECT_DIR / ".tally"))
STATE_FILE = STATE_DIR / "state.json"
SECRETS_FILE = STATE_DIR / "dev-secrets.json"
DATA_DIR = STATE_DIR / "data"


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
    os.environ.update(extra or {})
    from chalicelib import bootstrap
    from chalicelib.settings import get_settings

    get_settings.cache_clear()
    bootstrap.reset()
    if "chalicelib.adapters.dynamodb.connection" in sys.modules:
        sys.modules["chalicelib.adapters.dynamodb.connection"].reset()


def read_state() -> dict[str, Any] | None:
    """The running stack's state, or None when no stack is running."""
    if not STATE_FILE.exists():
        return None
    state = json.loads(STATE_FILE.read_text())
    try:
        os.kill(int(state["pid"]), 0)
    except (OSError, KeyError, ValueError):
        return None
    return state


@dataclass
class LocalStack:
    """Start/stop the whole local stack (used by ``tally dev up`` and real-HTTP tests)."""

    api_port: int = 8000
    moto_port: int = 0
    host: str = "127.0.0.1"
    run_jobs: bool = True
    write_state: bool = True

    def start(self) -> LocalStack:
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> LocalStack:
        import logging

        from moto.server import ThreadedMotoServer

        from chalicelib.cli import motofixes

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        motofixes.install(DATA_DIR / "dynamodb.sqlite3")
        self.moto_port = self.moto_port or free_port()
        self._moto = ThreadedMotoServer(ip_address=self.host, port=self.moto_port, verbose=False)
        self._moto.start()
        # socketserver records every request thread while block_on_close is set and joins them all on close:
        # switch it off before the first request, so Ctrl-C never waits for in-flight work.
        self._moto._server.block_on_close = False
        self.aws_endpoint = f"http://{self.host}:{self.moto_port}"
        self.base_url = f"http://{self.host}:{self.api_port}"
        configure_environment(self.aws_endpoint, self.base_url)

        import boto3

        from chalicelib.cli.resources import provision

        env = provision(boto3.session.Session(), stack_name=STACK_NAME, region=REGION,
                        parameters={"PublicBaseUrl": self.base_url,
                                    "JwtIssuer": "tally-local", "JwtAudience": "tally-dashboard",
                                    "AllowedOrigins": f"{self.base_url},http://localhost:{self.api_port}"})
        # The template's parameters have no Cognito locally: HS256 from dev secrets instead.
        env.pop("TALLY_JWT_JWKS_URL", None)
        configure_environment(self.aws_endpoint, self.base_url, env)

        from chalicelib.cli import demo

        self.demo = demo.seed(dev_secrets())
        self._serve()
        if self.run_jobs:
            from chalicelib.cli.runner import JobRunner

            self.runner = JobRunner(app=load_app(), sqs_client=boto3.client("sqs", region_name=REGION),
                                    stack_name=STACK_NAME)
            self.runner.start()
        if self.write_state:
            STATE_DIR.mkdir(parents=True, exist_ok=True)
            STATE_FILE.write_text(json.dumps({
                "pid": os.getpid(), "baseUrl": self.base_url, "awsEndpoint": self.aws_endpoint,
                "stackName": STACK_NAME, "region": REGION, "tenantId": self.demo["tenantId"],
                "env": env, "startedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }, indent=2))
        return self

    def _serve(self) -> None:
        from chalice.config import Config
        from chalice.local import LocalDevServer

        from chalicelib.cli.local_gateway import TallyRequestHandler

        app = load_app()
        config = Config.create(chalice_stage="local", app_name="tally", chalice_app=app,
                               project_dir=str(PROJECT_DIR))
        self._server = LocalDevServer(app, config, self.host, self.api_port, handler_cls=TallyRequestHandler)
        self._server.server.block_on_close = False  # as for moto: never join in-flight requests on stop
        self._server_thread = threading.Thread(target=self._server.server.serve_forever, daemon=True)
        self._server_thread.start()

    def stop(self) -> None:
        """Stop promptly: in-flight requests are abandoned (their threads are daemons), not awaited."""
        if getattr(self, "runner", None):
            self.runner.stop()
        if getattr(self, "_server", None):
            self._server.shutdown()
            self._server.server.server_close()
        if getattr(self, "_moto", None):
            self._moto.stop()
        if self.write_state and STATE_FILE.exists():
            state = json.loads(STATE_FILE.read_text())
            if state.get("pid") == os.getpid():
                STATE_FILE.unlink()


def run_forever(api_port: int = 8000) -> int:
    """``make run``: start, print how to get credentials, stop cleanly on Ctrl-C."""
    if read_state():
        print(f"A local stack is already running (see {STATE_FILE}).")
        return 1
    stack = LocalStack(api_port=api_port).start()
    print(f"Tally is running on {stack.base_url}  (AWS services: moto at {stack.aws_endpoint})")
    print("Demo credentials:  .venv/bin/tally dev credentials --json")
    print(f"Try:  curl {stack.base_url}/dashboard/tenant -H \"Authorization: Bearer $(.venv/bin/tally dev token)\"")
    print("Stop with Ctrl-C.", flush=True)
    stopping = threading.Event()
    # A shell starts background jobs with SIGINT ignored, and Python then never raises KeyboardInterrupt:
    # take SIGINT back so Ctrl-C (or `kill -INT`) always stops the stack.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>` prints every thread's stack
    try:
        while not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        print("\nStopping…", flush=True)
        stack.stop()
    return 0
