"""Resume plan: order, batches, exclusions, caps, explicit names."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.domain.episode import EpisodeSource, PauseEpisode
from exporter.domain.groups import GroupState
from exporter.domain.plan import ExclusionReason, plan_resume
from exporter.domain.settings import ResumeSettings
from tests.domain_builders import MONDAY, gid, group

START = MONDAY
R = ResumeSettings()


def paused(n: int, **kw: object) -> GroupState:
    return group(n, paused_since=START + n, **kw)  # type: ignore[arg-type]


def episode_of(groups: list[GroupState], before: tuple[str, ...] = (), unknown=()) -> PauseEpisode:  # type: ignore[no-untyped-def]
    inside = tuple(sorted(g.id for g in groups if g.paused and g.id not in before + unknown))
    return PauseEpisode(EpisodeSource.LEDGER, START, inside, tuple(sorted(before)), unknown)


def test_critical_first_in_capped_batches_then_others_by_name() -> None:
    crit = [paused(i, critical=True, name=f"crit {i}") for i in range(1, 8)]
    others = [paused(100 + i, name=f"team {250 - i:03d}") for i in range(250)]
    groups = [*others, *crit, group(999)]
    plan = plan_resume(episode_of(groups), groups, R, critical_priority=(gid(7), gid(3)))
    sizes = [(b.critical, len(b.groups)) for b in plan.batches]
    assert sizes == [(True, 5), (True, 2), (False, 100), (False, 100), (False, 50)]
    critical_order = [g.id for b in plan.batches if b.critical for g in b.groups]
    assert critical_order == [gid(n) for n in (7, 3, 1, 2, 4, 5, 6)]
    names = [g.name for b in plan.batches if not b.critical for g in b.groups]
    assert names == sorted(names)
    assert [b.index for b in plan.batches] == [1, 2, 3, 4, 5]
    s = plan.summary
    assert (s.critical_groups, s.other_groups, s.batches) == (7, 250, 5)
    assert s.estimated_duration_seconds == 4 * 600


def test_pre_paused_and_unknown_are_excluded_unless_named() -> None:
    groups = [paused(1), paused(2), paused(3), paused(4), group(5)]
    ep = episode_of(groups, before=(gid(2),), unknown=(gid(3),))
    plan = plan_resume(ep, groups, R)
    assert plan.group_ids == (gid(1), gid(4))
    assert [(x.id, x.reason) for x in plan.excluded] == [
        (gid(2), ExclusionReason.PAUSED_BEFORE_EPISODE),
        (gid(3), ExclusionReason.PAUSE_TIME_UNKNOWN),
    ]
    named = plan_resume(ep, groups, R, named=[gid(2), gid(5), "nope"])
    assert named.group_ids == (gid(1), gid(2), gid(4))
    assert {(x.id, x.reason) for x in named.excluded} == {
        (gid(3), ExclusionReason.PAUSE_TIME_UNKNOWN),
        (gid(5), ExclusionReason.ALREADY_ON),
        ("nope", ExclusionReason.NOT_FOUND),
    }
    assert dict(named.summary.excluded)[ExclusionReason.NOT_FOUND] == 1


def test_named_only_plans_just_those() -> None:
    groups = [paused(1), paused(2), paused(3)]
    plan = plan_resume(episode_of(groups), groups, R, named=[gid(3)], named_only=True)
    assert plan.group_ids == (gid(3),)
    assert plan.excluded == ()


def test_no_episode_plans_nothing_and_says_why() -> None:
    groups = [paused(1), group(2)]
    plan = plan_resume(None, groups, R)
    assert plan.batches == ()
    assert [(x.id, x.reason) for x in plan.excluded] == [(gid(1), ExclusionReason.NO_PAUSE_EPISODE)]
    assert plan.summary.estimated_duration_seconds == 0


def test_groups_already_on_are_skipped_even_if_the_episode_lists_them() -> None:
    groups = [paused(1), paused(2)]
    ep = episode_of(groups)
    now_on = [groups[0], group(2)]
    assert plan_resume(ep, now_on, R).group_ids == (gid(1),)


def test_plan_is_deterministic_whatever_the_input_order() -> None:
    groups = [paused(i, critical=i % 7 == 0, name=f"n{i % 13}") for i in range(1, 60)]
    a = plan_resume(episode_of(groups), groups, ResumeSettings(batch_size=7, max_critical_groups=2))
    b = plan_resume(
        episode_of(groups),
        list(reversed(groups)),
        ResumeSettings(batch_size=7, max_critical_groups=2),
    )
    assert a == b


@settings(max_examples=80, deadline=None)
@given(
    states=st.lists(st.sampled_from(["on", "in", "before", "unknown"]), max_size=60),
    critical=st.sets(st.integers(0, 59)),
    named=st.sets(st.integers(0, 70)),
    batch_size=st.integers(1, 10),
    max_critical=st.integers(1, 4),
)
def test_plan_never_includes_pre_paused_or_on_groups(
    states: list[str], critical: set[int], named: set[int], batch_size: int, max_critical: int
) -> None:
    groups = [
        group(
            i,
            paused=state != "on",
            paused_since=START if state == "in" else None,
            critical=i in critical,
        )
        for i, state in enumerate(states)
    ]
    before = tuple(gid(i) for i, s in enumerate(states) if s == "before")
    unknown = tuple(gid(i) for i, s in enumerate(states) if s == "unknown")
    ep = episode_of(groups, before, unknown)
    named_ids = {gid(i) for i in named}
    plan = plan_resume(
        ep,
        groups,
        ResumeSettings(batch_size=batch_size, max_critical_groups=max_critical),
        named=named_ids,
    )
    planned = plan.group_ids
    assert len(planned) == len(set(planned))
    on = {g.id for g in groups if not g.paused}
    assert not set(planned) & on
    assert not (set(planned) & set(before + unknown)) - named_ids
    assert set(planned) == (set(ep.group_ids) | (named_ids - on)) & {g.id for g in groups}
    seen_other = False
    for b in plan.batches:
        assert len(b.groups) <= (max_critical if b.critical else batch_size)
        assert all(g.critical == b.critical for g in b.groups)
        if not b.critical:
            seen_other = True
        assert not (b.critical and seen_other)  # critical batches come first
