"""Contact-center KPIs (DOMAIN.md "KPIs"): pure logic, no Kafka/ClickHouse/Prometheus.

* ``fold`` / ``annotate`` (fold.py): lifecycle events -> one ``ContactFact`` per contact.
* kpis.py: SL, ASA, abandonment, AHT, FCR, CSAT, NPS, ... over facts per interval/group.
* agents.py: agent state timelines -> occupancy, utilization, adherence.
* intervals.py: current 15 min, rolling 60 min, today (Asia/Shanghai).

docs/kpis.md defines every KPI, its edge cases and its Prometheus metric name.
"""

from vocflow.streams.kpi.fold import annotate, fold, fold_all
from vocflow.streams.kpi.models import (
    DEFAULT_FOLD_CONFIG,
    ContactFact,
    FoldConfig,
    Interval,
    Kpi,
    Shift,
)

__all__ = [
    "DEFAULT_FOLD_CONFIG",
    "ContactFact",
    "FoldConfig",
    "Interval",
    "Kpi",
    "Shift",
    "annotate",
    "fold",
    "fold_all",
]
