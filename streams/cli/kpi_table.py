"""Plain-text KPI table for `vocflow kpis`: one row per group, wallboard order."""

from __future__ import annotations

from typing import Any

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


def _fmt(kpi: dict[str, Any] | None, kind: str) -> str:
    if not kpi or kpi.get("value") is None:
        return "-"
    value = kpi["value"]
    if kind == "pct":
        return f"{value * 100:.1f}%"
    if kind == "secs":
        return f"{value:.0f}"
    if kind == "score":
        return f"{value:+.0f}"
    return f"{value:.0f}"


def render_kpis(doc: dict[str, Any], interval: str, by: str) -> str:
    body = doc["intervals"][interval]["by"]
    names = body.get(by, {})
    now = doc["now"].get(by, {})
    groups = sorted(
        {g for kpis in names.values() for g in kpis} | {g for k in now.values() for g in k}
    )
    headers = [by, *(h for _, h, _ in COLUMNS), *(h for _, h, _ in NOW_COLUMNS)]
    rows = [headers]
    for scope, source in (("all", body.get("all", {})), *((g, None) for g in groups)):
        kpis = (
            source if source is not None else {n: {scope: v.get(scope)} for n, v in names.items()}
        )
        cells = [scope if source is None else "ALL"]
        cells += [
            _fmt((kpis.get(n) or {}).get(scope if source is None else "_all"), kind)
            for n, _, kind in COLUMNS
        ]
        now_src = doc["now"].get("all", {}) if source is not None else now
        key = "_all" if source is not None else scope
        cells += [_fmt((now_src.get(n) or {}).get(key), kind) for n, _, kind in NOW_COLUMNS]
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(headers))]
    lines = [
        f"vocflow KPIs, {interval} ({doc['intervals'][interval]['start']} .. "
        f"{doc['intervals'][interval]['end']}), generated {doc['generated_at']}, "
        f"SL T={doc['sl_threshold_seconds']:g}s"
    ]
    for r in rows:
        lines.append(
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    return "\n".join(lines)
