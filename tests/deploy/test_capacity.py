"""The capacity table of docs/operations.md is what deploy/capacity.py makes of the
committed docs/benchmarks.md: a `make bench` that changes a figure makes this test
fail until `make capacity` rewrites the table (and, if its 10,000 events/s row
moves, deploy/k8s/components/production-size follows: tests/deploy/test_k8s.py)."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

import pytest

from tests.deploy.tools import DEPLOY, ROOT


def capacity() -> ModuleType:
    spec = importlib.util.spec_from_file_location("capacity", DEPLOY / "capacity.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["capacity"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_table_is_current() -> None:
    cap = capacity()
    measured = cap.measured((ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8"))
    doc = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    assert cap.rewrite(doc, measured) == doc, "the capacity table is stale: run `make capacity`"


def test_the_arithmetic_on_fixed_figures() -> None:
    cap = capacity()
    m = cap.Measured("2026-01-01 00:00 UTC", "abc1234", 500, 2000, 100_000, 900)
    assert [cap.plan(rate, m) for rate in cap.RATES] == [
        cap.Plan(1_000, 3, 6, 2, 3, 3),  # 1,500 / 500; ingest and brokers at their floors
        cap.Plan(10_000, 30, 32, 8, 3, 27),  # 30 x 900 MiB = 26.4 GiB -> 27
        cap.Plan(100_000, 300, 384, 75, 23, 264),  # 100k x 5 x 3 x 1.5 / 100k = 22.5 -> 23
    ]


def test_the_workers_cpu_cost_wins_over_its_end_to_end_rate_when_measured() -> None:
    cap = capacity()
    text = "\n".join(
        [
            "- date: 2026-12-08 01:00 UTC",
            "- git revision: 1234567",
            "| Java producer | 100,000 | events/s | |",
            "| ingest single-event POST | 2,000 | req/s | |",
            "| raw -> events + VOC routing + facts + ClickHouse | 500 | events/s | |",
            "| worker CPU per 1,000 events | 1.250 | CPU s | |",
            "| worker peak RSS | 900 | MiB | |",
        ]
    )
    m = cap.measured(text)
    assert (m.worker_cpu_per_1k, m.worker_rate) == (1.25, 800.0)
    assert cap.plan(10_000, m).workers == 19  # 15,000 / 800 = 18.75
    assert "one worker **1.250 CPU s per 1,000 events** (800 events/s per core" in cap.table(m)


def test_a_missing_figure_is_named() -> None:
    cap = capacity()
    missing = "no row 'ingest single-event POST' with a number"
    with pytest.raises(cap.BenchmarkMissing, match=missing):
        cap.measured(
            "- date: x\n- git revision: y\n| Java producer | 1 | events/s |\n"
            "| raw -> events + VOC routing + facts + ClickHouse | 534 | events/s |\n"
        )
