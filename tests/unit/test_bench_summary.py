"""The table `make bench` ends with (bench/summary.py) and the records it is built from (bench/report.py)."""

from __future__ import annotations

import json

import pytest

from bench import report, summary
from bench.report import Figure


@pytest.fixture
def records(tmp_path, monkeypatch):
    monkeypatch.setenv("TALLY_BENCH_RECORDS", str(tmp_path / "bench"))
    return tmp_path / "bench"


def test_recorded_figures_load_bench_by_bench_in_the_order_they_ran(records) -> None:
    report.record("ingest", "single submits", 150.4, "deltas/s")
    report.record("load", "errors", 0, goal=("==", 0))
    report.record("ingest", "round trips, one submit", 6, "calls")
    data = json.loads((records / "load.json").read_text())
    data["started"] = 0  # as if load had run first
    (records / "load.json").write_text(json.dumps(data))

    figures = report.load()

    assert [(f.bench, f.name) for f in figures] == [
        ("load", "errors"), ("ingest", "single submits"), ("ingest", "round trips, one submit")]
    assert figures[0] == Figure("load", "errors", 0, "", ("==", 0))


def test_a_bench_run_again_replaces_its_figures(records) -> None:
    report.record("verify", "verifier / ingest", 0.5, "x")
    report._started.clear()  # a new process

    report.record("verify", "verifier / ingest", 0.6, "x")

    assert [f.value for f in report.load()] == [0.6]


def test_nothing_recorded_says_so(records) -> None:
    assert "No bench figures recorded" in summary.table(report.load())


def test_goals_are_judged_the_same_way_for_every_bench(records) -> None:
    assert Figure("load", "errors", 0, goal=("==", 0)).met is True
    assert Figure("load", "errors", 3, goal=("==", 0)).met is False
    assert Figure("localstack", "batch ratio", 1.6, "x", goal=("<=", 1.5)).met is False
    assert Figure("verify", "proofs verify", True, goal=("==", True)).met is True
    assert Figure("ingest", "single submits", 150.0, "deltas/s").met is None
    with pytest.raises(ValueError, match="comparison"):
        report.record("load", "errors", 0, goal=("=<", 0))


def test_the_table_shows_every_figure_under_its_bench_with_goals_and_a_tally() -> None:
    figures = [
        Figure("load", "errors", 2, "", ("==", 0)),
        Figure("load", "latency p95, all calls", 812.345, "ms"),
        Figure("load", "RSS whole stack, peak", 1183.2, "MB", ("<=", 1536)),
        Figure("verify", "1,000 sampled proofs verify", True, "", ("==", True)),
        Figure("capacity", "single submits: platform ceiling", 256000.0, "deltas/s"),
        Figure("ingest", "single submits / raw tx", 0.0412, "x"),
    ]

    text = summary.table(figures)
    lines = text.splitlines()

    assert lines[0].split() == ["figure", "value", "unit", "goal"]
    assert [line for line in lines if not line.startswith("  ")][:4] == [
        "load (bench/load.py)", "verify (bench/verify.py)", "capacity (bench/capacity.py)", "ingest (bench/ingest.py)"]
    row = {line.split("  ")[1].strip(): line for line in lines if line.startswith("  ")}
    assert row["errors"].split()[-3:] == ["==", "0", "MISSED"]
    assert "812" in row["latency p95, all calls"] and "ms" in row["latency p95, all calls"]
    assert row["RSS whole stack, peak"].split()[-4:] == ["MB", "<=", "1,536", "met"]
    assert row["1,000 sampled proofs verify"].split()[-3:] == ["yes", "yes", "met"]
    assert "256,000" in row["single submits: platform ceiling"]
    assert "0.0412" in row["single submits / raw tx"]
    assert lines[-1] == "goals: 2 met, 1 missed (load: errors)"
    end = lines[0].index("value") + len("value")
    for figure in figures:  # one table: every value right-aligned under its header
        assert row[figure.name][:end].endswith(summary.fmt_value(figure.value))


@pytest.mark.parametrize(("value", "text"), [
    (0, "0"), (12345, "12,345"), (3.14159, "3.14"), (42.42, "42.4"), (1234.5, "1,234"), (0.00123, "0.00123"),
    (True, "yes"), ("n/a", "n/a"),
])
def test_values_are_shown_at_a_readable_precision(value, text) -> None:
    assert summary.fmt_value(value) == text
