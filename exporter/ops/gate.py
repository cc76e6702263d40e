"""The readiness gate in front of every resume batch.

The exporter decides whether resuming is safe (docs/signals.md, "Resume ready") and serves it
read-only at `GET /api/v1/readiness`, reflecting the pause ledger these commands write as it is
when it answers (so `not_paused` right after a pause cannot happen); the resume command asks it
before the first batch and again before each later one. Only `ready` (or `not_paused`: the
exporter sees no episode, so there is nothing to wait for; resuming parked groups by name needs
none) lets a batch go; `not_ready` and `cannot_tell` (the exporter is unreachable, its data is
stale, a baseline is missing) stop it, unless the operator overrides with `--force --reason`,
which the ledger records. `check-resume`, for pipelines, exits 3 on `not_paused`: only 0 is go.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from exporter.domain.readiness import ReadinessState
from exporter.readiness.client import ReadinessClient, ReadinessUnavailable

ALLOWING = frozenset({ReadinessState.READY, ReadinessState.NOT_PAUSED})


@dataclass(frozen=True, slots=True)
class ReadinessReading:
    state: ReadinessState
    detail: str
    source: str
    """Where it came from (the exporter's URL)."""

    @property
    def allows_resume(self) -> bool:
        return self.state in ALLOWING

    def describe(self) -> str:
        return f"{self.state.value}: {self.detail}" if self.detail else self.state.value


class ReadinessSource(Protocol):
    async def read(self, tenant: str) -> ReadinessReading:
        """Never raises for an unreachable or unreadable exporter: that is `cannot_tell`."""
        ...


class ExporterReadiness:
    """The exporter's `GET /api/v1/readiness`, through the shared readiness client. Reads
    only: the exporter's web server has no write endpoint, and the operations never write
    through it."""

    def __init__(self, client: ReadinessClient) -> None:
        self._client = client

    @property
    def url(self) -> str:
        return self._client.url

    async def read(self, tenant: str) -> ReadinessReading:
        try:
            result = await self._client.tenant(tenant)
        except ReadinessUnavailable as exc:
            return ReadinessReading(ReadinessState.CANNOT_TELL, str(exc), self._client.url)
        return ReadinessReading(result.state, result.detail, self._client.url)


class LedgerCheckedReadiness:
    """The exporter's reading, checked against this tool's own ledger: `not_paused` while the
    ledger holds objects paused in an open episode is a contradiction (an exporter reading
    another store, or one too old to read the ledger), so it is `cannot_tell`, never a go."""

    def __init__(self, exporter: ReadinessSource, paused: Callable[[str], Awaitable[int]]) -> None:
        self._exporter = exporter
        self._paused = paused

    async def read(self, tenant: str) -> ReadinessReading:
        reading = await self._exporter.read(tenant)
        if reading.state is not ReadinessState.NOT_PAUSED:
            return reading
        paused = await self._paused(tenant)
        if not paused:
            return reading
        return ReadinessReading(
            ReadinessState.CANNOT_TELL,
            f"the exporter sees no pause, but this tool's ledger holds {paused:,} object(s) "
            "paused in an open episode: check that the exporter reads the same store.path",
            reading.source,
        )


@dataclass(frozen=True, slots=True)
class GateDecision:
    allowed: bool
    forced: bool
    reading: ReadinessReading

    def describe(self) -> str:
        if self.allowed and not self.forced:
            return f"readiness {self.reading.describe()}"
        if self.forced:
            return f"readiness {self.reading.describe()} (overridden with --force)"
        return f"resume refused: readiness {self.reading.describe()}"


def decide(reading: ReadinessReading, *, force: bool) -> GateDecision:
    if reading.allows_resume:
        return GateDecision(True, False, reading)
    return GateDecision(force, force, reading)


__all__ = [
    "ExporterReadiness",
    "GateDecision",
    "LedgerCheckedReadiness",
    "ReadinessReading",
    "ReadinessSource",
    "decide",
]
