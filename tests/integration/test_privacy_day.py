"""A simulated day through one worker, then a scan for personal data in clear.

The simulator's texts carry mobile numbers, ID numbers, bank card numbers and
e-mail addresses the way customers give them (typed, or as speech-to-text writes
them). After a whole day (all 24 hours: night shift, peaks, malformed records),
every topic vocflow writes, every column of every ClickHouse table and the
worker's log must hold none of them in clear; only the two restricted input
topics (`contacts.raw`, `contacts.voc`) may.

The patterns are written here, from what such numbers look like (checksums
included), not taken from the masking code under test; the same patterns must
find each kind in `contacts.raw`, so the scan can fail.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tests.faults import oracle
from tests.integration.conftest import read_topic
from vocflow.streams.core import kafka_clients
from vocflow.streams.tools.simulator import SimConfig

pytestmark = pytest.mark.integration

DAY = SimConfig(
    seed=23,
    start_date=date(2026, 11, 24),
    start_hour=0.0,
    duration_hours=24.0,
    contacts_per_day=1_200,
    customers=2_000,
)
RESTRICTED = ("contacts.raw", "contacts.voc")

# Edges: not glued to more digits, to hex letters (pseudonyms are lowercase hex) or
# to a decimal point (the digits of a float).
_L, _R = r"(?<![0-9a-f.])", r"(?![0-9a-f]|\.\d)"
_MOBILE = re.compile(_L + r"(?:\+?86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}" + _R)
_ID = re.compile(
    _L + r"\d{6}(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx]" + _R
)
_CARD = re.compile(_L + r"\d(?:[ -]?\d){14,18}" + _R)
# typed (a@b.cn) and as speech-to-text writes it (a@b com, a 艾特 b 点 com)
_EMAIL = re.compile(  # starts where a run of such characters starts: linear, not quadratic
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+ ?(?:@|艾特) ?"
    r"[A-Za-z0-9-]+(?: ?(?:\.|点|dot| ) ?[A-Za-z0-9-]+)*"
    r" ?(?:\.|点|dot| ) ?(?:com|cn|net|org|edu|gov)(?![A-Za-z0-9-])"
)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def _id_checksum_ok(value: str) -> bool:
    total = sum(int(d) * w for d, w in zip(value[:17], _ID_WEIGHTS, strict=True))
    return "10X98765432"[total % 11] == value[17].upper()


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def personal_data(text: str) -> dict[str, set[str]]:
    """Every mobile number, valid ID number, Luhn-valid card number and e-mail
    address in `text`, by kind (empty kinds left out)."""
    found: dict[str, set[str]] = {
        "mobile": set(_MOBILE.findall(text)),
        "id_number": {v for v in _ID.findall(text) if _id_checksum_ok(v)},
        "card": {
            v
            for v in _CARD.findall(text)
            if 16 <= len(d := re.sub(r"\D", "", v)) <= 19 and _luhn_ok(d)
        },
        "email": set(_EMAIL.findall(text)) if "@" in text or "艾特" in text else set(),
    }
    return {kind: values for kind, values in found.items() if values}


def test_the_patterns() -> None:
    """They find each kind as customers write it, and not what vocflow writes instead."""
    text = (
        "手机13812345678，另一个 139-8765-4321，身份证11010519491231002X，"
        "卡号6222 0212 3456 7890 128，邮箱zhang.wei@qq.com，回复发到li na5819@sina com"
    )
    assert personal_data(text) == {
        "mobile": {"13812345678", "139-8765-4321"},
        "id_number": {"11010519491231002X"},
        "card": {"6222 0212 3456 7890 128"},
        "email": {"zhang.wei@qq.com", "na5819@sina com"},
    }
    masked = (
        '{"text": "手机[PHONE]，身份证[ID]，卡号[CARD]，邮箱[EMAIL]", "ts": 1764028800123, '
        '"p": 0.00430000014603138, "drift": 1.3645479740007431}'
    )
    pseudonym = '"customer": "c_3f13812345678a9e", "id": "110105194912310021"'  # bad checksum
    assert personal_data(masked + pseudonym) == {}


@pytest.fixture(scope="module")
def day(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> oracle.Run:
    run = oracle.new_run("day", kafka_bootstrap, tmp_path_factory.mktemp("day"), traffic=DAY)
    oracle.drain(run)
    return run


def _topics(run: oracle.Run) -> list[str]:
    admin = kafka_clients.admin(run.env["VOCFLOW_KAFKA_BOOTSTRAP"])
    try:
        return sorted(t for t in admin.list_topics() if t.startswith(run.prefix))
    finally:
        admin.close()


def _topic_text(run: oracle.Run, topic: str) -> tuple[int, str]:
    records = read_topic(run.env["VOCFLOW_KAFKA_BOOTSTRAP"], topic)
    blobs = [(r.key or b"") + b"\t" + (r.value or b"") for r in records]
    return len(records), "\n".join(b.decode("utf-8", "replace") for b in blobs)


# Every row of every table and view of the run's database, one JSON text per table,
# read by one process (a `vocflow sql` per table costs a start-up each).
_DUMP = """
import json, sys
from vocflow.streams.cli.common import open_store
from vocflow.streams.core.settings import load_settings
settings = load_settings()
store = open_store(settings)
db = settings.clickhouse_database
names = [r["name"] for r in store.query_dicts(
    f"SELECT name FROM system.tables WHERE database = '{db}' ORDER BY name")]
json.dump({n: json.dumps(store.query_dicts(f"SELECT * FROM `{db}`.`{n}`"), default=str,
                         ensure_ascii=False) for n in names}, sys.stdout)
store.close()
"""


def _table_dumps(run: oracle.Run) -> dict[str, str]:
    result = subprocess.run(
        [sys.executable, "-c", _DUMP], env=run.env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    dumps: dict[str, str] = json.loads(result.stdout)
    return dumps


def test_the_day_carries_every_kind_in_its_input(day: oracle.Run) -> None:
    count, text = _topic_text(day, day.prefix + "contacts.raw")
    assert count == day.published["contact"] + day.published["malformed"]
    assert set(personal_data(text)) == {"mobile", "id_number", "card", "email"}


def test_no_topic_table_or_log_holds_it_in_clear(day: oracle.Run) -> None:
    scanned: dict[str, int] = {}
    leaks: dict[str, Any] = {}
    for topic in _topics(day):
        if topic.removeprefix(day.prefix) in RESTRICTED:
            continue
        scanned[topic], text = _topic_text(day, topic)
        if found := personal_data(text):
            leaks[topic] = found
    for name in ("contacts.events", "contacts.routed", "contacts.facts", "contacts.dlq"):
        assert scanned.get(day.prefix + name, 0) > 0, (name, scanned)

    dumps = _table_dumps(day)
    assert {"contact_events", "contact_facts", "routing_log", "dead_letters"} <= set(dumps)
    for table, dump in dumps.items():
        if found := personal_data(dump):
            leaks[f"table {table}"] = found

    logs: list[Path] = sorted(day.data.glob("worker-*.log"))
    assert logs
    for log in logs:
        if found := personal_data(log.read_text("utf-8", "replace")):
            leaks[str(log)] = found
    assert leaks == {}
