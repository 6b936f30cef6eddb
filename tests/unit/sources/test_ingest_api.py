"""The ingest HTTP API against a fake Kafka producer: statuses, per-item results, backpressure."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiokafka.errors import KafkaConnectionError

from vocflow.streams.core.settings import Settings
from vocflow.streams.sources.adapters import ADAPTERS
from vocflow.streams.sources.ingest import SERVICE, Source, create_app, signed_headers

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "channels"
SECRET = "0123456789abcdef-secret"
SOURCES = {
    "cti-main": Source("cti-main", SECRET.encode(), frozenset({"cti", "sms", "wechat", "email"}))
}


class FakeProducer:
    """Records sends; acks at once, fails, or holds the acks until `release()`."""

    def __init__(self, mode: str = "ack") -> None:
        self.mode = mode
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.held: list[asyncio.Future[Any]] = []
        self.started = self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.sent.append((topic, key, value))
        if self.mode == "ack":
            fut.set_result(None)
        elif self.mode == "fail":
            fut.set_exception(KafkaConnectionError("broker down"))
        else:
            self.held.append(fut)
        return fut

    def release(self) -> None:
        for fut in self.held:
            if not fut.done():
                fut.set_result(None)


def settings(**overrides: Any) -> Settings:
    return Settings(topic_prefix="t.", **overrides)


def run(
    fn: Callable[[TestClient, FakeProducer], Awaitable[None]],
    *,
    producer: FakeProducer | None = None,
    healthy: bool = True,
    sources: dict[str, Source] | None = None,
    monotonic: Callable[[], float] | None = None,
    **overrides: Any,
) -> FakeProducer:
    producer = producer or FakeProducer()

    async def health() -> bool:
        return healthy

    async def main() -> None:
        app = create_app(
            settings(**overrides),
            SOURCES if sources is None else sources,
            producer_factory=lambda s: producer,
            health_check=health,
            **({} if monotonic is None else {"monotonic": monotonic}),
        )
        async with TestClient(TestServer(app)) as client:
            await fn(client, producer)

    asyncio.run(main())
    return producer


async def post(
    client: TestClient, channel: str, body: bytes, *, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], Any]:
    headers = headers if headers is not None else signed_headers("cti-main", SECRET, body)
    response = await client.post(f"/v1/events/{channel}", data=body, headers=headers)
    return response.status, orjson.loads(await response.read()), response.headers


def cti(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "call_id": f"CALL-{i}",
        "event": "offered",
        "timestamp": "2024-05-06T09:15:00+08:00",
        "event_id": f"acd-{i}",
        "queue": "billing",
        **extra,
    }


def test_one_valid_item_is_produced_keyed_by_contact_id_then_202() -> None:
    async def check(client: TestClient, producer: FakeProducer) -> None:
        status, body, _ = await post(client, "cti", orjson.dumps(cti(1)))
        assert status == 202
        assert body["accepted"] == 1 and body["rejected"] == 0 and body["unavailable"] == 0
        [item] = body["items"]
        assert item["status"] == "accepted" and len(item["event_ids"]) == 1
        [(topic, key, value)] = producer.sent
        event = orjson.loads(value)
        assert topic == "t.contacts.raw"
        assert key == event["contact_id"].encode() == b"CALL-1"
        assert event["event_id"] == item["event_ids"][0]
        assert event["source"] == "cti-main"

    producer = run(check)
    assert producer.started and producer.stopped


def test_a_mixed_batch_reports_each_item_and_produces_only_the_valid_ones() -> None:
    batch = [cti(1), cti(2, event="answered"), cti(3), "not an object", cti(4, wait_second=3)]

    async def check(client: TestClient, producer: FakeProducer) -> None:
        status, body, _ = await post(client, "cti", orjson.dumps(batch))
        assert status == 207
        assert [i["status"] for i in body["items"]] == [
            "accepted",
            "rejected",
            "accepted",
            "rejected",
            "rejected",
        ]
        assert (body["accepted"], body["rejected"]) == (2, 3)
        errors = [i["error"] for i in body["items"] if i["status"] == "rejected"]
        assert [e["reason"] for e in errors] == ["missing_field", "not_an_object", "unknown_field"]
        assert all(set(e) == {"reason", "loc", "message"} for e in errors)  # AdapterError.to_json
        assert [k for _, k, _ in producer.sent] == [b"CALL-1", b"CALL-3"]

    run(check)


def test_only_invalid_items_is_422_and_nothing_is_produced() -> None:
    async def check(client: TestClient, producer: FakeProducer) -> None:
        for body_bytes, reason in [
            ((FIXTURES / "cti" / "broken_answered_without_wait.json").read_bytes(), None),
            (b'{"call_id": ', "bad_json"),
            (b"[1, 2]", "not_an_object"),
        ]:
            status, body, _ = await post(client, "cti", body_bytes)
            assert status == 422
            assert body["accepted"] == 0
            if reason:
                assert {i["error"]["reason"] for i in body["items"]} == {reason}
        assert producer.sent == []

    run(check)


def test_native_fixtures_of_other_channels_are_accepted() -> None:
    async def check(client: TestClient, producer: FakeProducer) -> None:
        sms = (FIXTURES / "sms" / "inbound.json").read_bytes()  # one item, two messages
        status, body, _ = await post(client, "sms", sms)
        assert status == 202 and body["accepted"] == 1
        eml = (FIXTURES / "email" / "utf8_alternative.eml").read_bytes()
        status, body, _ = await post(client, "email", eml)
        assert status == 202 and body["accepted"] == 1
        # A WeChat subscribe push produces no event: accepted, nothing to store.
        xml = (FIXTURES / "wechat" / "event_subscribe.xml").read_bytes()
        status, body, _ = await post(client, "wechat", xml)
        assert status == 202 and body["items"][0]["event_ids"] == []
        assert len(producer.sent) == 2 + 1

    run(check)


def test_unknown_channel_is_404_with_the_channel_list() -> None:
    async def check(client: TestClient, producer: FakeProducer) -> None:
        status, body, _ = await post(client, "fax", b"{}")
        assert status == 404
        assert body["error"] == "unknown_channel"
        assert body["channels"] == sorted(ADAPTERS)

    run(check)


def test_auth_failures_are_401_or_403_and_produce_nothing() -> None:
    async def check(client: TestClient, producer: FakeProducer) -> None:
        body = orjson.dumps(cti(1))
        status, answer, _ = await post(client, "cti", body, headers={})
        assert (status, answer["error"]) == (401, "missing_headers")
        stale = signed_headers("cti-main", SECRET, body, now=1_000_000_000)
        status, answer, _ = await post(client, "cti", body, headers=stale)
        assert (status, answer["error"]) == (401, "stale_timestamp")
        wrong = signed_headers("cti-main", "another-secret-123456", body)
        status, answer, _ = await post(client, "cti", body, headers=wrong)
        assert (status, answer["error"]) == (401, "bad_signature")
        unknown = signed_headers("stranger", SECRET, body)
        status, answer, _ = await post(client, "cti", body, headers=unknown)
        assert (status, answer["error"]) == (401, "unknown_source")
        fs = b"Event-Name: CUSTOM\n"
        status, answer, _ = await post(client, "freeswitch", fs)
        assert (status, answer["error"]) == (403, "channel_not_allowed")
        assert producer.sent == []

    run(check)


def test_an_oversized_body_is_413_with_a_clear_json_error() -> None:
    async def check(client: TestClient, producer: FakeProducer) -> None:
        body = orjson.dumps([cti(i) for i in range(100)])
        assert len(body) > 2048
        status, answer, _ = await post(client, "cti", body)
        assert status == 413
        assert answer["error"] == "body_too_large" and answer["limit"] == 2048
        assert "2048" in answer["message"]

        async def chunks():  # no Content-Length: the limit holds while reading
            for i in range(0, len(body), 500):
                yield body[i : i + 500]

        response = await client.post(
            "/v1/events/cti", data=chunks(), headers=signed_headers("cti-main", SECRET, body)
        )
        assert response.status == 413
        assert (await response.json())["error"] == "body_too_large"
        assert producer.sent == []

    run(check, ingest_max_body_bytes=2048)


def test_too_many_items_or_an_empty_batch_are_refused_whole() -> None:
    async def check(client: TestClient, producer: FakeProducer) -> None:
        status, answer, _ = await post(client, "cti", orjson.dumps([cti(i) for i in range(4)]))
        assert (status, answer["error"], answer["limit"]) == (413, "too_many_items", 3)
        status, answer, _ = await post(client, "cti", b"[]")
        assert (status, answer["error"]) == (400, "empty_batch")
        assert producer.sent == []

    run(check, ingest_max_batch_items=3)


def test_kafka_not_acknowledging_in_time_is_503_with_retry_after() -> None:
    async def check(client: TestClient, producer: FakeProducer) -> None:
        status, body, headers = await post(client, "cti", orjson.dumps([cti(1), cti(2, event="x")]))
        assert status == 503
        assert headers["Retry-After"] == "7"
        assert body["error"] == "kafka_unavailable"
        assert [i["status"] for i in body["items"]] == ["unavailable", "rejected"]
        assert body["items"][0]["error"]["reason"] == "kafka_unavailable"
        service = client.app[SERVICE]
        assert service.gate.in_flight == 1  # still waiting for Kafka: still counted
        producer.release()
        await asyncio.sleep(0)
        assert service.gate.in_flight == 0

    run(check, producer=FakeProducer("hold"), ingest_produce_timeout_s=0.05, ingest_retry_after_s=7)


def test_a_kafka_error_is_503_not_202() -> None:
    async def check(client: TestClient, producer: FakeProducer) -> None:
        status, body, headers = await post(client, "cti", orjson.dumps(cti(1)))
        assert status == 503 and "Retry-After" in headers
        assert body["accepted"] == 0 and body["unavailable"] == 1
        assert client.app[SERVICE].gate.in_flight == 0

    run(check, producer=FakeProducer("fail"))


def test_beyond_the_in_flight_limit_requests_get_503_at_once_instead_of_queueing() -> None:
    async def check(client: TestClient, producer: FakeProducer) -> None:
        first = asyncio.ensure_future(post(client, "cti", orjson.dumps([cti(1), cti(2)])))
        while len(producer.sent) < 2:
            await asyncio.sleep(0.01)
        status, body, headers = await post(client, "cti", orjson.dumps(cti(3)))
        assert status == 503 and body["error"] == "overloaded" and "Retry-After" in headers
        assert body["items"][0]["error"]["reason"] == "overloaded"
        assert len(producer.sent) == 2  # the refused event was never sent
        producer.release()
        status, body, _ = await first
        assert status == 202 and body["accepted"] == 2
        producer.mode = "ack"  # Kafka caught up: the next request passes again
        status, _, _ = await post(client, "cti", orjson.dumps(cti(3)))
        assert status == 202

    run(
        check,
        producer=FakeProducer("hold"),
        ingest_max_in_flight=2,
        ingest_produce_timeout_s=30,
    )


def test_a_batch_larger_than_the_limit_still_passes_when_nothing_else_is_in_flight() -> None:
    async def check(client: TestClient, producer: FakeProducer) -> None:
        status, body, _ = await post(client, "cti", orjson.dumps([cti(i) for i in range(5)]))
        assert status == 202 and body["accepted"] == 5

    run(check, ingest_max_in_flight=2)


def test_healthz_follows_kafka() -> None:
    async def check_up(client: TestClient, producer: FakeProducer) -> None:
        response = await client.get("/healthz")
        assert response.status == 200 and (await response.json())["status"] == "ok"

    async def check_down(client: TestClient, producer: FakeProducer) -> None:
        response = await client.get("/healthz")
        assert response.status == 503
        assert (await response.json())["status"] == "kafka_unavailable"

    run(check_up)
    run(check_down, healthy=False)


def test_metrics_count_requests_items_and_latency_with_bounded_labels() -> None:
    async def check(client: TestClient, producer: FakeProducer) -> None:
        await post(client, "cti", orjson.dumps([cti(1), cti(2, event="answered")]))
        await post(client, "no-such-channel-" + "x" * 40, b"{}")
        text = await (await client.get("/metrics")).text()
        assert 'vocflow_ingest_requests_total{channel="cti",status="207"} 1.0' in text
        assert 'vocflow_ingest_requests_total{channel="unknown",status="404"} 1.0' in text
        assert 'vocflow_ingest_items_accepted_total{channel="cti"} 1.0' in text
        assert (
            'vocflow_ingest_items_rejected_total{channel="cti",reason="missing_field"} 1.0' in text
        )
        assert "vocflow_ingest_produce_seconds_count 1.0" in text
        assert "vocflow_ingest_in_flight 0.0" in text
        assert "no-such-channel" not in text

    run(check)


def test_bodies_are_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    secret_text = "我的身份证号是110101199003077777"

    async def check(client: TestClient, producer: FakeProducer) -> None:
        await post(client, "cti", orjson.dumps(cti(1, transcript=secret_text)))
        await post(client, "cti", orjson.dumps([cti(2, transcript=secret_text, bad=1)]))
        wrong = signed_headers("cti-main", "another-secret-123456", b"x")
        await post(client, "cti", orjson.dumps(cti(3, transcript=secret_text)), headers=wrong)

    with caplog.at_level(logging.DEBUG):
        run(check, producer=FakeProducer("hold"), ingest_produce_timeout_s=0.05)
    assert caplog.records
    assert secret_text not in caplog.text
    assert "110101199003077777" not in caplog.text


class Clock:
    """The rate limit's monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def limited(rate_per_s: float, burst: int | None = None) -> dict[str, Source]:
    [source] = SOURCES.values()
    return {source.name: Source(source.name, source.secret, source.channels, rate_per_s, burst)}


def test_beyond_its_rate_a_source_gets_429_with_retry_after_and_nothing_is_published() -> None:
    clock = Clock()

    async def check(client: TestClient, producer: FakeProducer) -> None:
        status, body, _ = await post(client, "cti", orjson.dumps([cti(i) for i in range(3)]))
        assert status == 202 and len(producer.sent) == 3
        # 1 token left: a batch of 2 is refused whole (items, not requests, are counted)
        status, body, headers = await post(client, "cti", orjson.dumps([cti(3), cti(4)]))
        assert status == 429
        assert headers["Retry-After"] == "1"  # 1 token missing at 2/s: 0.5 s, rounded up
        assert body["error"] == "rate_limited" and "2 items/s, burst 4" in body["message"]
        assert (body["accepted"], body["rejected"], body["unavailable"]) == (0, 0, 2)
        assert [i["status"] for i in body["items"]] == ["unavailable", "unavailable"]
        assert body["items"][0]["error"]["reason"] == "rate_limited"
        assert (body["rate_per_s"], body["burst"]) == (2, 4)
        assert len(producer.sent) == 3  # nothing of the refused request
        status, _, _ = await post(client, "cti", orjson.dumps(cti(5)))
        assert status == 202  # the refused batch took no tokens: the last one is still there
        clock.now += 1.0  # 2 tokens back
        status, _, _ = await post(client, "cti", orjson.dumps([cti(3), cti(4)]))
        assert status == 202 and len(producer.sent) == 6
        clock.now += 0.1
        status, _, headers = await post(client, "cti", orjson.dumps([cti(i) for i in range(4)]))
        assert status == 429 and headers["Retry-After"] == "2"  # 3.8 missing tokens at 2/s
        text = await (await client.get("/metrics")).text()
        assert (
            'vocflow_ingest_items_rate_limited_total{reason="rate_limited",source="cti-main"} 6.0'
            in text
        )
        assert 'vocflow_ingest_requests_total{channel="cti",status="429"} 2.0' in text

    run(check, sources=limited(2, 4), monotonic=clock)


def test_a_request_larger_than_the_burst_is_413_not_429() -> None:
    async def check(client: TestClient, producer: FakeProducer) -> None:
        status, body, headers = await post(client, "cti", orjson.dumps([cti(i) for i in range(5)]))
        assert status == 413 and "Retry-After" not in headers
        assert (body["error"], body["limit"]) == ("above_burst", 4)
        assert "at most 4 at once" in body["message"]
        assert producer.sent == []
        status, _, _ = await post(client, "cti", orjson.dumps([cti(i) for i in range(4)]))
        assert status == 202  # the refused request took no tokens
        text = await (await client.get("/metrics")).text()
        assert (
            'vocflow_ingest_items_rate_limited_total{reason="above_burst",source="cti-main"} 5.0'
            in text
        )

    run(check, sources=limited(2, 4), monotonic=Clock())


def test_the_settings_default_limits_sources_without_their_own_with_a_burst_of_twice_it() -> None:
    async def check(client: TestClient, producer: FakeProducer) -> None:
        [bucket] = client.app[SERVICE].buckets.values()
        assert (bucket.rate_per_s, bucket.burst) == (3, 6)
        status, _, _ = await post(client, "cti", orjson.dumps([cti(i) for i in range(6)]))
        assert status == 202
        status, _, headers = await post(client, "cti", orjson.dumps(cti(6)))
        assert status == 429 and headers["Retry-After"] == "1"

    run(check, monotonic=Clock(), ingest_source_rate_per_s=3)


def test_a_source_s_own_rate_wins_over_the_default_and_0_means_unlimited() -> None:
    async def own(client: TestClient, producer: FakeProducer) -> None:
        [bucket] = client.app[SERVICE].buckets.values()
        assert (bucket.rate_per_s, bucket.burst) == (50, 100)

    async def unlimited(client: TestClient, producer: FakeProducer) -> None:
        assert client.app[SERVICE].buckets == {}
        for _ in range(3):
            status, _, _ = await post(client, "cti", orjson.dumps([cti(i) for i in range(100)]))
            assert status == 202

    run(own, sources=limited(50), ingest_source_rate_per_s=3)
    run(unlimited)


def test_a_forged_request_does_not_spend_the_source_s_budget() -> None:
    async def check(client: TestClient, producer: FakeProducer) -> None:
        body = orjson.dumps([cti(1), cti(2)])
        wrong = signed_headers("cti-main", "another-secret-123456", body)
        for _ in range(5):
            status, _, _ = await post(client, "cti", body, headers=wrong)
            assert status == 401
        status, _, _ = await post(client, "cti", body)
        assert status == 202

    run(check, sources=limited(1, 2), monotonic=Clock())


def test_rate_limit_refusals_are_logged_once_per_30_s_per_source(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()

    async def check(client: TestClient, producer: FakeProducer) -> None:
        await post(client, "cti", orjson.dumps(cti(1)))
        for _ in range(3):
            status, _, _ = await post(client, "cti", orjson.dumps(cti(2)))
            assert status == 429
        clock.now += 10  # a tenth of a token back: two more refused, not logged yet
        await post(client, "cti", orjson.dumps(cti(3)))
        await post(client, "cti", orjson.dumps(cti(4)))
        clock.now += 20
        await post(client, "cti", orjson.dumps(cti(5)))
        await post(client, "cti", orjson.dumps(cti(6)))

    with caplog.at_level(logging.WARNING, logger="vocflow.ingest"):
        run(check, sources=limited(0.01, 1), monotonic=clock)
    lines = [r.getMessage() for r in caplog.records if "429" in r.getMessage()]
    assert lines == [
        "ingest: 429 for source cti-main: 1 item(s) refused by its rate limit "
        "(0.01 items/s, burst 1)",
        "ingest: 429 for source cti-main: 5 item(s) refused by its rate limit "
        "(0.01 items/s, burst 1)",
    ]
