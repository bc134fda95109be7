"""The last step of `make bench`: one table of every figure the benches of this run recorded.

Reads ``build/bench/*.json`` (written by ``bench/report.py``), bench by bench in the order they ran,
and prints each figure with its unit, its goal and whether the goal was met, then the count of goals
met and missed. Prints only; a missed goal does not fail the run (the benches report, tests assert).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import Figure, directory, load  # noqa: E402


def fmt_value(value: float | int | str | bool) -> str:
    """Integers with thousands separators; other numbers with 2 decimals below 10, 1 below 100, else none
    (3 significant digits below 0.1)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return f"{value:,}"
    magnitude = abs(value)
    if 0 < magnitude < 0.1:
        return f"{value:.3g}"
    decimals = 0 if magnitude >= 100 else 1 if magnitude >= 10 else 2
    return f"{value:,.{decimals}f}"


def fmt_goal(figure: Figure) -> str:
    if figure.goal is None:
        return ""
    comparison, bound = figure.goal
    if isinstance(figure.value, bool):
        return fmt_value(bool(bound)) if comparison == "==" else f"{comparison} {bound}"
    return f"{comparison} {fmt_value(bound)}"


def table(figures: list[Figure]) -> str:
    """One line per figure under a line per bench; the goals' tally at the end."""
    if not figures:
        return "No bench figures recorded (run `make bench`, or a script in bench/)."
    rows = [(f.name, fmt_value(f.value), f.unit, fmt_goal(f),
             {True: "met", False: "MISSED", None: ""}[f.met]) for f in figures]
    headers = ("figure", "value", "unit", "goal", "")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: tuple[str, ...]) -> str:
        name, value, unit, goal, met = (cell.ljust(w) if i != 1 else cell.rjust(w)
                                        for i, (cell, w) in enumerate(zip(cells, widths, strict=True)))
        return f"  {name}  {value}  {unit}  {goal}  {met}".rstrip()

    out = [line(headers)]
    bench = None
    for figure, row in zip(figures, rows, strict=True):
        if figure.bench != bench:
            bench = figure.bench
            out.append(f"{bench} (bench/{bench}.py)")
        out.append(line(row))
    met = sum(1 for f in figures if f.met is True)
    missed = [f"{f.bench}: {f.name}" for f in figures if f.met is False]
    out.append(f"goals: {met} met, {len(missed)} missed" + (f" ({'; '.join(missed)})" if missed else ""))
    return "\n".join(out)


def main() -> None:
    figures = load()
    benches = len({f.bench for f in figures})
    print(f"\nSummary of this bench run: {len(figures)} figures from {benches} benches ({directory()})")
    print(table(figures))


if __name__ == "__main__":
    main()
