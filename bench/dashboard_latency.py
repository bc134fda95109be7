"""Foundation benchmark (`make bench`): cold import, local request latency, round trips.

Prints figures, asserts nothing: timing belongs here, not in tests.
1. `python -X importtime -c 'import app'`: cumulative import time of `app` (median of 5, after one untimed run).
2. 200 keep-alive `GET /dashboard/tenant` against `tally dev up` on loopback: median and
   p95, with `GET /health` (no storage) as the baseline ratio.
3. DynamoDB round trips per request, counted with a botocore event hook (in-process, moto).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TALLY = str(Path(sys.executable).with_name("tally"))


def import_time_ms(runs: int = 5) -> float:
    """Median of ``runs`` imports, after one untimed: the first reads the files from disk (216 ms at the start of
    one `make bench`, against 137-140 ms warm), which measures the disk rather than the import's work."""
    samples = []
    for run in range(runs + 1):
        done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import app"], cwd=ROOT,
                              capture_output=True, text=True, check=True)
        line = next(line for line in reversed(done.stderr.splitlines()) if line.rstrip().endswith("| app"))
        if run:
            samples.append(int(re.split(r"\s*\|\s*", line)[1]) / 1000)
    return statistics.median(samples)


def latency(n: int = 200) -> dict[str, float]:
    home = tempfile.mkdtemp(prefix="tally-bench-")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TALLY_", "AWS_"))} | {"TALLY_HOME": home}
    sys.path.insert(0, str(ROOT))
    from chalicelib.cli.devstack import free_port

    port = free_port()
    proc = subprocess.Popen([TALLY, "dev", "up", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while not (Path(home) / "state.json").exists():
            if proc.poll() is not None:
                raise SystemExit("local stack failed to start")
            time.sleep(0.2)
        creds = json.loads(subprocess.run([TALLY, "dev", "credentials", "--json"], env=env, check=True,
                                          capture_output=True, text=True).stdout)
        conn = http.client.HTTPConnection("127.0.0.1", port)

        def sample(path: str, headers: dict) -> list[float]:
            times = []
            for i in range(n + 20):
                start = time.perf_counter()
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
                assert response.status == 200, response.status
                if i >= 20:  # warm-up
                    times.append((time.perf_counter() - start) * 1000)
            return times

        tenant = sample("/dashboard/tenant", {"Authorization": f"Bearer {creds['jwt']}"})
        health = sample("/health", {})
        return {
            "tenant_median_ms": statistics.median(tenant),
            "tenant_p95_ms": statistics.quantiles(tenant, n=20)[18],
            "health_median_ms": statistics.median(health),
        }
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)


def round_trips() -> dict[str, int]:
    sys.path.insert(0, str(ROOT))
    import tests.conftest  # noqa: F401, I001  - test environment, set before moto and the models import
    from moto import mock_aws

    with mock_aws():
        import boto3

        from chalicelib.adapters.dynamodb.connection import shared_connection
        from chalicelib.cli.resources import provision
        from chalicelib.domain.clock import utcnow
        from tests.contract import ContractClient
        from tests.factories import World

        provision(boto3.session.Session(), stack_name="tally-test", region="us-east-1")
        world = World(utcnow)
        tenant = world.tenant("Bench Inc")
        jwt_headers = world.auth(tenant, "admin")
        cookie = {"Cookie": f"tally_session={world.session_cookie(tenant)}"}
        _key_id, api_key = world.api_key(tenant, "production")
        api = ContractClient()
        calls = {"n": 0}
        shared_connection().client.meta.events.register(
            "before-call.dynamodb", lambda **_: calls.__setitem__("n", calls["n"] + 1))

        def count(method: str, path: str, headers: dict, body: dict | None = None) -> int:
            calls["n"] = 0
            api.request(method, path, headers=headers, json_body=body)
            return calls["n"]

        count("GET", "/api/v1/balance/customers", {"X-Api-Key": api_key})  # first use writes lastUsedAt
        return {
            "GET /dashboard/tenant (JWT)": count("GET", "/dashboard/tenant", jwt_headers),
            "GET /dashboard/tenant (cookie)": count("GET", "/dashboard/tenant", cookie),
            "GET /api/v1/balance/customers (API key)": count("GET", "/api/v1/balance/customers",
                                                             {"X-Api-Key": api_key}),
            "POST /dashboard/api-keys": count("POST", "/dashboard/api-keys", jwt_headers, {"name": "b"}),
            "GET /dashboard/api-keys": count("GET", "/dashboard/api-keys", jwt_headers),
        }


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from bench.report import record

    imported = import_time_ms()
    print(f"import app (python -X importtime, median of 5 after a warm-up): {imported:.1f} ms  (goal < 150 ms)")
    record("dashboard_latency", "import app (median of 5)", imported, "ms", goal=("<", 150))
    figures = latency()
    ratio = figures["tenant_median_ms"] / figures["health_median_ms"]
    print(f"GET /dashboard/tenant x200 over loopback: median {figures['tenant_median_ms']:.2f} ms, "
          f"p95 {figures['tenant_p95_ms']:.2f} ms")
    print(f"GET /health x200 (no storage):           median {figures['health_median_ms']:.2f} ms  "
          f"-> tenant/health ratio {ratio:.1f}x")
    record("dashboard_latency", "GET /dashboard/tenant median", figures["tenant_median_ms"], "ms")
    record("dashboard_latency", "GET /dashboard/tenant p95", figures["tenant_p95_ms"], "ms")
    record("dashboard_latency", "GET /health median", figures["health_median_ms"], "ms")
    record("dashboard_latency", "tenant / health median", ratio, "x")
    print("DynamoDB round trips per request:")
    for name, n in round_trips().items():
        print(f"  {name:45s} {n}")
        record("dashboard_latency", f"round trips, {name}", n, "calls")


if __name__ == "__main__":
    main()
