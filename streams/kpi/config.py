"""The KPI code's view of the settings: thresholds in integer milliseconds."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vocflow.streams.kpi.contributions import Targets
from vocflow.streams.kpi.models import FoldConfig

if TYPE_CHECKING:
    from vocflow.streams.core.settings import Settings


def fold_config(settings: Settings) -> FoldConfig:
    """The fold's view of the settings (short-abandon thresholds in integer ms)."""
    return FoldConfig(
        short_abandon_ms=round(settings.short_abandon_seconds * 1000),
        short_abandon_ms_by_queue={
            q: round(s * 1000) for q, s in settings.short_abandon_seconds_by_queue.items()
        },
    )


def kpi_targets(settings: Settings) -> Targets:
    """What the 1-minute KPI contributions are judged against (SL thresholds in ms)."""
    return Targets(
        sl_threshold_ms=round(settings.sl_threshold_seconds * 1000),
        sl_threshold_ms_by_queue={
            q: round(s * 1000) for q, s in settings.sl_threshold_by_queue.items()
        },
    )
