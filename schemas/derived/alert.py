"""An emerging-issue alert: a topic, category or city whose contact volume surged.

Self-contained, like the routing envelope, because it is read by a paged
supervisor (DOMAIN.md, "Who uses it": what, where, how bad, since when) and by
the wallboard, neither of which can look anything up. Sample texts are the
already PII-masked texts of the enrichment stage; the detector never adds
customer data of its own.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from vocflow.schemas.common import SCHEMA_VERSION, Identifier, ShortName, StrictModel, Timestamp

AlertDimension = Literal["keyword", "category", "city", "category_city"]
AlertSeverity = Literal["warning", "critical"]


class VocAlert(StrictModel):
    schema_version: Literal[1] = SCHEMA_VERSION
    alert_id: Identifier = Field(
        description="Stable per episode: the same surge keeps its id across updates and replays."
    )
    kind: Literal["emerging_issue"] = "emerging_issue"
    sequence: int = Field(ge=0, description="0 for the first alert of an episode, then 1, 2, ...")
    status: Literal["new", "update"]
    dimension: AlertDimension
    key: str = Field(
        min_length=1, max_length=200, description="e.g. '断网', 'fault', 'fault|杭州'."
    )
    keyword: str | None = None
    category: ShortName | None = None
    city: ShortName | None = None
    window_start: Timestamp
    window_end: Timestamp
    observed: int = Field(ge=0, description="Contacts of this key in [window_start, window_end).")
    baseline: float = Field(ge=0, description="Expected contacts in the window.")
    baseline_rate: float = Field(ge=0, description="Expected contacts per minute.")
    ratio: float = Field(ge=0, description="observed / baseline.")
    p_value: float = Field(ge=0, le=1, description="P(X >= observed) under Poisson(baseline).")
    severity: AlertSeverity
    first_seen: Timestamp = Field(description="Start of the episode's first anomalous window.")
    episode_observed: int = Field(ge=0, description="Contacts of this key since first_seen.")
    emitted_at: Timestamp = Field(description="Event-time watermark when the window closed.")
    department: ShortName | None = Field(
        default=None, description="Most common routed department among the window's contacts."
    )
    sample_texts: list[str] = Field(default_factory=list, max_length=3)
    summary_zh: str
    summary_en: str
