"""The shape of a tenant's everyday load over the week: shared by the live steady load and the
pre-written history, so that history is a baseline the live tenant really follows."""

from __future__ import annotations

from dataclasses import dataclass, field

# Relative activity by UTC hour of day: quiet nights, a morning ramp, busy office hours.
DEFAULT_DIURNAL: tuple[float, ...] = (
    0.25, 0.2, 0.2, 0.2, 0.25, 0.35, 0.6, 1.0, 1.5, 1.8, 1.9, 1.9,
    1.7, 1.8, 1.9, 1.8, 1.6, 1.3, 1.0, 0.8, 0.6, 0.5, 0.4, 0.3,
)  # fmt: skip
# Monday first (the epoch began on a Thursday; see `multiplier`).
DEFAULT_WEEKLY: tuple[float, ...] = (1.1, 1.1, 1.05, 1.05, 0.95, 0.35, 0.3)


@dataclass(frozen=True, slots=True)
class LoadShape:
    """`multiplier(t)` averages 1 over a week, so rates configured "per hour" are weekly means."""

    diurnal: tuple[float, ...] = DEFAULT_DIURNAL
    weekly: tuple[float, ...] = DEFAULT_WEEKLY
    # Computed once: multiplier() runs for every simulated minute and was a simulator hot spot.
    _mean: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.diurnal) != 24 or len(self.weekly) != 7:
            raise ValueError("a load shape needs 24 diurnal and 7 weekly factors")
        mean = sum(d * w for d in self.diurnal for w in self.weekly) / (24 * 7)
        if min(self.diurnal) < 0 or min(self.weekly) < 0 or mean <= 0:
            raise ValueError("load shape factors must be >= 0 and not all 0")
        object.__setattr__(self, "_mean", mean)

    def multiplier(self, t: float) -> float:
        hour = int(t // 3600)
        # 1970-01-01 was a Thursday: day index 3 with Monday = 0.
        weekday = (hour // 24 + 3) % 7
        return self.diurnal[hour % 24] * self.weekly[weekday] / self._mean

    def peak_multiplier(self) -> float:
        return max(self.diurnal) * max(self.weekly) / self._mean
