"""The closed loop of the department model: a 'reassigned' resolution becomes a
label in the store (ClickHouse views, embedded chdb), the export line trains,
the misroute view counts it; the worker rejects a pushed model that scores
worse on the holdout; `vocflow eval --json` has the documented shape."""

from __future__ import annotations

import json
import zlib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from vocflow.schemas import Resolution
from vocflow.sinks.clickhouse.store import ClickHouseStore
from vocflow.streams.cli.tools import labels_line
from vocflow.streams.stages.deptcorpus import LabelledText, load_texts, prepare
from vocflow.streams.stages.deptmodel import default_model, format_model, parse_model
from vocflow.streams.stages.rules import parse_rules
from vocflow.streams.tools.evaluate import LabelledContact, evaluate_rows, report_json
from vocflow.streams.worker.views import ModelHolder

AT = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
RULES = parse_rules(
    "version: t\ndepartments: [{id: unassigned}, {id: billing}, {id: network}]\nrules:\n"
)


def test_reassigned_needs_a_different_target() -> None:
    base = {"event_id": "e1", "contact_id": "c1", "department": "network", "resolved_at": AT}
    ok = Resolution(**base, outcome="reassigned", reassigned_to="billing")
    assert ok.reassigned_to == "billing"
    with pytest.raises(ValidationError, match="needs reassigned_to"):
        Resolution(**base, outcome="reassigned")
    with pytest.raises(ValidationError, match="must differ"):
        Resolution(**base, outcome="reassigned", reassigned_to="network")
    with pytest.raises(ValidationError, match="only allowed with outcome 'reassigned'"):
        Resolution(**base, outcome="resolved", reassigned_to="billing")


def test_correction_to_label_store_to_training_line(store: ClickHouseStore, tmp_path: Path) -> None:
    """On the session's chdb path (one process opens one chdb path), a database of its own."""
    routing_cols = [
        "envelope_id",
        "contact_id",
        "channel",
        "event_type",
        "queue",
        "occurred_at",
        "routed_at",
        "department",
        "department_rule",
        "text",
        "sla_due_at",
        "rules_version",
    ]
    store.insert(
        "routing_log",
        routing_cols,
        [
            [
                "e1",
                "c1",
                "chat",
                "message",
                "",
                AT,
                AT,
                "network",
                "model:m1",
                "宽带账单多扣了30元",
                AT,
                "r1",
            ],
            [
                "e2",
                "c2",
                "chat",
                "message",
                "",
                AT,
                AT,
                "network",
                "network.broadband",
                "宽带断了",
                AT,
                "r1",
            ],
        ],
        token="t1",
    )
    res = Resolution(
        event_id="r-1",
        contact_id="c1",
        department="network",
        outcome="reassigned",
        reassigned_to="billing",
        resolved_at=AT,
        source="noc",
    )
    store.insert(
        "resolutions",
        [
            "event_id",
            "contact_id",
            "department",
            "outcome",
            "resolved_at",
            "note",
            "source",
            "reassigned_to",
            "kafka_partition",
            "kafka_offset",
        ],
        [
            [
                res.event_id,
                res.contact_id,
                res.department,
                res.outcome.value,
                res.resolved_at,
                "",
                res.source,
                res.reassigned_to,
                0,
                0,
            ]
        ],
        token="t2",
    )
    rows = store.query_dicts(
        "SELECT contact_id, text, channel, department, routed_department, decided_by "
        f"FROM {store.database}.department_labels"
    )
    misroutes = store.query(
        "SELECT department, routed, reassigned, misroute_rate "
        f"FROM {store.database}.department_misroutes"
    )
    assert [labels_line(r) for r in rows] == [
        {
            "id": "correction-c1",
            "text": "宽带账单多扣了30元",
            "channel": "chat",
            "department": "billing",
            "routed_department": "network",
            "decided_by": "model:m1",
        }
    ]
    assert misroutes == [("network", 2, 1, 0.5)]
    path = tmp_path / "labels.jsonl"
    path.write_text(json.dumps(labels_line(rows[0]), ensure_ascii=False) + "\n", "utf-8")
    assert load_texts(path, source="correction") == [
        LabelledText("correction-c1", "宽带账单多扣了30元", "chat", "billing", "correction")
    ]


def _model(version: str, sign: float) -> str:
    # c:费 -> billing, c:网 -> network (sign 1); sign -1 swaps them
    w = np.array([[5.0 * sign, -5.0 * sign], [-5.0 * sign, 5.0 * sign]])
    return format_model(
        version, ["billing", "network"], 0.5, [0.0, 0.0], ["c:费", "c:网"], [1.0, 1.0], w
    )


def test_worker_rejects_a_model_that_scores_worse_on_the_holdout() -> None:
    held = [
        LabelledText("h1", "话费", "chat", "billing", "t"),
        LabelledText("h2", "断网", "chat", "network", "t"),
    ]
    good = parse_model(_model("good", 1.0))
    holder = ModelHolder(good, rules=lambda: RULES, holdout=lambda: prepare(held))
    applied, why = holder.offer(parse_model(_model("bad", -1.0)))
    assert (applied, holder.current) == (False, good)
    assert why == ("model bad rejected: holdout macro F1 0.0000 < 0.4000 of good; keeping good")
    holder.on_record(b"department", zlib.compress(b"not a model"), {}, 7)
    assert holder.current is good
    holder.on_record(b"department", zlib.compress(_model("good2", 1.0).encode()), {}, 8)
    assert holder.current is not None and holder.current.version == "good2"


def test_eval_json_shape() -> None:
    rows = [
        LabelledContact(
            1, "a1", "家里宽带从昨晚开始一直断网", "chat", "dev", {"department": "network"}, None
        ),
        LabelledContact(
            2,
            "a2",
            "我要去工信部投诉你们乱扣费",
            "chat",
            "holdout",
            {"department": "complaints"},
            None,
        ),
    ]
    from vocflow.streams.core.settings import DEFAULT_RULES_FILE
    from vocflow.streams.stages.enrich import enrich_text_with_tokens
    from vocflow.streams.stages.rules import load_rules

    model = default_model()
    report = evaluate_rows(
        rows,
        load_rules(DEFAULT_RULES_FILE),
        model=model,
        prepare_tokens=enrich_text_with_tokens,
    )
    doc = report_json(report)
    assert set(doc) == {
        "path",
        "rules_version",
        "model_version",
        "n",
        "default_department",
        "contacts_per_second",
        "splits",
        "items",
    }
    assert doc["model_version"] == model.version
    assert set(doc["splits"]) == {"all", "dev", "holdout"}
    dep = doc["splits"]["all"]["fields"]["department"]
    assert doc["splits"]["all"]["abstained"] == 0.0
    assert set(dep) == {"n", "accuracy", "macro_precision", "macro_recall", "macro_f1", "per_class"}
    assert set(dep["per_class"]["network"]) == {"precision", "recall", "f1", "support", "predicted"}
    items = doc["items"]
    assert [(i["id"], i["gold"], i["predicted"]) for i in items] == [
        ("a1", "network", "network"),
        ("a2", "complaints", "complaints"),
    ]
    assert items[0]["source"] == f"model:{model.version}"
    assert items[1]["source"] == "escalation.regulator"
    assert all(0.0 <= i["probability"] <= 1.0 for i in items)
    assert [len(i["candidates"]) for i in items] == [2, 2]
    json.dumps(doc)  # serialisable
