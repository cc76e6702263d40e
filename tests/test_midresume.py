"""A storm mid-resume (#23): triggers climb again while some of the episode's groups are On."""

from __future__ import annotations

from exporter.domain.episode import EpisodeSource, PauseEpisode
from exporter.domain.events import ProcessingState
from exporter.domain.groups import LedgerEpisode, LedgerObject
from exporter.domain.midresume import mid_resume_storm
from exporter.domain.readiness import (
    ConditionResult,
    ConditionStatus,
    Readiness,
    ReadinessState,
    ResumeCondition,
)
from tests.domain_builders import MONDAY, gid, group

PAUSED_AT = MONDAY
RESUMED_AT = MONDAY + 30 * 3600


def readiness(recovery: ConditionStatus) -> Readiness:
    condition = ConditionResult(
        ResumeCondition.TRIGGER_RATE_RECOVERY, recovery, 3.2, 1.5, "ratio", None, "3.2x"
    )
    return Readiness(ReadinessState.NOT_READY, (condition,), "not ready")


def test_triggers_climbing_with_groups_back_on_name_the_command_for_exactly_those() -> None:
    groups = [group(n, paused_since=PAUSED_AT) for n in range(1, 8)] + [
        group(n, paused=False) for n in range(8, 11)
    ]
    ledger = LedgerEpisode(
        "ep-1",
        PAUSED_AT,
        "oncall",
        "storm",
        paused=tuple(gid(n) for n in range(1, 11)),
        already_paused=(),
        objects=(
            *(LedgerObject(gid(n), ProcessingState.PAUSED, PAUSED_AT) for n in range(1, 8)),
            *(LedgerObject(gid(n), ProcessingState.ON, RESUMED_AT) for n in range(8, 11)),
        ),
    )
    episode = PauseEpisode(
        EpisodeSource.LEDGER, PAUSED_AT, tuple(gid(n) for n in range(1, 8)), (), ()
    )
    storm = mid_resume_storm(episode, groups, [ledger], [], readiness(ConditionStatus.BLOCKING))
    assert storm is not None
    assert storm.resumed_group_ids == tuple(gid(n) for n in range(8, 11))
    assert storm.still_paused == 7
    assert storm.why == ("trigger_rate_recovery",)
    assert "pause --tenant contoso --resumed" in storm.command("contoso")
    assert "3 of the episode's groups are back On and 7 still paused" in storm.text("contoso")
    # Triggers back at baseline: a resume in progress, nothing to say.
    assert mid_resume_storm(episode, groups, [ledger], [], readiness(ConditionStatus.MET)) is None
