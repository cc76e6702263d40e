"""Pause episode detection: ledger precedence, wave inference, parked groups."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.domain.episode import EpisodeSource, detect_episode, infer_start, split_waves
from exporter.domain.events import ProcessingState
from exporter.domain.groups import GroupState, LedgerEpisode, LedgerObject, reconcile_with_ledger
from exporter.domain.history import DAY, HOUR, MINUTE
from exporter.domain.settings import Thresholds
from tests.domain_builders import MONDAY, gid, group

NOW = MONDAY + 12 * HOUR
T = Thresholds()
YEARS_AGO = NOW - 3 * 365 * DAY


def ids(*numbers: int) -> tuple[str, ...]:
    return tuple(gid(n) for n in numbers)


def test_nothing_paused_no_episode() -> None:
    assert detect_episode([group(1), group(2)], [], now=NOW, thresholds=T) is None


def test_inferred_episode_ignores_long_parked_groups() -> None:
    parked = [group(i, paused_since=YEARS_AGO + i * DAY) for i in range(1, 6)]
    wave = [group(100 + i, paused_since=NOW - 20 * HOUR + i * 2) for i in range(300)]
    on = [group(999)]
    ep = detect_episode([*parked, *wave, *on], [], now=NOW, thresholds=T)
    assert ep is not None
    assert ep.source is EpisodeSource.INFERRED
    assert ep.started_at == NOW - 20 * HOUR
    assert ep.group_ids == tuple(sorted(g.id for g in wave))
    assert ep.paused_before == ids(1, 2, 3, 4, 5)


def test_a_mass_parking_older_than_the_max_age_is_not_the_episode() -> None:
    parked = [group(i, paused_since=NOW - 60 * DAY + i) for i in range(1, 2001)]
    wave = [group(5000 + i, paused_since=NOW - 20 * HOUR + i) for i in range(100)]
    ep = detect_episode([*parked, *wave], [], now=NOW, thresholds=T)
    assert ep is not None
    assert ep.started_at == NOW - 20 * HOUR
    assert len(ep.group_ids) == 100
    assert len(ep.paused_before) == 2000


def test_a_small_late_pause_does_not_move_the_episode_start() -> None:
    wave = [group(i, paused_since=NOW - 30 * HOUR + i) for i in range(1, 201)]
    late = group(500, paused_since=NOW - 2 * HOUR)
    ep = detect_episode([*wave, late], [], now=NOW, thresholds=T)
    assert ep is not None
    assert ep.started_at == NOW - 30 * HOUR + 1
    assert gid(500) in ep.group_ids  # paused after the start: part of the episode


def test_staged_pauses_within_the_wave_gap_are_one_episode() -> None:
    specific = [group(i, paused_since=NOW - 26 * HOUR + i) for i in range(1, 6)]
    everything = [group(100 + i, paused_since=NOW - 22 * HOUR + i) for i in range(500)]
    ep = detect_episode([*specific, *everything], [], now=NOW, thresholds=T)
    assert ep is not None
    assert ep.started_at == NOW - 26 * HOUR + 1
    assert len(ep.group_ids) == 505


def test_only_scattered_parked_pauses_make_no_episode() -> None:
    scattered = [group(i, paused_since=NOW - i * DAY / 3) for i in range(1, 21)]
    assert detect_episode(scattered, [], now=NOW, thresholds=T) is None


def test_unknown_pause_times_are_undetermined_and_alone_make_no_episode() -> None:
    unknown = [group(i, paused=True) for i in range(1, 4)]
    assert detect_episode(unknown, [], now=NOW, thresholds=T) is None
    wave = [group(10 + i, paused_since=NOW - 13 * HOUR) for i in range(20)]
    ep = detect_episode([*unknown, *wave], [], now=NOW, thresholds=T)
    assert ep is not None
    assert ep.undetermined == ids(1, 2, 3)


def test_ledger_wins_over_inference() -> None:
    # By the pause times alone the episode would start 20 h ago; the ledger says 30 h ago,
    # that it paused groups 1-3, and that group 4 was paused already.
    groups = [
        group(1, paused_since=NOW - 20 * HOUR),
        group(2, paused_since=NOW - 20 * HOUR),
        group(3, paused=True),
        group(4, paused_since=NOW - 20 * HOUR),
        group(5, paused_since=NOW - 40 * HOUR),  # paused by someone else, before the episode
        group(6, paused_since=NOW - 10 * HOUR),  # paused by someone else, during the episode
        group(7, paused=True),  # nobody knows
        group(8),  # resumed since
    ]
    ledger = [
        LedgerEpisode("ep-1", NOW - 30 * HOUR, "alice", "storm", ids(1, 2, 3, 8), ids(4)),
        LedgerEpisode("old", NOW - 90 * DAY, "bob", "drill", ids(5), (), NOW - 89 * DAY),
    ]
    ep = detect_episode(groups, ledger, now=NOW, thresholds=T)
    assert ep is not None
    assert (ep.source, ep.started_at, ep.started_by, ep.reason) == (
        EpisodeSource.LEDGER,
        NOW - 30 * HOUR,
        "alice",
        "storm",
    )
    assert ep.group_ids == ids(1, 2, 3, 6)
    assert ep.paused_before == ids(4, 5)
    assert ep.undetermined == ids(7)
    assert ep.ledger_episode_ids == ("ep-1",)


def test_several_open_ledger_episodes_are_one_incident() -> None:
    groups = [group(i, paused=True) for i in range(1, 5)]
    ledger = [
        LedgerEpisode("b", NOW - 10 * HOUR, "bob", "more", ids(3), ids(1, 2, 4)),
        LedgerEpisode("a", NOW - 20 * HOUR, "alice", "storm", ids(1, 2), ids(4)),
    ]
    ep = detect_episode(groups, ledger, now=NOW, thresholds=T)
    assert ep is not None
    assert ep.started_at == NOW - 20 * HOUR
    assert ep.started_by == "alice"
    assert ep.group_ids == ids(1, 2, 3)  # b saw 1 and 2 paused, by a: still a's
    assert ep.paused_before == ids(4)
    assert ep.ledger_episode_ids == ("a", "b")


def test_open_ledger_episode_with_everything_resumed_is_no_episode() -> None:
    ledger = [LedgerEpisode("a", NOW - 20 * HOUR, "alice", "storm", ids(1, 2), ())]
    assert detect_episode([group(1), group(2)], ledger, now=NOW, thresholds=T) is None


def test_waves_and_significance() -> None:
    times = [0.0, 10.0, 10 * HOUR, 10 * HOUR + 5 * MINUTE, 30 * HOUR]
    assert split_waves(times, 6 * HOUR) == [
        [0.0, 10.0],
        [10 * HOUR, 10 * HOUR + 5 * MINUTE],
        [30 * HOUR],
    ]
    # 5 times: needed = min(10, ceil(0.1 * 5)) = 1, so the latest wave counts.
    assert infer_start(times, wave_gap=6 * HOUR, min_groups=10, min_share=0.1) == 30 * HOUR
    # with a share of 0.4, 2 groups are needed: the single late pause is not a wave.
    assert infer_start(times, wave_gap=6 * HOUR, min_groups=10, min_share=0.4) == 10 * HOUR
    assert infer_start([], wave_gap=HOUR, min_groups=1, min_share=1) is None


@settings(max_examples=80, deadline=None)
@given(
    pauses=st.lists(
        st.one_of(st.none(), st.floats(-60 * DAY, 0), st.just(1.0)), min_size=0, max_size=40
    ),
    ledger_paused=st.sets(st.integers(0, 39), max_size=10),
    ledger_before=st.sets(st.integers(0, 39), max_size=10),
    use_ledger=st.booleans(),
)
def test_every_paused_group_is_placed_exactly_once(
    pauses: list[float | None],
    ledger_paused: set[int],
    ledger_before: set[int],
    use_ledger: bool,
) -> None:
    """None: paused at an unknown time; 1.0: On; otherwise paused that long before now."""
    groups: list[GroupState] = []
    for i, p in enumerate(pauses):
        if p == 1.0:
            groups.append(group(i))
        elif p is None:
            groups.append(group(i, paused=True))
        else:
            groups.append(group(i, paused_since=NOW + p))
    ledger = (
        [LedgerEpisode("x", NOW - DAY, "a", "r", ids(*ledger_paused), ids(*ledger_before))]
        if use_ledger
        else []
    )
    ep = detect_episode(groups, ledger, now=NOW, thresholds=T)
    paused = {g.id for g in groups if g.paused}
    if ep is None:
        return
    parts = [set(ep.group_ids), set(ep.paused_before), set(ep.undetermined)]
    assert set().union(*parts) == paused
    assert sum(len(p) for p in parts) == len(paused)
    assert ep.group_ids
    for g in groups:
        if g.id in ep.group_ids and g.paused_since is not None and not use_ledger:
            assert g.paused_since >= ep.started_at
        if g.id in ep.paused_before and not use_ledger:
            assert g.paused_since is not None
            assert g.paused_since < ep.started_at


def test_the_ledger_wins_over_an_older_poll_and_loses_to_a_newer_one() -> None:
    """pause --apply at T0 + 10: a poll at T0 saw the groups On; one at T0 + 20 would have seen
    whatever is true then (someone resumed group 3 in the portal)."""
    t0 = MONDAY
    polled = [replace(group(n), observed_at=t0) for n in (1, 2, 3)]
    resumed = replace(group(4, paused_since=t0 - HOUR), observed_at=t0)
    ledger = LedgerEpisode(
        "ep-1", t0 + 10, "alice", "storm", paused=ids(1, 2, 3), already_paused=(),
        objects=(
            LedgerObject(gid(1), ProcessingState.PAUSED, t0 + 10),
            LedgerObject(gid(2), ProcessingState.PAUSED, t0),  # a tie: the ledger's
            LedgerObject(gid(3), ProcessingState.PAUSED, t0 + 10),
            LedgerObject(gid(4), ProcessingState.ON, t0 + 10),
        ),
    )  # fmt: skip
    newer = replace(polled[2], observed_at=t0 + 20)
    seen = reconcile_with_ledger([*polled[:2], newer, resumed], [ledger])
    assert [g.paused for g in seen] == [True, True, False, False]
    assert seen[0].paused_since == t0 + 10
    assert seen[3].resumed_at == t0 + 10
    episode = detect_episode(seen, [ledger], now=t0 + 30, thresholds=Thresholds())
    assert episode is not None
    assert episode.group_ids == ids(1, 2)
