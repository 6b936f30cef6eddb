"""Plain-text KPI table for `vocflow kpis`: one row per group, wallboard order."""

from __future__ import annotations

from vocflow.schemas.api import Dimension, IntervalLabel, KpiDocument, KpiSet, KpiValue

COLUMNS: tuple[tuple[str, str, str], ...] = (
    # (kpi name, header, format)
    ("contacts", "contacts", "count"),
    ("service_level_ratio", "SL", "pct"),
    ("asa_seconds", "ASA s", "secs"),
    ("abandonment_ratio", "abandon", "pct"),
    ("aht_seconds", "AHT s", "secs"),
    ("fcr_ratio", "FCR", "pct"),
    ("csat_ratio", "CSAT", "pct"),
    ("nps", "NPS", "score"),
)
NOW_COLUMNS = (("queue_depth", "waiting", "count"), ("oldest_waiting_seconds", "oldest s", "secs"))


def _fmt(kpi: KpiValue | None, kind: str) -> str:
    if kpi is None or kpi.value is None:
        return "-"
    value = kpi.value
    if kind == "pct":
        return f"{value * 100:.1f}%"
    if kind == "secs":
        return f"{value:.0f}"
    if kind == "score":
        return f"{value:+.0f}"
    return f"{value:.0f}"


def _kpi(kpis: KpiSet | None, name: str, group: str) -> KpiValue | None:
    return None if kpis is None else kpis.by_name()[name].get(group)


def render_kpis(doc: KpiDocument, interval: IntervalLabel, by: Dimension) -> str:
    section = doc.intervals[interval]
    dim, now = section.by.get(by), doc.now.get(by)
    groups = sorted(
        {g for kpis in (dim, now) if kpis is not None for gs in kpis.by_name().values() for g in gs}
    )
    headers = [by, *(h for _, h, _ in COLUMNS), *(h for _, h, _ in NOW_COLUMNS)]
    rows = [headers]
    scopes = [("ALL", section.by.get("all"), doc.now.get("all"), "_all")]
    scopes += [(g, dim, now, g) for g in groups]
    for name, kpis, now_kpis, group in scopes:
        rows.append(
            [
                name,
                *(_fmt(_kpi(kpis, n, group), kind) for n, _, kind in COLUMNS),
                *(_fmt(_kpi(now_kpis, n, group), kind) for n, _, kind in NOW_COLUMNS),
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(headers))]
    lines = [
        f"vocflow KPIs, {interval} ({section.start.isoformat()} .. "
        f"{section.end.isoformat()}), generated {doc.generated_at.isoformat()}, "
        f"SL T={doc.sl_threshold_seconds:g}s"
    ]
    for r in rows:
        lines.append(
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    return "\n".join(lines)
