"""`vocflow kpis`: the table printed from a typed /api/kpis document."""

from __future__ import annotations

import orjson
from faust.utils import json as faust_json

from tests.unit.schemas.test_api import small_document
from vocflow.schemas.api import KpiDocument
from vocflow.streams.cli.kpi_table import render_kpis


def test_the_table_has_the_totals_then_one_row_per_group() -> None:
    assert render_kpis(small_document(), "15m", "queue").splitlines() == [
        "vocflow KPIs, 15m (2025-03-10T02:00:00+00:00 .. 2025-03-10T02:15:00+00:00), "
        "generated 2025-03-10T10:07:30.500000+08:00, SL T=20s",
        "queue      contacts     SL  ASA s  abandon  AHT s  FCR  CSAT  NPS  waiting  oldest s",
        "ALL              12  70.0%     14        -      -    -     -  -33        3         -",
        "billing_q         -  83.3%      -        -      -    -     -    -        2        95",
        "tech_q            -  50.0%      -        -      -    -     -    -        1         -",
    ]
    channel = render_kpis(small_document(), "today", "channel").splitlines()
    assert channel[1:] == [
        "channel  contacts     SL  ASA s  abandon  AHT s  FCR  CSAT  NPS  waiting  oldest s",
        "ALL            12  70.0%     14        -      -    -     -  -33        3         -",
        "phone          12      -      -        -      -    -     -    -        -         -",
    ]


def test_the_table_reads_the_document_from_its_json() -> None:
    """What the command does with the page's answer (filtered to one interval)."""
    doc = small_document()
    fetched = orjson.loads(faust_json.dumps(doc.model_dump()))
    del fetched["intervals"]["60m"], fetched["intervals"]["today"]
    fetched["added_by_a_newer_worker"] = {"x": 1}
    table = render_kpis(KpiDocument.model_validate(fetched), "15m", "department")
    assert table.splitlines()[1:] == [
        "department  contacts     SL  ASA s  abandon  AHT s  FCR  CSAT  NPS  waiting  oldest s",
        "ALL               12  70.0%     14        -      -    -     -  -33        3         -",
    ]
