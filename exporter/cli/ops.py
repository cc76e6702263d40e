"""`pause`, `resume` and `plan`: Microsoft's five sample scripts as safe subcommands.

Dry run unless `--apply`; a confirmation on a terminal unless `--yes`; a summary table (or
`--json`); a progress bar on a terminal. `--apply`, `--yes` and `--force` deliberately have no
environment variable: an exported variable must never turn a dry run into a change.

Exit codes: 0 done (or a dry run), 1 some objects failed or the run was interrupted or
cancelled, 2 bad input (ids, flags, config; nothing was changed), 3 refused or stopped by the
readiness check.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from exporter.cli.check_resume import basic_auth_from_flags, exporter_auth_options, exporter_url
from exporter.cli.options import option
from exporter.config.durations import parse_duration
from exporter.config.loading import ConfigError, load_config
from exporter.config.models import Config
from exporter.graph.errors import GraphError
from exporter.ops.adopt import AdoptRequest, adopt
from exporter.ops.engine import Outcome
from exporter.ops.gate import ExporterReadiness, ReadinessSource
from exporter.ops.pause import PauseRequest, pause
from exporter.ops.plan import plan
from exporter.ops.planning import ResumeRequest
from exporter.ops.report import EXIT_INCOMPLETE, EXIT_INPUT, Report, render
from exporter.ops.resume import resume
from exporter.ops.runs import RunOptions
from exporter.ops.session import (
    OpsBusyError,
    OpsError,
    OpsSession,
    choose_tenant,
    default_operator,
    open_session,
)
from exporter.ops.targets import TargetError, parse_ids
from exporter.readiness.client import ClientTLS, ReadinessClient, ReadinessUnavailable

_F = TypeVar("_F", bound=Callable[..., Any])


# -- shared flags ---------------------------------------------------------------------------------


def _common(func: _F) -> _F:
    decorators = [
        option(
            "--config.file",
            "config_file",
            type=click.Path(dir_okay=False, path_type=Path),
            required=True,
            help="The exporter's YAML configuration (tenants, store, resume settings).",
        ),
        option(
            "--config.set",
            "overrides",
            multiple=True,
            metavar="KEY=VALUE",
            help="Override a setting by dotted path (repeatable).",
        ),
        option("--tenant", default=None, help="The tenant to act on (optional when only one)."),
        option(
            "--json",
            "as_json",
            is_flag=True,
            default=False,
            help="Print the result as JSON on stdout instead of tables.",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def _acting(func: _F) -> _F:
    decorators = [
        click.option(
            "--apply",
            is_flag=True,
            default=False,
            help="Act. Without it, show what would be done (dry run).",
        ),
        click.option(
            "--yes",
            "-y",
            is_flag=True,
            default=False,
            help="Do not ask for confirmation (needed with --apply when there is no terminal).",
        ),
        option(
            "--operator",
            default=None,
            help="Who acts, for the ledger (default: the OS user).",
        ),
        option(
            "--parallel",
            type=click.IntRange(1, 32),
            default=4,
            show_default=True,
            help="PATCH requests in flight at once.",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def _exporter(func: _F) -> _F:
    """Where the readiness gate asks: the exporter's address and, when its web config asks
    for them, basic auth and TLS (the same flags as check-resume)."""
    decorators = [
        option(
            "--exporter.url",
            "exporter_url",
            default=None,
            help="The exporter whose /api/v1/readiness gates resuming (default: its "
            "web.listen_address in the config).",
        ),
        exporter_auth_options,
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


@dataclass(frozen=True, slots=True)
class _ExporterFlags:
    url: str | None
    username: str | None
    password_file: Path | None
    ca_file: Path | None


def _selection(func: _F) -> _F:
    decorators = [
        option(
            "--group",
            "groups",
            multiple=True,
            metavar="ID",
            help="Object id of a dynamic group or administrative unit (repeatable; commas ok).",
        ),
        option(
            "--groups-file",
            "groups_files",
            multiple=True,
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="A file of ids, one per line (# comments; text after the id is ignored).",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def _batching(func: _F) -> _F:
    decorators = [
        option(
            "--batch-size",
            type=click.IntRange(1, 1000),
            default=None,
            help="Non-critical objects per batch (default: resume.batch_size, 100).",
        ),
        option(
            "--batch-interval",
            default=None,
            metavar="DURATION",
            help="Wait between batches, e.g. 10m (default: resume.batch_interval).",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


# -- commands -------------------------------------------------------------------------------------


@click.command("pause")
@_common
@_acting
@option("--all", "all_", is_flag=True, default=False, help="Every dynamic group and unit.")
@_selection
@option(
    "--except",
    "except_ids",
    multiple=True,
    metavar="ID",
    help="With --all or --adopt: leave this object alone (repeatable; commas ok).",
)
@option(
    "--except-file",
    "except_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="With --all or --adopt: a file of ids to leave alone.",
)
@option(
    "--except-critical",
    is_flag=True,
    default=False,
    help="With --all: also leave the tenant's critical_groups alone.",
)
@option(
    "--adopt",
    "adopting",
    is_flag=True,
    default=False,
    help="Record objects already paused (by Microsoft's scripts or the portal) as a pause "
    "episode, without changing them: all paused ones, or those named with --group.",
)
@option(
    "--started-at",
    default=None,
    metavar="TIME",
    help="With --adopt: when the pause began (ISO 8601, e.g. 2026-01-05T08:00:00Z).",
)
@option(
    "--resumed",
    is_flag=True,
    default=False,
    help="Pause again the open episode's objects a resume switched back On (triggers climbed "
    "mid-resume; readiness names this command).",
)
@option("--reason", default=None, help="Why (recorded in the ledger; needed for a new episode).")
def pause_command(
    config_file: Path,
    overrides: tuple[str, ...],
    tenant: str | None,
    as_json: bool,
    apply: bool,
    yes: bool,
    operator: str | None,
    parallel: int,
    all_: bool,
    groups: tuple[str, ...],
    groups_files: tuple[Path, ...],
    except_ids: tuple[str, ...],
    except_files: tuple[Path, ...],
    except_critical: bool,
    adopting: bool,
    started_at: str | None,
    resumed: bool,
    reason: str | None,
) -> None:
    """Pause dynamic membership processing: --all, --group ID ..., or --all --except ID ...;
    --adopt records a pause made elsewhere. Dry run unless --apply."""
    named = bool(groups or groups_files)
    if adopting and all_:
        raise click.UsageError("--adopt takes --group/--groups-file or nothing (all paused)")
    if resumed and (all_ or named or adopting):
        raise click.UsageError("--resumed selects on its own: leave out --all, --group, --adopt")
    if not adopting and not resumed and all_ == named:
        raise click.UsageError("choose what to pause: --all, --group/--groups-file or --resumed")
    if (except_ids or except_files) and not (all_ or (adopting and not named)):
        raise click.UsageError("--except/--except-file go with --all (or --adopt without --group)")
    if except_critical and not all_:
        raise click.UsageError("--except-critical goes with --all")
    if started_at is not None and not adopting:
        raise click.UsageError("--started-at goes with --adopt")
    ids = _ids(groups, groups_files, "--group")
    excepted = _ids(except_ids, except_files, "--except")
    start = _parse_time(started_at) if started_at is not None else None

    def act(session: OpsSession, options: RunOptions) -> Awaitable[Report]:
        if adopting:
            return adopt(session, AdoptRequest(ids, excepted, reason, start), options)
        request = PauseRequest(all_, ids, excepted, except_critical, reason, resumed)
        return pause(session, request, options)

    _run(
        config_file,
        overrides,
        tenant,
        as_json=as_json,
        apply=apply,
        yes=yes,
        operator=operator,
        parallel=parallel,
        exporter=None,
        act=act,
    )


@click.command("resume")
@_common
@_acting
@_exporter
@_selection
@option(
    "--non-critical",
    is_flag=True,
    default=False,
    help="The pause episode's non-critical objects, a batch at a time.",
)
@_batching
@click.option(
    "--one-batch/--all-batches",
    "one_batch",
    default=True,
    show_default=True,
    help="Resume at most one batch and stop (default), or continue batch by batch, waiting "
    "--batch-interval and re-checking readiness before each.",
)
@click.option(
    "--force",
    is_flag=True,
    default=False,
    help="Resume although readiness is not ready or cannot be told (needs --reason).",
)
@option("--reason", default=None, help="Why (recorded in the ledger; required with --force).")
def resume_command(
    config_file: Path,
    overrides: tuple[str, ...],
    tenant: str | None,
    as_json: bool,
    apply: bool,
    yes: bool,
    operator: str | None,
    parallel: int,
    exporter_url: str | None,
    username: str | None,
    password_file: Path | None,
    ca_file: Path | None,
    groups: tuple[str, ...],
    groups_files: tuple[Path, ...],
    non_critical: bool,
    batch_size: int | None,
    batch_interval: str | None,
    one_batch: bool,
    force: bool,
    reason: str | None,
) -> None:
    """Resume dynamic membership processing: --group ID ... (critical groups first, at most
    resume.max_critical_groups per batch) or --non-critical (the episode's other objects,
    never those paused before it). Gated by the exporter's readiness. Dry run unless --apply."""
    named = bool(groups or groups_files)
    if named == non_critical:
        raise click.UsageError("choose what to resume: --group/--groups-file, or --non-critical")
    if force and not (reason and reason.strip()):
        raise click.UsageError('--force needs --reason "...": the override is recorded')
    request = ResumeRequest(
        ids=_ids(groups, groups_files, "--group"),
        non_critical=non_critical,
        batch_size=batch_size,
        batch_interval=_duration(batch_interval),
        all_batches=not one_batch,
        force=force,
        reason=reason,
    )
    _run(
        config_file,
        overrides,
        tenant,
        as_json=as_json,
        apply=apply,
        yes=yes,
        operator=operator,
        parallel=parallel,
        exporter=_ExporterFlags(exporter_url, username, password_file, ca_file),
        act=lambda session, options: resume(session, request, options),
    )


@click.command("plan")
@_common
@_exporter
@_selection
@option(
    "--non-critical",
    is_flag=True,
    default=False,
    help="Only what resume --non-critical would resume.",
)
@_batching
def plan_command(
    config_file: Path,
    overrides: tuple[str, ...],
    tenant: str | None,
    as_json: bool,
    exporter_url: str | None,
    username: str | None,
    password_file: Path | None,
    ca_file: Path | None,
    groups: tuple[str, ...],
    groups_files: tuple[Path, ...],
    non_critical: bool,
    batch_size: int | None,
    batch_interval: str | None,
) -> None:
    """What a resume would do, batch by batch: critical groups first, then the rest; what is
    left out and why; the readiness now. Changes nothing."""
    if non_critical and (groups or groups_files):
        raise click.UsageError("--non-critical and --group/--groups-file do not go together")
    request = ResumeRequest(
        ids=_ids(groups, groups_files, "--group"),
        non_critical=non_critical,
        batch_size=batch_size,
        batch_interval=_duration(batch_interval),
    )
    _run(
        config_file,
        overrides,
        tenant,
        as_json=as_json,
        apply=False,
        yes=False,
        operator=None,
        parallel=1,
        exporter=_ExporterFlags(exporter_url, username, password_file, ca_file),
        act=lambda session, _options: plan(session, request),
    )


# -- running a command ----------------------------------------------------------------------------


def _run(
    config_file: Path,
    overrides: tuple[str, ...],
    tenant_name: str | None,
    *,
    as_json: bool,
    apply: bool,
    yes: bool,
    operator: str | None,
    parallel: int,
    exporter: _ExporterFlags | None,
    act: Callable[[OpsSession, RunOptions], Awaitable[Report]],
) -> None:
    if apply and not yes and not sys.stdin.isatty():
        _fail(["--apply without a terminal to confirm on needs --yes"], EXIT_INPUT)
    try:
        config = load_config(config_file, overrides=overrides)
        tenant = choose_tenant(config, tenant_name)
    except ConfigError as exc:
        _fail(exc.problems, EXIT_INPUT)
    except OpsError as exc:
        _fail([str(exc)], EXIT_INPUT)
    readiness = readiness_source(config, exporter) if exporter is not None else None
    who = operator or default_operator()
    display = _ProgressDisplay(enabled=sys.stderr.isatty() and not as_json)

    def confirm(question: str) -> bool:
        if yes:
            return True
        with display.paused():
            return click.confirm(question, default=False, err=True)

    async def main() -> Report:
        stop = asyncio.Event()
        options = RunOptions(
            apply=apply,
            parallel=parallel,
            confirm=confirm,
            on_outcome=display.advance,
            on_total=display.start,
            stop=stop,
        )
        with _stop_on_first_interrupt(stop):
            async with open_session(
                config, tenant, operator=who, readiness=readiness, lock=apply
            ) as session:
                return await act(session, options)

    try:
        with display:
            report = asyncio.run(main())
    except (TargetError, ConfigError) as exc:
        _fail(exc.problems, EXIT_INPUT)
    except OpsBusyError as exc:
        _fail([str(exc)], EXIT_INCOMPLETE)
    except OpsError as exc:
        _fail([str(exc)], EXIT_INPUT)
    except GraphError as exc:
        _fail([str(exc)], EXIT_INCOMPLETE)
    if as_json:
        click.echo(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        render(report, Console(highlight=False, soft_wrap=False))
    sys.exit(report.exit_code)


def readiness_source(config: Config, flags: _ExporterFlags) -> ReadinessSource:
    """The exporter's readiness API, at --exporter.url or where the config says it listens."""
    url = flags.url or exporter_url(config)
    if url is None:
        _fail(
            [
                "web.listen_address has port 0, so the exporter's address is unknown: "
                "give --exporter.url"
            ],
            EXIT_INPUT,
        )
    try:
        client = ReadinessClient(
            url,
            basic_auth=basic_auth_from_flags(flags.username, flags.password_file),
            tls=ClientTLS(ca_file=flags.ca_file) if flags.ca_file is not None else None,
        )
    except ReadinessUnavailable as exc:
        _fail([f"--exporter.url: {exc}"], EXIT_INPUT)
    return ExporterReadiness(client)


def _ids(values: tuple[str, ...], files: tuple[Path, ...], what: str) -> tuple[str, ...]:
    try:
        return parse_ids(values, files, what=what)
    except TargetError as exc:
        _fail(exc.problems, EXIT_INPUT)


def _duration(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--batch-interval") from None


def _parse_time(text: str) -> float:
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            "expected an ISO 8601 time such as 2026-01-05T08:00:00Z", param_hint="--started-at"
        ) from None
    if when.tzinfo is None:
        raise click.BadParameter(
            "give the time zone (Z for UTC), e.g. 2026-01-05T08:00:00Z", param_hint="--started-at"
        )
    return when.timestamp()


def _fail(problems: list[str], code: int) -> NoReturn:
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    sys.exit(code)


@contextlib.contextmanager
def _stop_on_first_interrupt(stop: asyncio.Event) -> Iterator[None]:
    """First Ctrl-C (or SIGTERM): stop sending, let the requests in flight finish and record
    them. A second one interrupts at once (the next run settles what was in flight)."""
    from exporter.http.app import stop_on_signals

    with stop_on_signals(stop):
        yield


class _ProgressDisplay:
    """A bar per batch on stderr, on a terminal only."""

    def __init__(self, *, enabled: bool) -> None:
        self._progress: Progress | None = None
        self._task: Any = None
        if enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )

    def __enter__(self) -> _ProgressDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def start(self, total: int, what: str) -> None:
        if self._progress is None:
            return
        self._progress.start()
        self._task = self._progress.add_task(what, total=total)

    def advance(self, _outcome: Outcome) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        if self._progress is None:
            yield
            return
        self._progress.stop()
        try:
            yield
        finally:
            if self._task is not None:
                self._progress.start()


__all__ = ["pause_command", "plan_command", "resume_command"]
