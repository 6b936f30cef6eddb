"""A small built-in traffic generator for the demo and the tests.

Emits whole contact lifecycles (offered -> queued -> answered/abandoned ->
ended -> wrap-up -> survey) as raw JSON on `contacts.raw`, plus an optional
share of malformed input so the dead-letter path is exercised. The realistic
day-long simulator is a separate module; this one is deterministic per seed
and cheap enough to run at tens of thousands of events per second.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

CHANNELS = ("phone", "phone", "phone", "chat", "chat", "email", "wechat", "sms", "app")
QUEUES = ("billing", "network", "tech_support", "sales", "general")
TEXTS = (
    "我的话费怎么突然多扣了三十块，请帮我查一下账单",
    "家里宽带从昨天晚上开始断网，光猫一直红灯",
    "手机信号太差了，在小区里经常没信号打不了电话",
    "想把套餐换成流量多一点的，有没有优惠活动",
    "APP登录不上去，一直提示验证码错误",
    "上个月的发票什么时候能开出来",
    "我要销户，你们的服务太差了，再不解决我就投诉到工信部",
    "谢谢客服小姐姐，问题已经解决了，非常满意",
    "流量超了，为什么没有短信提醒",
    "携号转网需要什么手续",
    "客服态度很差，打了三次电话都没解决",
    "5G信号覆盖什么时候能到我们村",
)
SURVEY_COMMENTS = ("很满意", "一般般", "等太久了", "问题没解决", "服务很好，点赞")


@dataclass(frozen=True)
class Raw:
    """One record for `contacts.raw`: key, value, and whether it is meant to be valid."""

    key: bytes
    value: bytes
    valid: bool
    event_id: str | None = None


def _event(
    contact_id: str,
    seq: int,
    channel: str,
    event_type: str,
    at: datetime,
    queue: str,
    customer_id: str,
    **extra: object,
) -> dict[str, object]:
    event: dict[str, object] = {
        "event_id": f"{contact_id}-{seq}",
        "contact_id": contact_id,
        "customer_id": customer_id,
        "channel": channel,
        "event_type": event_type,
        "occurred_at": at.isoformat(),
        "queue": queue,
        "source": "traffic",
    }
    event.update(extra)
    return event


def contact_lifecycle(rng: random.Random, contact_id: str, start: datetime) -> list[dict]:
    channel = rng.choice(CHANNELS)
    queue = rng.choice(QUEUES)
    customer = f"C{rng.randrange(1, 50_000):06d}"
    agent = f"A{rng.randrange(1, 120):03d}"
    text = rng.choice(TEXTS)
    t = start
    seq = 0

    def ev(event_type: str, **extra: object) -> dict:
        nonlocal seq
        seq += 1
        return _event(contact_id, seq, channel, event_type, t, queue, customer, **extra)

    out = [ev("offered", text=text), ev("queued")]
    wait = round(rng.lognormvariate(2.5, 0.9), 1)
    t += timedelta(seconds=wait)
    if rng.random() < 0.08:
        out.append(ev("abandoned", payload={"wait_seconds": wait}))
        return out
    out.append(ev("answered", agent_id=agent, payload={"wait_seconds": wait}))
    talk = round(rng.lognormvariate(5.3, 0.5), 1)
    hold = round(rng.random() * 30, 1) if rng.random() < 0.2 else 0.0
    t += timedelta(seconds=talk + hold)
    out.append(ev("ended", agent_id=agent, payload={"talk_seconds": talk, "hold_seconds": hold}))
    acw = round(rng.lognormvariate(3.4, 0.4), 1)
    t += timedelta(seconds=acw)
    out.append(ev("wrapup_done", agent_id=agent, payload={"after_work_seconds": acw}))
    if rng.random() < 0.3:
        t += timedelta(minutes=rng.randrange(5, 240))
        out.append(
            ev(
                "survey",
                agent_id=agent,
                text=rng.choice(SURVEY_COMMENTS),
                payload={"csat": rng.randint(1, 5), "nps": rng.randint(0, 10)},
            )
        )
    return out


MALFORMED_KINDS = (
    "bad_json",
    "wrong_type",
    "unknown_channel",
    "missing_ids",
    "invalid_utf8",
    "not_object",
    "naive_time",
    "oversized",
)


def malformed(rng: random.Random, kind: str, n: int, max_bytes: int = 1_000_000) -> bytes:
    """One deliberately broken record of `kind` (see MALFORMED_KINDS)."""
    base = _event(f"bad{n}", 1, "phone", "offered", datetime.now(UTC), "general", "C000001")
    if kind == "bad_json":
        return orjson.dumps(base)[: rng.randrange(5, 40)]
    if kind == "wrong_type":
        return orjson.dumps({**base, "event_type": "answered", "payload": {"wait_seconds": "long"}})
    if kind == "unknown_channel":
        return orjson.dumps({**base, "channel": "fax"})
    if kind == "missing_ids":
        return orjson.dumps({k: v for k, v in base.items() if k not in ("event_id", "contact_id")})
    if kind == "invalid_utf8":
        return orjson.dumps({**base, "text": "PLACEHOLDER"}).replace(
            b"PLACEHOLDER", b"\xc3\x28\xa0"
        )
    if kind == "not_object":
        return b'["offered", 1]'
    if kind == "naive_time":
        return orjson.dumps({**base, "occurred_at": "2026-11-23T10:00:00"})
    if kind == "oversized":
        return orjson.dumps({**base, "text": "长" * (max_bytes // 3 + 10)})
    raise ValueError(f"unknown malformed kind {kind!r}")


EXPECTED_REASON = {
    "bad_json": "bad_json",
    "wrong_type": "wrong_type",
    "unknown_channel": "unknown_value",
    "missing_ids": "missing_field",
    "invalid_utf8": "invalid_utf8",
    "not_object": "not_an_object",
    "naive_time": "invalid_value",
    "oversized": "oversized",
}


def generate(
    seed: int = 1,
    malformed_ratio: float = 0.0,
    start: datetime | None = None,
    kinds: tuple[str, ...] = MALFORMED_KINDS,
    max_bytes: int = 1_000_000,
) -> Iterator[Raw]:
    """Endless stream of raw records; contacts start one second apart in event time.

    Each record is malformed with probability `malformed_ratio` (kinds in turn),
    so the ratio holds per record, not per contact.
    """
    rng = random.Random(seed)
    t = start or datetime.now(UTC).replace(microsecond=0)
    n = 0
    pending: list[dict] = []
    while True:
        n += 1
        if malformed_ratio and rng.random() < malformed_ratio:
            kind = kinds[n % len(kinds)]
            yield Raw(
                key=f"bad{n}".encode(),
                value=malformed(rng, kind, n, max_bytes),
                valid=False,
                event_id=kind,
            )
            continue
        if not pending:
            pending = contact_lifecycle(rng, f"K{seed}-{n:08d}", t)
            pending.reverse()
            t += timedelta(seconds=1)
        event = pending.pop()
        yield Raw(
            key=str(event["contact_id"]).encode(),
            value=orjson.dumps(event),
            valid=True,
            event_id=str(event["event_id"]),
        )
