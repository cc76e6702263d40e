"""The current pause episode: when it began, which paused groups belong to it, which do not.

* **Ledger** (source `ledger`): an open episode recorded by this tool wins. Several open episodes
  are one incident: it starts at the earliest; its groups are those any of them paused; groups
  recorded as already paused by any of them (and not paused by another) were paused before it.
* **Inferred** (source `inferred`, someone paused with Microsoft's scripts or the portal): from
  the `paused_since` times of the paused groups that are no older than `episode_max_age`
  (older pauses without a ledger record are parked groups, not an incident):
  1. sort the times and split them into waves wherever two consecutive pauses are more than
     `episode_wave_gap` apart;
  2. a wave is significant when it holds at least `episode_min_groups` groups or at least
     `episode_min_share` of those paused groups (whichever is fewer);
  3. the episode starts at the first pause of the most recent significant wave. None
     significant (many small, scattered pauses: parking, not an incident) means no episode.
  Choosing the most recent significant wave errs on the safe side: if a wave is misjudged, groups
  are left out of the episode (the plan does not resume them; name them to resume them), never
  parked groups swept into it.
* Either way, a paused group is *in* the episode when the ledger says this tool paused it or when
  it was paused at or after the start; *paused before* when the ledger says so or it was paused
  earlier; *undetermined* when nothing tells when it was paused. Only groups in the episode are
  resumed by the plan. An episode with no paused group left is no episode: nothing to resume.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from exporter.domain.groups import GroupState, LedgerEpisode
from exporter.domain.settings import Thresholds


class EpisodeSource(StrEnum):
    LEDGER = "ledger"
    INFERRED = "inferred"


@dataclass(frozen=True, slots=True)
class PauseEpisode:
    source: EpisodeSource
    started_at: float
    group_ids: tuple[str, ...]
    """Paused now and part of the episode: what the resume plan resumes. Sorted."""
    paused_before: tuple[str, ...]
    """Paused now, but paused before the episode began. Sorted."""
    undetermined: tuple[str, ...]
    """Paused now, with no record of when or by whom. Sorted."""
    started_by: str | None = None
    reason: str | None = None
    ledger_episode_ids: tuple[str, ...] = ()


def detect_episode(
    groups: Iterable[GroupState],
    ledger: Iterable[LedgerEpisode],
    *,
    now: float,
    thresholds: Thresholds,
) -> PauseEpisode | None:
    paused = [g for g in groups if g.paused]
    open_episodes = sorted((e for e in ledger if e.open), key=lambda e: (e.started_at, e.id))
    if open_episodes:
        return _from_ledger(paused, open_episodes)
    return _inferred(paused, now=now, thresholds=thresholds)


def _from_ledger(paused: list[GroupState], episodes: list[LedgerEpisode]) -> PauseEpisode | None:
    start = episodes[0].started_at
    by_ledger = {g for e in episodes for g in e.paused}
    before_ledger = {g for e in episodes for g in e.already_paused} - by_ledger
    inside, before, unknown = [], [], []
    for g in paused:
        if g.id in before_ledger:
            before.append(g.id)
        elif g.id in by_ledger:
            inside.append(g.id)
        elif g.paused_since is None:
            unknown.append(g.id)
        elif g.paused_since >= start:
            inside.append(g.id)
        else:
            before.append(g.id)
    if not inside:
        return None
    first = episodes[0]
    return PauseEpisode(
        source=EpisodeSource.LEDGER,
        started_at=start,
        group_ids=tuple(sorted(inside)),
        paused_before=tuple(sorted(before)),
        undetermined=tuple(sorted(unknown)),
        started_by=first.started_by,
        reason=first.reason,
        ledger_episode_ids=tuple(e.id for e in episodes),
    )


def _inferred(
    paused: list[GroupState], *, now: float, thresholds: Thresholds
) -> PauseEpisode | None:
    recent = sorted(
        g.paused_since
        for g in paused
        if g.paused_since is not None and now - g.paused_since <= thresholds.episode_max_age
    )
    start = infer_start(
        recent,
        wave_gap=thresholds.episode_wave_gap,
        min_groups=thresholds.episode_min_groups,
        min_share=thresholds.episode_min_share,
    )
    if start is None:
        return None
    inside = sorted(g.id for g in paused if g.paused_since is not None and g.paused_since >= start)
    before = sorted(g.id for g in paused if g.paused_since is not None and g.paused_since < start)
    unknown = sorted(g.id for g in paused if g.paused_since is None)
    return PauseEpisode(
        source=EpisodeSource.INFERRED,
        started_at=start,
        group_ids=tuple(inside),
        paused_before=tuple(before),
        undetermined=tuple(unknown),
    )


def split_waves(times: Sequence[float], wave_gap: float) -> list[list[float]]:
    """Sorted pause times -> waves, split where consecutive times are more than `wave_gap`
    apart."""
    waves: list[list[float]] = []
    for t in times:
        if waves and t - waves[-1][-1] <= wave_gap:
            waves[-1].append(t)
        else:
            waves.append([t])
    return waves


def infer_start(
    times: Sequence[float], *, wave_gap: float, min_groups: int, min_share: float
) -> float | None:
    """The first pause of the most recent significant wave (see the module docstring)."""
    if not times:
        return None
    needed = max(1, min(min_groups, math.ceil(min_share * len(times))))
    for wave in reversed(split_waves(sorted(times), wave_gap)):
        if len(wave) >= needed:
            return wave[0]
    return None
