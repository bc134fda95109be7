"""The local stack's AWS: moto's server in a process of its own, its state kept on disk.

``python -m chalicelib.cli.emulator --port P --data DIR`` serves DynamoDB, S3, SQS, Secrets
Manager and SSM on loopback. What moto keeps in memory is made durable here:

* DynamoDB items live in ``DIR/dynamodb.sqlite3`` (:mod:`chalicelib.cli.sqlite_dynamodb`): each
  request is committed before moto answers it.
* S3 objects, SQS messages (and the queue and bucket definitions), secrets and parameters are
  mirrored into ``DIR/services.sqlite3`` as each request that changes them completes, and put
  back into moto when the process starts. A restored message is visible at once (as after its
  visibility timeout), keeping what was left of its delay.

So whatever the emulator acknowledged survives a stop or a kill (SQLite in WAL mode commits
before the answer leaves), and a restart costs a read of the small service state only: the
DynamoDB tables are reattached, not reloaded.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS buckets (name TEXT PRIMARY KEY, region TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS objects (bucket TEXT NOT NULL, key TEXT NOT NULL, body BLOB NOT NULL,
                                    metadata TEXT NOT NULL, PRIMARY KEY (bucket, key));
CREATE TABLE IF NOT EXISTS queues (name TEXT PRIMARY KEY, attributes TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (queue TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL,
                                     attributes TEXT NOT NULL, group_id TEXT, dedup_id TEXT,
                                     visible_after REAL NOT NULL, PRIMARY KEY (queue, id));
CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL, description TEXT);
CREATE TABLE IF NOT EXISTS parameters (name TEXT PRIMARY KEY, value TEXT NOT NULL, type TEXT NOT NULL,
                                       description TEXT);
"""


def _wrap(owner: Any, name: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    original = getattr(owner, name)
    setattr(owner, name, make(original))


class Mirror:
    """The non-DynamoDB state of the emulator, mirrored into SQLite as moto changes it."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        self.lock = threading.Lock()
        self._dirty = threading.local()  # S3 keys changed by the request running on this thread

    def write(self, sql: str, *rows: tuple) -> None:
        with self.lock:
            self.db.executemany(sql, rows)

    # --- S3 -------------------------------------------------------------------------------------
    def _s3(self) -> Any:
        from moto.s3.models import s3_backends

        return s3_backends[ACCOUNT]["global"]

    def _flush_objects(self) -> None:
        dirty: set[tuple[str, str]] = getattr(self._dirty, "keys", set())
        self._dirty.keys = set()
        backend = self._s3()
        for bucket, key in dirty:
            stored = backend.buckets.get(bucket)
            current = stored.keys.get(key) if stored is not None else None
            if current is None:
                self.write("DELETE FROM objects WHERE bucket = ? AND key = ?", (bucket, key))
            else:
                self.write("INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?)",
                           (bucket, key, current.value, json.dumps(dict(current.metadata))))

    def _hook_s3(self) -> None:
        from moto.s3.models import S3Backend
        from moto.s3.responses import S3Response

        mirror = self

        def mark(bucket: str, key: str) -> None:
            if not hasattr(mirror._dirty, "keys"):
                mirror._dirty.keys = set()
            mirror._dirty.keys.add((bucket, key))

        def marking(original: Callable[..., Any]) -> Callable[..., Any]:
            """put_object and delete_object (every other write of an object goes through them)."""
            def run(self: Any, bucket_name: str, key_name: str, *args: Any, **kwargs: Any) -> Any:
                result = original(self, bucket_name, key_name, *args, **kwargs)
                mark(bucket_name, key_name)
                return result
            return run

        def create_bucket(original: Callable[..., Any]) -> Callable[..., Any]:
            def run(self: Any, bucket_name: str, region_name: str, *args: Any, **kwargs: Any) -> Any:
                result = original(self, bucket_name, region_name, *args, **kwargs)
                mirror.write("INSERT OR REPLACE INTO buckets VALUES (?, ?)", (bucket_name, region_name))
                return result
            return run

        def flushing(original: Callable[..., Any]) -> Callable[..., Any]:
            def run(self: Any, *args: Any, **kwargs: Any) -> Any:
                mirror._dirty.keys = set()
                try:
                    return original(self, *args, **kwargs)
                finally:
                    mirror._flush_objects()  # moto sets metadata after put_object: mirror at the end
            return run

        _wrap(S3Backend, "put_object", marking)
        _wrap(S3Backend, "delete_object", marking)
        _wrap(S3Backend, "create_bucket", create_bucket)
        _wrap(S3Response, "key_response", flushing)
        _wrap(S3Response, "bucket_response", flushing)

    def _restore_s3(self) -> int:
        backend = self._s3()
        for name, region in self.db.execute("SELECT name, region FROM buckets ORDER BY rowid").fetchall():
            if name not in backend.buckets:
                backend.create_bucket(name, region)
        count = 0
        for bucket, key, body, metadata in self.db.execute("SELECT bucket, key, body, metadata FROM objects"):
            if bucket not in backend.buckets:
                continue
            stored = backend.put_object(bucket, key, bytes(body))
            stored.set_metadata(json.loads(metadata))
            count += 1
        return count

    # --- SQS ------------------------------------------------------------------------------------
    def _sqs(self) -> Any:
        from moto.sqs.models import sqs_backends

        return sqs_backends[ACCOUNT][REGION]

    def _hook_sqs(self) -> None:
        from moto.sqs.models import SQSBackend

        mirror = self

        def create_queue(original: Callable[..., Any]) -> Callable[..., Any]:
            def run(self: Any, name: str, tags: Any = None, **kwargs: Any) -> Any:
                queue = original(self, name, tags, **kwargs)
                attributes = {k: v for k, v in kwargs.items() if k != "region"}
                mirror.write("INSERT OR REPLACE INTO queues VALUES (?, ?)", (name, json.dumps(attributes)))
                return queue
            return run

        def delete_queue(original: Callable[..., Any]) -> Callable[..., Any]:
            def run(self: Any, queue_name: str) -> Any:
                result = original(self, queue_name)
                mirror.write("DELETE FROM queues WHERE name = ?", (queue_name,))
                mirror.write("DELETE FROM messages WHERE queue = ?", (queue_name,))
                return result
            return run

        def send_message(original: Callable[..., Any]) -> Callable[..., Any]:
            def run(self: Any, queue_name: str, message_body: str, message_attributes: Any = None,
                    delay_seconds: Any = None, deduplication_id: Any = None, group_id: Any = None,
                    *args: Any, **kwargs: Any) -> Any:
                message = original(self, queue_name, message_body, message_attributes, delay_seconds,
                                   deduplication_id, group_id, *args, **kwargs)
                mirror.write("INSERT OR REPLACE INTO messages VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (queue_name, message.id, message_body, json.dumps(message_attributes or {}),
                              group_id, deduplication_id, time.time() + int(delay_seconds or 0)))
                return message
            return run

        def delete_message(original: Callable[..., Any]) -> Callable[..., Any]:
            def run(self: Any, queue_name: str, receipt_handle: str) -> Any:
                queue = self.get_queue(queue_name)
                ids = [m.id for m in list(queue._messages) if m.had_receipt_handle(receipt_handle)]
                result = original(self, queue_name, receipt_handle)
                mirror.write("DELETE FROM messages WHERE queue = ? AND id = ?", *((queue_name, i) for i in ids))
                return result
            return run

        def purge_queue(original: Callable[..., Any]) -> Callable[..., Any]:
            def run(self: Any, queue_name: str) -> Any:
                result = original(self, queue_name)
                mirror.write("DELETE FROM messages WHERE queue = ?", (queue_name,))
                return result
            return run

        _wrap(SQSBackend, "create_queue", create_queue)
        _wrap(SQSBackend, "delete_queue", delete_queue)
        _wrap(SQSBackend, "send_message", send_message)
        _wrap(SQSBackend, "delete_message", delete_message)
        _wrap(SQSBackend, "purge_queue", purge_queue)

    def _restore_sqs(self) -> int:
        backend = self._sqs()
        queues = self.db.execute("SELECT name, attributes FROM queues ORDER BY rowid").fetchall()
        for name, attributes in queues:
            if name not in backend.queues:
                backend.create_queue(name, None, **json.loads(attributes))
        rows = self.db.execute("SELECT queue, id, body, attributes, group_id, dedup_id, visible_after "
                               "FROM messages ORDER BY rowid").fetchall()
        now = time.time()
        count = 0
        for queue, old_id, body, attributes, group_id, dedup_id, visible_after in rows:
            if queue not in backend.queues:
                continue
            delay = max(0, min(900, int(visible_after - now)))
            backend.send_message(queue, body, json.loads(attributes) or None, delay, dedup_id, group_id)
            self.write("DELETE FROM messages WHERE queue = ? AND id = ?", (queue, old_id))  # mirrored anew above
            count += 1
        return count

    # --- Secrets Manager and SSM ---------------------------------------------------------------
    def _snapshot_secrets(self) -> None:
        from moto.secretsmanager.models import secretsmanager_backends

        backend = secretsmanager_backends[ACCOUNT][REGION]
        rows = []
        for name, secret in list(backend.secrets.items()):
            value = getattr(secret, "secret_string", None)
            if value is not None and not getattr(secret, "deleted_date", None):
                rows.append((name, value, getattr(secret, "description", None)))
        with self.lock:
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM secrets")
            self.db.executemany("INSERT INTO secrets VALUES (?, ?, ?)", rows)
            self.db.execute("COMMIT")

    def _snapshot_parameters(self) -> None:
        from moto.ssm.models import ssm_backends

        backend = ssm_backends[ACCOUNT][REGION]
        rows = []
        for name, versions in list(backend._parameters.items()):
            if versions and not name.startswith("/aws/"):
                latest = versions[-1]
                rows.append((name, latest.value, latest.parameter_type, latest.description))
        with self.lock:
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM parameters")
            self.db.executemany("INSERT INTO parameters VALUES (?, ?, ?, ?)", rows)
            self.db.execute("COMMIT")

    def _hook_snapshots(self) -> None:
        from moto.secretsmanager.responses import SecretsManagerResponse
        from moto.ssm.responses import SimpleSystemManagerResponse

        def after(snapshot: Callable[[], None]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
            def make(original: Callable[..., Any]) -> Callable[..., Any]:
                def run(self: Any) -> Any:
                    result = original(self)
                    if int(result[0]) < 400 and not self._get_action().startswith(("Get", "Describe", "List")):
                        snapshot()  # a handful of items: copy them all after any change
                    return result
                return run
            return make

        _wrap(SecretsManagerResponse, "call_action", after(self._snapshot_secrets))
        _wrap(SimpleSystemManagerResponse, "call_action", after(self._snapshot_parameters))

    def _restore_secrets_and_parameters(self) -> None:
        from moto.secretsmanager.models import secretsmanager_backends
        from moto.ssm.models import ssm_backends

        secrets = secretsmanager_backends[ACCOUNT][REGION]
        for name, value, description in self.db.execute("SELECT name, value, description FROM secrets").fetchall():
            if name not in secrets.secrets:
                secrets.create_secret(name=name, secret_string=value, secret_binary=None, description=description,
                                      tags=None, kms_key_id=None, client_request_token=None, replica_regions=[],
                                      force_overwrite=False)
        parameters = ssm_backends[ACCOUNT][REGION]
        for name, value, kind, description in self.db.execute(
                "SELECT name, value, type, description FROM parameters").fetchall():
            if name not in parameters._parameters:
                parameters.put_parameter(name=name, description=description, value=value, parameter_type=kind,
                                         allowed_pattern=None, keyid=None, overwrite=False, tags=[],
                                         data_type="text", tier=None, policies=None)

    # --- all ------------------------------------------------------------------------------------
    def install(self) -> None:
        self._hook_s3()
        self._hook_sqs()
        self._hook_snapshots()

    def restore(self) -> dict[str, int]:
        self._restore_secrets_and_parameters()
        return {"objects": self._restore_s3(), "messages": self._restore_sqs()}


def die_with_parent() -> None:
    """End this process within half a second of the process that started it (even after a SIGKILL).

    Polls the parent id rather than using PR_SET_PDEATHSIG, which fires when the parent *thread*
    that spawned the child ends."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chalicelib.cli.emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data", required=True)
    args = parser.parse_args(argv)
    die_with_parent()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))  # every acknowledged write is already committed
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the supervisor decides
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", REGION), ("MOTO_ALLOW_NONEXISTENT_REGION", "false")):
        os.environ.setdefault(name, value)
    os.environ.pop("AWS_ENDPOINT_URL", None)

    import moto.backends
    from moto.server import ThreadedMotoServer

    from chalicelib.cli import motofixes

    # moto's server lists its package folder (a stat per service) on every request, under a lock that
    # every request takes: list it once.
    modules = tuple(moto.backends.list_of_moto_modules())
    moto.backends.list_of_moto_modules = lambda: modules

    data = Path(args.data)
    started = time.monotonic()
    motofixes.install(data / "dynamodb.sqlite3")
    mirror = Mirror(data / "services.sqlite3")
    mirror.install()
    restored = mirror.restore()
    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    server._server.block_on_close = False  # never wait for in-flight requests on stop
    print(json.dumps({"ready": True, "port": args.port, "restoreSeconds": round(time.monotonic() - started, 3),
                      **restored}), flush=True)
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
