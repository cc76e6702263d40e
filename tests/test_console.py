"""The console's pieces on their own: the paused-groups history rebuilt from audit events, and
the page escaping whatever Graph or the configuration puts in names. (The whole console, in a
real browser against a real demo, is tests/test_demo_story.py.)"""

from __future__ import annotations

import re
from dataclasses import replace

from exporter.domain.events import DirectoryObjectKind, ProcessingState
from exporter.http.console import (
    HourCounts,
    Moment,
    PausedRow,
    PlannedBatch,
    TenantConsole,
    render_console,
)
from exporter.runtime.console import paused_history
from exporter.store.database import ObjectState

HOUR = 3600
T0 = 1_796_000_400.0  # a whole hour


def state(group_id: str, paused: bool) -> ObjectState:
    value = ProcessingState.PAUSED if paused else ProcessingState.ON
    return ObjectState(DirectoryObjectKind.GROUP, group_id, group_id, value, None, None)


def test_the_paused_line_is_rebuilt_backwards_from_the_states_and_the_events() -> None:
    # a, b, c paused together at +2h; a resumed at +5h, b at +6h; p paused before the window.
    states = [state("a", False), state("b", False), state("c", True), state("p", True)]
    changes = [
        ("a", T0 + 2 * HOUR, "Paused"),
        ("b", T0 + 2 * HOUR + 60, "Paused"),
        ("c", T0 + 2 * HOUR + 120, "Paused"),
        ("x", T0 + 3 * HOUR, "Paused"),  # not a group we list: ignored
        ("c", T0 + 4 * HOUR, None),  # did not say: ignored
        ("a", T0 + 5 * HOUR, "On"),
        ("b", T0 + 6 * HOUR, "On"),
    ]
    steps, moments = paused_history(states, changes, T0)
    assert steps == (
        (T0, 1),
        (T0 + 2 * HOUR, 2),
        (T0 + 2 * HOUR + 60, 3),
        (T0 + 2 * HOUR + 120, 4),
        (T0 + 5 * HOUR, 3),
        (T0 + 6 * HOUR, 2),
    )
    assert moments == (
        Moment(T0 + 2 * HOUR, "pause", 3),
        Moment(T0 + 5 * HOUR, "resume", 1),
        Moment(T0 + 6 * HOUR, "resume", 1),
    )


def test_a_resume_the_audit_log_does_not_hold_yet_counts_from_the_poll_that_saw_it() -> None:
    resumed_by_poll = ObjectState(
        DirectoryObjectKind.GROUP, "a", "a", ProcessingState.ON, None, T0 + 3 * HOUR
    )
    steps, moments = paused_history([resumed_by_poll], [("a", T0 + HOUR, "Paused")], T0)
    assert steps == ((T0, 0), (T0 + HOUR, 1), (T0 + 3 * HOUR, 0))
    assert [m.kind for m in moments] == ["pause", "resume"]


def test_an_event_the_listing_contradicts_does_not_move_the_line() -> None:
    # The listing says On, the only event says Paused and nothing says it was resumed since:
    # a missed event; the line keeps to what the listing says.
    steps, moments = paused_history([state("a", False)], [("a", T0 + HOUR, "Paused")], T0)
    assert [v for _, v in steps] == [0]
    assert moments == ()


HOSTILE = '<img src=x onerror="alert(1)">&'


def test_every_name_on_the_console_is_escaped() -> None:
    console = TenantConsole(
        tenant=HOSTILE,
        now=T0 + 3 * HOUR,
        window_start=T0,
        hours=(HourCounts(int(T0), 10, 2, 3, 5.0, 1.0),),
        trigger_factor=5.0,
        paused_steps=((T0, 1),),
        lag=((T0 + HOUR, 600.0),),
        moments=(Moment(T0 + HOUR, "pause", 1),),
        paused=(PausedRow(HOSTILE, HOSTILE, "group", True, T0),),
        paused_total=3,
        assessment=None,
        detail=HOSTILE,
        next_batches=(PlannedBatch(1, True, 1, (HOSTILE,)),),
    )
    page = render_console([console])
    assert "<img" not in page
    assert 'onerror="' not in page
    assert page.count("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;") >= 4
    # The charts are inline SVG: no script, no external reference.
    assert "<script" not in page
    assert not re.search(r"""(src|href)=["']?https?:""", page)
    assert "and 2 more" in page


def test_the_probe_measurements_are_drawn_beside_the_estimated_lag() -> None:
    """#20: one dot per detected canary round on the lag chart, with its delay and time."""
    console = TenantConsole(
        tenant="contoso",
        now=T0 + 3 * HOUR,
        window_start=T0,
        hours=(HourCounts(int(T0), 10, 2, 3, 5.0, 1.0),),
        trigger_factor=5.0,
        paused_steps=((T0, 0),),
        lag=((T0 + HOUR, 600.0),),
        moments=(),
        paused=(),
        paused_total=0,
        assessment=None,
        probe=((T0 + HOUR, 120.0), (T0 + 2 * HOUR, 2460.0)),
    )
    page = render_console([console])
    assert page.count('<circle class="probe"') == 2
    assert "measured by the canary probe: 41 min" in page
    assert "measured delays (dots)" in page
    without = render_console([replace(console, probe=())])
    assert '<circle class="probe"' not in without
    assert "measured delays" not in without
