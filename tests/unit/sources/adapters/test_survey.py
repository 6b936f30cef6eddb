"""Survey answers -> survey events joined to the surveyed contact."""

from __future__ import annotations

import orjson
import pytest

from tests.unit.sources.adapters.conftest import expected_event_id, load, summary, validated
from vocflow.streams.sources.adapters import AdapterError, AdapterReason, parse_survey


def test_answers() -> None:
    events = validated(parse_survey(load("survey/answers.json")))
    assert summary(events) == [
        ("survey", "2024-05-06T13:05:44+08:00"),
        ("survey", "2024-05-06T11:02:00+08:00"),
    ]
    phone, chat = events
    assert phone["contact_id"] == "CALL-20240506-000731"
    assert phone["channel"] == "phone"
    assert phone["payload"] == {"csat": 2, "nps": 3, "fcr": False}
    assert phone["text"] == "退费的事情说了好几次了还是没办好，客服态度还可以但是解决不了问题"
    assert phone["agent_id"] == "A2007"
    assert phone["queue"] == "complaints"
    assert phone["event_id"] == expected_event_id("survey", "survey", "id", "SV-20240506-00017")
    assert chat["channel"] == "chat"
    assert chat["payload"] == {"csat": 5}
    assert "text" not in chat  # blank comment dropped
    assert chat["event_id"] == expected_event_id(
        "survey", "survey", "contact", "WEB-20240506-104233", "2024-05-06T11:02:00+08:00"
    )


def test_unknown_channel_defaults_to_survey_and_fcr_alone_is_an_answer() -> None:
    [ev] = validated(parse_survey(b'{"contact_id": "C9", "answered_at": 1714958100, "fcr": true}'))
    assert ev["channel"] == "survey"
    assert ev["payload"] == {"fcr": True}


@pytest.mark.parametrize(
    ("fixture", "reason", "loc", "message"),
    [
        (
            "survey/broken_csat_out_of_range.json",
            AdapterReason.invalid_value,
            "csat",
            "csat must be between 1 and 5, got 10",
        ),
        (
            "survey/broken_no_scores.json",
            AdapterReason.missing_field,
            "csat",
            "survey has no answer: give at least one of csat (1-5), nps (0-10), fcr",
        ),
        (
            "survey/broken_csat_as_string.json",
            AdapterReason.wrong_type,
            "csat",
            "csat must be a whole number 1-5, got str '4'",
        ),
    ],
)
def test_broken_surveys(fixture: str, reason: AdapterReason, loc: str, message: str) -> None:
    with pytest.raises(AdapterError) as err:
        parse_survey(load(fixture))
    assert err.value.reason is reason
    assert err.value.loc == loc
    assert err.value.message == message


@pytest.mark.parametrize(
    ("extra", "reason", "loc"),
    [
        ({"nps": 11}, AdapterReason.invalid_value, "nps"),
        ({"nps": 7.5}, AdapterReason.wrong_type, "nps"),
        ({"csat": True}, AdapterReason.wrong_type, "csat"),
        ({"csat": 4, "fcr": "yes"}, AdapterReason.wrong_type, "fcr"),
        ({"csat": 4, "channel": "fax"}, AdapterReason.unknown_value, "channel"),
    ],
)
def test_score_errors(extra: dict, reason: AdapterReason, loc: str) -> None:
    doc = {"contact_id": "C1", "answered_at": "2024-05-06T14:00:00+08:00", **extra}
    with pytest.raises(AdapterError) as err:
        parse_survey(orjson.dumps(doc))
    assert err.value.reason is reason
    assert err.value.loc == loc


def test_batch_error_names_the_item() -> None:
    data = (
        b'{"surveys": [{"contact_id": "C1", "answered_at": 1714958100, "csat": 4},'
        b' {"contact_id": "C2", "answered_at": 1714958100, "csat": 0}]}'
    )
    with pytest.raises(AdapterError) as err:
        parse_survey(data)
    assert err.value.loc == "surveys[1].csat"
    assert err.value.message == "surveys[1].csat must be between 1 and 5, got 0"
