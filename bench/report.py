"""The figures each bench measured, kept for `bench/summary.py` (the table `make bench` ends with).

A bench calls :func:`record` once per figure, right where it prints it. Figures go to
``build/bench/<bench>.json`` (``TALLY_BENCH_RECORDS`` moves the folder); the first figure a process
records for a bench starts that bench's file afresh, so running one bench again replaces its figures
and leaves the others' alone. ``make bench`` empties the folder first, so the table shows that run only.

A goal is a comparison and a bound, ``("<=", 1.5)``: whether it was met is worked out here, the same
way for every bench. Recording only writes a small file: it never changes what a bench measures.
"""

from __future__ import annotations

import json
import operator
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "==": operator.eq,
}

Value = float | int | str | bool


@dataclass(frozen=True)
class Figure:
    bench: str
    name: str
    value: Value
    unit: str = ""
    goal: tuple[str, float] | None = None  # (comparison, bound)

    @property
    def met(self) -> bool | None:
        """None without a goal (or for a text value); a yes/no figure compares as 1/0."""
        if self.goal is None or isinstance(self.value, str):
            return None
        comparison, bound = self.goal
        return COMPARISONS[comparison](self.value, bound)


def directory() -> Path:
    return Path(os.environ.get("TALLY_BENCH_RECORDS") or ROOT / "build" / "bench")


_started: set[Path] = set()  # files this process has begun (a rerun replaces, it does not append)


def record(bench: str, name: str, value: Value, unit: str = "", *, goal: tuple[str, float] | None = None) -> None:
    """Keep one figure of ``bench`` (the script's name, e.g. ``"load"``) for the summary table."""
    if goal is not None and goal[0] not in COMPARISONS:
        raise ValueError(f"goal comparison {goal[0]!r} is not one of {sorted(COMPARISONS)}")
    path = directory() / f"{bench}.json"
    if path in _started and path.exists():
        data = json.loads(path.read_text())
    else:
        data = {"bench": bench, "started": time.time(), "figures": []}
        _started.add(path)
    data["figures"].append(asdict(Figure(bench, name, value, unit, goal)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))


def load(folder: Path | None = None) -> list[Figure]:
    """Every recorded figure, bench by bench in the order the benches ran, each bench's in recorded order."""
    folder = folder or directory()
    files = [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    files.sort(key=lambda data: data["started"])
    return [Figure(f["bench"], f["name"], f["value"], f["unit"], tuple(f["goal"]) if f["goal"] else None)
            for data in files for f in data["figures"]]
