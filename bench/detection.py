"""Detection: minutes from a storm's start to the first notification and to the page, and false
notifications per simulated month of ordinary load (#23).

The alert timing is reproduced exactly, without real-time waiting. The simulator runs with its
clock frozen and moved by hand; the exporter runs in this process, following that clock (as in
tests/test_signals_e2e.py). At every scrape interval of simulated time the clock moves on, the
exporter polls, ingests and assesses at the new time, and its /metrics is read over HTTP. The
samples of every series the alerts read become the `input_series` of a promtool unit test
(one value a minute), and `promtool test rules` evaluates the generated rules
(alerts/rules/*.yml) over them, minute by minute: its report of which alerts are firing at
which minute is the figure. A notification is an alert starting to fire (after its `for:`),
the page one of severity critical.

Storms run on the bundled `storm` tenant scaled down (2,500 users, 80 groups, 3,000 evaluations
an hour: the drill's 12,000 users and 40,000 an hour in proportion), the exporter polling every
minute (`polling.audit_interval` default). The simulator's truth (`/_sim/truth/queue`) gives
the largest backlog each storm built (its oldest waiting change's age): the targets apply to the
storms that leave one over an hour (first notification within 10 minutes) or over 4 hours (a
page within 20 minutes). The quiet run is the `steady` tenant for 30+ simulated days (its daily
and weekly rhythm), with ordinary bulk jobs: a nightly HR sync touching 2% of users and a weekly
device patch wave, polled (and scraped) every 10 minutes to keep the month under half an
hour of real time; each episode of a firing alert counts once.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

import exporter.clock
from bench.common import Section
from exporter.config.loading import load_config
from exporter.http.app import running
from exporter.runtime.service import Exporter
from exporter.simulator.app import RunningSimulator, running_simulator
from tests.harness import write_config
from tests.prometheus_tools import tool
from tests.test_signals_e2e import Drive

HOUR = 3600.0
DAY = 86400.0
TENANT = "sim"
RULES_DIR = Path(__file__).resolve().parent.parent / "alerts" / "rules"
JOB_LABELS = 'job="entra-dg-exporter",instance="bench"'
ALERT_INPUTS = (
    "entra_dynamic_pause_warranted",
    "entra_dynamic_pause_started_timestamp_seconds",
    "entra_dynamic_processing_queue_drain_seconds",
    "entra_dynamic_processing_queue_waiting_triggers",
    "entra_dynamic_object_changes_deviation_ratio",
    "entra_dynamic_object_changes_last_hour",
    "entra_dynamic_processing_lag_seconds_bucket",
    "entra_dynamic_mid_resume_groups_on",
    "entra_dynamic_resume_ready",
)
"""Every series the tier alerts below read (a test checks them against the rules)."""
NOTIFYING = (
    "EntraDynamicPauseWarranted",
    "EntraDynamicQueueBacklog",
    "EntraDynamicTriggerRateAnomaly",
    "EntraDynamicProcessingLagHigh",
    "EntraDynamicProcessingStalled",
)
"""The alerts that say "a storm": the first of them to fire is the first notification."""

SMALL_TENANT: dict[str, Any] = {
    "tenant": {"users": 2500, "devices": 400, "dynamic_groups": 80, "administrative_units": 3},
    "processing": {"evaluations_per_hour": 3000},
    "operator_actions": False,
}
STORM_AT = 2 * HOUR
STORM_START = 1_796_418_000.0  # 2026-12-04T21:00:00Z, the signals test's start


@dataclass(frozen=True, slots=True)
class Storm:
    name: str
    what: str
    timeline: tuple[dict[str, Any], ...]
    hours: float
    """Simulated hours to run after the storm starts."""


STORMS = (
    Storm(
        "short_sharp_push",
        "80% of users' extensionAttribute3 in 30 minutes (the drill)",
        (
            {
                "at": f"{STORM_AT:g}s",
                "action": "bulk_update",
                "object_type": "user",
                "fraction": 0.8,
                "set": {"extensionAttribute3": "wave-5"},
                "over": "30m",
            },
        ),
        6.0,
    ),
    Storm(
        "slow_creep",
        "80% of users' extensionAttribute3 over 3 hours",
        (
            {
                "at": f"{STORM_AT:g}s",
                "action": "bulk_update",
                "object_type": "user",
                "fraction": 0.8,
                "set": {"extensionAttribute3": "wave-6"},
                "over": "3h",
            },
        ),
        6.0,
    ),
    Storm(
        "device_rollout",
        "90% of devices' OS version in 2 hours (a patch wave)",
        (
            {
                "at": f"{STORM_AT:g}s",
                "action": "bulk_update",
                "object_type": "device",
                "fraction": 0.9,
                "set": {"deviceOSVersion": "10.0.26100"},
                "over": "2h",
            },
        ),
        3.0,
    ),
    Storm(
        "rule_edit_big_group",
        "the rule of All employees edited: a full re-evaluation of the largest group",
        (
            {
                "at": f"{STORM_AT:g}s",
                "action": "edit_rule",
                "group": "All employees",
                "rule": '(user.accountEnabled -eq true) -and (user.userType -eq "Member") '
                '-and (user.country -ne "US")',
            },
        ),
        3.0,
    ),
)


@dataclass(frozen=True, slots=True)
class Quiet:
    days: float
    step: float
    """Scrape interval (simulated seconds)."""


QUIET_FULL = Quiet(31.0, 600.0)
QUIET_SMOKE = Quiet(0.05, 600.0)


def quiet_timeline(days: float) -> list[dict[str, Any]]:
    """Ordinary bulk jobs: a nightly HR sync of 2% of users at 02:00 over 20 minutes, and a
    device patch wave of 15% on each 7th day at 10:00 over 2 hours (offsets from the start)."""
    out: list[dict[str, Any]] = []
    for day in range(int(days)):
        out.append(
            {
                "at": f"{day * DAY + 5 * HOUR:.0f}s",
                "action": "bulk_update",
                "object_type": "user",
                "fraction": 0.02,
                "set": {"extensionAttribute1": f"night-{day}"},
                "over": "20m",
                "actor": "hr",
            }
        )
        if day % 7 == 3:
            out.append(
                {
                    "at": f"{day * DAY + 13 * HOUR:.0f}s",
                    "action": "bulk_update",
                    "object_type": "device",
                    "fraction": 0.15,
                    "set": {"deviceOSVersion": f"10.0.{22000 + day}"},
                    "over": "2h",
                }
            )
    return out


@dataclass
class Recording:
    step: float
    series: dict[str, list[float | None]] = field(default_factory=dict)
    steps: int = 0
    truth_lag: list[float] = field(default_factory=list)

    def add(self, text: str) -> None:
        for name in ALERT_INPUTS:
            for labels, value in _labelled(text, name).items():
                values = self.series.setdefault(f"{name}{{{labels}}}", [])
                values.extend([None] * (self.steps - len(values)))
                values.append(value)
        self.steps += 1


def _labelled(text: str, name: str) -> dict[str, float]:
    """`job=..,instance=..,tenant=..,label=..` -> value, for one sample name."""
    out = {}
    for line in text.splitlines():
        if not line.startswith((name + "{", name + " ")):
            continue
        head, _, value = line.rpartition(" ")
        labels = head[len(name) :].strip("{}")
        out[f"{JOB_LABELS},{labels}" if labels else JOB_LABELS] = float(value)
    return out


async def record(
    scenario: str,
    overrides: Mapping[str, Any],
    *,
    start: float,
    history_days: float,
    hours: float,
    step: float,
    workdir: Path,
) -> Recording:
    """Drive the simulator and the exporter step by step; record /metrics and the truth."""
    saved = exporter.clock.CLOCK_SYNC_INTERVAL
    exporter.clock.CLOCK_SYNC_INTERVAL = 0.02
    recording = Recording(step)
    try:
        async with running_simulator(
            scenario,
            overrides=overrides,
            speed=0,
            throttle=False,
            history_days=history_days,
            start=start,
        ) as sim:
            critical = [c.id for c in sim.tenant.directory.containers if c.critical and c.rule]
            # Every collector polls once a step: the drive waits for all of them.
            interval = f"{step:g}s"
            config = load_config(
                write_config(
                    workdir / "config.yml",
                    sim.base_url,
                    critical_groups=critical,
                    polling={
                        "audit_interval": interval,
                        "groups_interval": interval,
                        "critical_status_interval": interval,
                        "backfill_days": history_days,
                    },
                )
            )
            service = Exporter(config)
            await service.start()
            try:
                await _drive(sim, service, recording, hours)
            finally:
                await service.stop()
    finally:
        exporter.clock.CLOCK_SYNC_INTERVAL = saved
    return recording


async def _drive(
    sim: RunningSimulator, service: Exporter, recording: Recording, hours: float
) -> None:
    async with running(service.app(), "127.0.0.1:0") as where, httpx.AsyncClient() as http:
        drive = Drive(sim, service, where.url, http)
        await drive.settled(drive.start)
        steps = int(hours * HOUR / recording.step)
        for k in range(1, steps + 1):
            await drive.to(k * recording.step)
            recording.add((await http.get(f"{where.url}metrics")).text)
            truth = (await http.get(f"{sim.base_url}/_sim/truth/queue")).json()
            recording.truth_lag.append(float(truth["backlog"]["lag_seconds"]))


# -- promtool --------------------------------------------------------------------------------------


def promtool_test(recording: Recording, eval_every: int) -> dict[str, Any]:
    """A promtool unit test over the recording, sampled once a minute, that expects silence
    at every `eval_every` minutes: promtool's failures list what fires, and when."""
    per_step = max(1, round(recording.step / 60))
    minutes = recording.steps * per_step
    input_series = []
    for series, values in recording.series.items():
        values = values + [None] * (recording.steps - len(values))
        expanded = []
        for v in values:
            text = "_" if v is None else _promtool_number(v)
            expanded += [text] * per_step
        input_series.append({"series": series, "values": " ".join(expanded)})
    checks = [
        {"eval_time": f"{m}m", "alertname": name, "exp_alerts": []}
        for m in range(eval_every, minutes + 1, eval_every)
        for name in NOTIFYING
    ]
    return {
        "rule_files": [
            str(RULES_DIR / "prometheus_rules.yml"),
            str(RULES_DIR / "prometheus_alerts.yml"),
        ],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": input_series, "alert_rule_test": checks}],
    }


def _promtool_number(v: float) -> str:
    if v != v:  # NaN
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "Inf" if v > 0 else "-Inf"
    return repr(float(v))


_FAILURE = re.compile(r"alertname: (\w+), time: ([0-9dhms]+),")
_SEVERITY = re.compile(r'severity="(\w+)"')


def firing(test: Mapping[str, Any], path: Path) -> dict[int, set[tuple[str, str]]]:
    """minute -> {(alertname, severity)} firing then, by promtool's own evaluation."""
    promtool = str(tool("promtool"))
    path.write_text(yaml.safe_dump(test, width=1 << 30), "utf-8")
    result = subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, check=False
    )
    out: dict[int, set[tuple[str, str]]] = {}
    current: tuple[str, int] | None = None
    in_got = False
    for line in (result.stdout + result.stderr).splitlines():
        match = _FAILURE.search(line)
        if match:
            current = (match.group(1), _minutes(match.group(2)))
            in_got = False
            continue
        if current is None:
            continue
        if line.strip().startswith("got:"):
            in_got = True
            continue
        if in_got and "Labels:" in line:
            severity = _SEVERITY.search(line)
            out.setdefault(current[1], set()).add(
                (current[0], severity.group(1) if severity else "")
            )
    if result.returncode not in (0, 1):
        raise RuntimeError(f"promtool failed: {(result.stdout + result.stderr)[-2000:]}")
    return out


def _minutes(text: str) -> int:
    total = 0
    for number, unit in re.findall(r"(\d+)([dhms])", text):
        total += int(number) * {"d": 1440, "h": 60, "m": 1, "s": 0}[unit]
    return total


def episodes(fired: Mapping[int, set[tuple[str, str]]], every: int) -> list[tuple[int, str, str]]:
    """(first minute, alertname, severity) of each episode of an alert firing."""
    starts = []
    active: set[tuple[str, str]] = set()
    for minute in sorted(set(range(every, max(fired, default=0) + every, every)) | set(fired)):
        now = fired.get(minute, set())
        starts += [(minute, name, severity) for name, severity in sorted(now - active)]
        active = now
    return starts


# -- the section -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StormFigure:
    storm: Storm
    true_backlog_hours: float
    first_notification: float | None
    """Minutes from the storm's start."""
    first_alert: str | None
    page: float | None


async def measure_storm(
    storm: Storm, workdir: Path, *, hours: float, step: float, history_days: float
) -> StormFigure:
    directory = workdir / storm.name
    directory.mkdir(parents=True, exist_ok=True)
    overrides = {**SMALL_TENANT, "timeline": list(storm.timeline)}
    recording = await record(
        "storm",
        overrides,
        start=STORM_START,
        history_days=history_days,
        hours=STORM_AT / HOUR + hours,
        step=step,
        workdir=directory,
    )
    every = int(step // 60)
    fired = firing(promtool_test(recording, every), directory / "promtool_test.yml")
    storm_minute = int(STORM_AT / 60)
    starts = [e for e in episodes(fired, every) if e[0] > storm_minute]
    first = min(starts, default=None)
    pages = [e for e in starts if e[2] == "critical"]
    before = [e for e in episodes(fired, every) if e[0] <= storm_minute]
    if before:
        raise RuntimeError(f"{storm.name}: alerts before the storm: {before}")
    return StormFigure(
        storm,
        max(recording.truth_lag, default=0.0) / HOUR,
        None if first is None else first[0] - storm_minute,
        None if first is None else f"{first[1]} ({first[2]})",
        None if not pages else pages[0][0] - storm_minute,
    )


async def measure_quiet(
    quiet: Quiet, workdir: Path, history_days: float
) -> tuple[list[tuple[int, str, str]], float]:
    directory = workdir / "quiet"
    directory.mkdir(parents=True, exist_ok=True)
    overrides = {"timeline": quiet_timeline(quiet.days), "operator_actions": False}
    recording = await record(
        "steady",
        overrides,
        start=STORM_START,
        history_days=history_days,
        hours=quiet.days * 24,
        step=quiet.step,
        workdir=directory,
    )
    every = int(quiet.step // 60)
    fired = firing(promtool_test(recording, every), directory / "promtool_test.yml")
    return episodes(fired, every), max(recording.truth_lag, default=0.0)


def _minutes_text(value: float | None) -> str:
    return "never" if value is None else f"{value:.0f} min"


async def run(smoke: bool, workdir: Path) -> Section:
    section = Section(
        "detection",
        "Detection: storm start to notification and page; false notifications a month",
        __doc__.split("\n\n", 1)[1].strip() if __doc__ else "",
    )
    storms = STORMS[:1] if smoke else STORMS
    for storm in storms:
        started = time.perf_counter()
        figure = await (
            measure_storm(storm, workdir, hours=0.2, step=600.0, history_days=1)
            if smoke
            else measure_storm(storm, workdir, hours=storm.hours, step=60.0, history_days=7)
        )
        backlog = figure.true_backlog_hours
        warn_target = backlog > 1
        page_target = backlog > 4
        section.row(
            f"{storm.name}: first notification ({storm.what}; true backlog up to {backlog:.1f} h)",
            f"{_minutes_text(figure.first_notification)}"
            + (f", {figure.first_alert}" if figure.first_alert else ""),
            "within 10 min" if warn_target else "",
            None
            if not warn_target
            else figure.first_notification is not None and figure.first_notification <= 10,
        )
        section.row(
            f"{storm.name}: page",
            _minutes_text(figure.page),
            "within 20 min" if page_target else "",
            None if not page_target else figure.page is not None and figure.page <= 20,
        )
        section.notes.append(f"{storm.name}: {time.perf_counter() - started:.0f} s real")
    quiet = QUIET_SMOKE if smoke else QUIET_FULL
    started = time.perf_counter()
    starts, worst = await measure_quiet(quiet, workdir, 1 if smoke else 7)
    months = quiet.days / 30.0
    warnings = [e for e in starts if e[2] != "critical"]
    pages = [e for e in starts if e[2] == "critical"]
    section.row(
        f"steady + nightly HR sync + weekly device wave, {quiet.days:g} days: false warnings",
        f"{len(warnings) / months:.1f} a month ({len(warnings)} in {quiet.days:g} days)",
        "at most 1 a month",
        len(warnings) / months <= 1,
    )
    section.row("the same: false pages", f"{len(pages)}", "none", not pages)
    for minute, name, severity in starts:
        section.notes.append(f"quiet: {name} ({severity}) at day {minute / 1440:.2f}")
    section.notes.append(
        f"quiet: {time.perf_counter() - started:.0f} s real; the truly oldest waiting change "
        f"was at most {worst / 60:.0f} min old"
    )
    return section
