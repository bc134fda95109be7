"""README's "first five minutes", run exactly as written against a running stack: the shell block with
bash, then the Python block with the SDK; and again, to show that a rerun replays instead of failing.
Only the host (the stack's own port) and the path of `.venv/bin` are substituted."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.localstack import local_stack, stack_env

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = str(Path(sys.executable).parent) + "/"


def _block(marker: str) -> str:
    text = (ROOT / "README.md").read_text()
    found = re.search(re.escape(f"<!-- first-five-minutes:{marker} -->") + r"\s*```\w+\n(.*?)```", text, re.S)
    assert found, f"README has no first-five-minutes {marker} block"
    return found.group(1)


def _adapt(code: str, base: str) -> str:
    return code.replace("http://127.0.0.1:8000", base).replace(".venv/bin/", VENV_BIN)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    yield from local_stack(tmp_path_factory, "tally-readme-home")


def _run(stack: dict, workdir: Path) -> tuple[str, str]:
    shell = subprocess.run(["bash", "-euo", "pipefail", "-c", _adapt(_block("sh"), stack["base"])], cwd=workdir,
                           env=stack_env(stack["home"]), capture_output=True, text=True, timeout=120)
    assert shell.returncode == 0, shell.stdout + shell.stderr
    python = subprocess.run([sys.executable, "-c", _adapt(_block("py"), stack["base"])], cwd=workdir,
                            env=stack_env(stack["home"]), capture_output=True, text=True, timeout=120)
    assert python.returncode == 0, python.stdout + python.stderr
    return shell.stdout, python.stdout


def test_the_first_five_minutes_work_as_written_and_replay_when_run_again(stack, tmp_path):
    for _ in range(2):
        shell, python = _run(stack, tmp_path)
        lines = shell.splitlines()
        assert '"status":"QUEUED"' in lines[0].replace(" ", "") and '"customerId":"cust_first"' in lines[0]
        assert re.fullmatch(r"VERIFIED [0-9a-f]{64}", lines[1])
        assert "VERIFIED" in lines and "NOT VERIFIED" not in shell  # tally verify's verdict
        assert re.fullmatch(r"cust_123 \d{4}-\d{2} 6 verified deltas, final balance [\d.]+", lines[-1])  # the receipt
        assert python.splitlines() == ["VERIFIED 2", "49.5"]
