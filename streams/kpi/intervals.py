"""The reporting intervals of DOMAIN.md: current 15 min, rolling 60 min, today.

Fixed buckets and "today" are aligned in the contact center's local time zone
(Asia/Shanghai by default), because supervisors read "today" and "09:15-09:30"
on their own clock; rolling windows end at ``now``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from vocflow.streams.kpi.models import Interval, to_ms

DEFAULT_TZ = "Asia/Shanghai"


def bucket(now: datetime, minutes: int = 15, tz: str = DEFAULT_TZ) -> Interval:
    """The fixed bucket that contains ``now`` (e.g. 09:15-09:30 local)."""
    if minutes <= 0 or (24 * 60) % minutes:
        raise ValueError("bucket minutes must divide a day")
    local = now.astimezone(ZoneInfo(tz))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    minute_of_day = local.hour * 60 + local.minute
    start = midnight + timedelta(minutes=minute_of_day - minute_of_day % minutes)
    return Interval(to_ms(start), to_ms(start + timedelta(minutes=minutes)), f"{minutes}m")


def rolling(now: datetime, minutes: int = 60) -> Interval:
    """The last ``minutes`` whole minutes, the current one included: the grain
    of the 1-minute aggregates, so the rolling hour is a sum of 60 minute rows."""
    this_minute = now.replace(second=0, microsecond=0)
    start = this_minute - timedelta(minutes=minutes - 1)
    end = this_minute + timedelta(minutes=1)
    return Interval(to_ms(start), to_ms(end), f"rolling_{minutes}m")


def today(now: datetime, tz: str = DEFAULT_TZ) -> Interval:
    """Local calendar day of ``now`` (a DST day would be 23 or 25 h; Shanghai has none)."""
    zone = ZoneInfo(tz)
    local = now.astimezone(zone)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=1)).replace(tzinfo=None).replace(tzinfo=zone)
    return Interval(to_ms(start), to_ms(end), "today")
