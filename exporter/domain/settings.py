"""The domain's own settings: signal thresholds and the resume plan's pacing.

Plain frozen dataclasses, so the domain needs nothing but the standard library; the
configuration (exporter/config/models.py) validates the same fields from YAML, environment and
flags and builds these. The defaults are defined here only, and cite their source in
docs/signals.md.
"""

from __future__ import annotations

from dataclasses import dataclass

HOUR = 3600.0
MINUTE_BUCKET_RETENTION = 48 * HOUR
"""How far back the store keeps minute buckets (trailing-hour values at any past instant)."""


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Signal thresholds. Defaults cite Microsoft's guidance where it gives a figure; the rest are
    ours, argued in docs/signals.md. Durations in seconds."""

    # "Planned large-scale updates: ... more than 500 groups or ... more than 20,000 membership
    # changes" (Understand and manage dynamic group processing in Microsoft Entra ID).
    membership_changes_per_hour: int = 20_000
    groups_changed_per_hour: int = 500
    trigger_rate_factor: float = 5.0
    trigger_rate_sustain: float = 1800.0
    processing_lag: float = 4 * HOUR
    rule_changes_per_hour: int = 10
    stall_after: float = 3 * HOUR
    baseline_floor_per_hour: float = 20.0
    # Support article: "wait at least 12 hours"; management guide: "a minimum of 24 hours".
    minimum_pause: float = 24 * HOUR
    # The support article's figure, "at least 12 hours" (Troubleshooting Groups with dynamic
    # membership processing in Microsoft Entra ID): used instead of minimum_pause while the
    # canary probe has shown normal latency for its evidence rounds (docs/signals.md).
    minimum_pause_with_evidence: float = 12 * HOUR
    recovery_tolerance: float = 1.5
    recovery_hours: int = 3
    watermark_max_age: float = HOUR
    collector_max_age: float = 900.0
    lag_trigger_horizon: float = 48 * HOUR
    lag_window: float = HOUR
    episode_wave_gap: float = 6 * HOUR
    episode_min_groups: int = 10
    episode_min_share: float = 0.1
    episode_max_age: float = 7 * 86400.0


@dataclass(frozen=True, slots=True)
class ResumeSettings:
    """How a resume plan is paced: batch size and interval, critical groups first."""

    batch_size: int = 100
    batch_interval: float = 600.0
    max_critical_groups: int = 5
