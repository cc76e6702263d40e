"""`entra-dg-exporter check-resume`: may paused dynamic group processing be resumed now?

Asks a running exporter (`GET /api/v1/readiness`) and answers with an exit code a script or a
pipeline can gate on (exporter/readiness/wire.py `ExitCode`): 0 ready, 1 not ready, 2 cannot
tell (the exporter is unreachable, its data is stale, or a condition cannot be judged yet),
3 nothing to resume (no pause episode). Only 0 means go: `check-resume && resume ...` is safe.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson

from exporter.cli.options import option
from exporter.config.durations import parse_duration
from exporter.config.loading import ConfigError, load_config
from exporter.config.models import Config, parse_listen_address
from exporter.domain.formatting import human_duration, short_time
from exporter.domain.readiness import ConditionStatus, ReadinessState
from exporter.readiness.client import (
    DEFAULT_TIMEOUT,
    DEFAULT_URL,
    BasicAuth,
    ClientTLS,
    ReadinessClient,
    ReadinessReport,
    ReadinessUnavailable,
)
from exporter.readiness.wire import ExitCode, TenantReadiness

PASSWORD_ENV = "ENTRA_DG_WEB_BASIC_AUTH_PASSWORD"
_F = TypeVar("_F", bound=Callable[..., Any])

_VERDICT = {
    ConditionStatus.MET: "ok",
    ConditionStatus.BLOCKING: "BLOCKS",
    ConditionStatus.UNKNOWN: "UNKNOWN",
    ConditionStatus.NOT_APPLICABLE: "n/a",
}
_STATE = {
    ReadinessState.READY: "READY to resume",
    ReadinessState.NOT_READY: "NOT READY to resume",
    ReadinessState.CANNOT_TELL: "CANNOT TELL whether resuming is safe",
    ReadinessState.NOT_PAUSED: "nothing to resume",
}


def exporter_url(config: Config) -> str | None:
    """The exporter's own address from its config: its listen address (a wildcard bind is
    asked on loopback), https when its web config serves TLS; None when it binds port 0."""
    host, port = parse_listen_address(config.web.listen_address)
    if port == 0:
        return None
    if host in (None, "", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    scheme = "http"
    if config.web.config_file is not None:
        from exporter.config.web import load_web_config

        if load_web_config(config.web.config_file).tls_server_config is not None:
            scheme = "https"
    return f"{scheme}://{host}:{port}"


def exporter_auth_options(func: _F) -> _F:
    """How to reach an exporter whose web config asks for basic auth or serves TLS: the flags
    check-resume and the ops gate share."""
    decorators = [
        option(
            "--web.basic-auth.username",
            "username",
            default=None,
            help=f"Basic auth user of the exporter's web config; the password comes from "
            f"{PASSWORD_ENV} or --web.basic-auth.password-file.",
        ),
        option(
            "--web.basic-auth.password-file",
            "password_file",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="A file holding the basic auth password.",
        ),
        option(
            "--tls.ca-file",
            "ca_file",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="CA certificate that signed the exporter's certificate (https).",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def render_tenant(result: TenantReadiness) -> list[str]:
    lines = [
        f"{result.tenant}: {_STATE[result.state]} (exit {int(result.exit_code)}): {result.detail}"
    ]
    width = max((len(c.reason) for c in result.conditions), default=0)
    for c in result.conditions:
        since = f" [since {short_time(c.since.timestamp())}]" if c.since is not None else ""
        lines.append(f"  {_VERDICT[c.status]:<7} {c.reason:<{width}}  {c.detail}{since}")
    episode = result.episode
    if episode is not None:
        who = f" by {episode.started_by}" if episode.started_by else ""
        why = f" ({episode.reason})" if episode.reason else ""
        lines.append(
            f"  pause episode: {episode.source.value}, started "
            f"{short_time(episode.started_at.timestamp())}"
            f"{who}{why}; {episode.groups:,} group(s) in it, {episode.paused_before:,} paused "
            f"before it, {episode.undetermined:,} with an unknown pause time"
        )
    plan = result.plan
    if plan is not None and plan.batches:
        lines.append(
            f"  resume plan: {plan.critical_groups:,} critical group(s) first (at most "
            f"{plan.max_critical_groups} per batch), then {plan.other_groups:,} other(s) "
            f"{plan.batch_size} per batch; {plan.batches} batch(es) "
            f"{human_duration(plan.batch_interval_seconds)} apart, about "
            f"{human_duration(plan.estimated_duration_seconds)}"
        )
    return lines


def render_report(report: ReadinessReport) -> str:
    lines: list[str] = []
    for result in report.tenants:
        lines.extend(render_tenant(result))
    return "\n".join(lines)


@click.command("check-resume")
@option("--tenant", "tenant", default=None, help="Only this tenant (default: every tenant).")
@option("--json", "as_json", is_flag=True, help="Print the API's JSON answer on stdout.")
@option(
    "--url",
    "url",
    default=None,
    help=f"The exporter's address (default: the listen address in --config.file, else "
    f"{DEFAULT_URL}).",
)
@option(
    "--config.file",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The exporter's configuration, to find its address.",
)
@option(
    "--timeout",
    "timeout",
    default=f"{DEFAULT_TIMEOUT:g}s",
    show_default=True,
    help="How long to wait for the exporter's answer.",
)
@exporter_auth_options
@option(
    "--tls.cert-file",
    "cert_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Client certificate, when the exporter requires one.",
)
@option(
    "--tls.key-file",
    "key_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Key of the client certificate.",
)
@option(
    "--tls.insecure-skip-verify",
    "insecure",
    is_flag=True,
    help="Do not verify the exporter's certificate (labs only).",
)
def check_resume_command(
    tenant: str | None,
    as_json: bool,
    url: str | None,
    config_file: Path | None,
    timeout: str,
    username: str | None,
    password_file: Path | None,
    ca_file: Path | None,
    cert_file: Path | None,
    key_file: Path | None,
    insecure: bool,
) -> None:
    """Ask the running exporter whether paused dynamic group processing may be resumed.

    Exit 0 when ready, 1 when not ready, 2 when it cannot tell (the exporter is unreachable,
    its data is stale, or a condition cannot be judged yet), 3 when nothing is paused.
    """
    try:
        client = ReadinessClient(
            _url(url, config_file),
            timeout=_timeout(timeout),
            basic_auth=basic_auth_from_flags(username, password_file),
            tls=ClientTLS(ca_file, cert_file, key_file, insecure)
            if ca_file or cert_file or key_file or insecure
            else None,
        )
        report = asyncio.run(client.fetch(tenant))
    except ReadinessUnavailable as exc:
        _cannot_tell(str(exc), as_json)
    if as_json:
        click.echo(report.raw.decode().rstrip("\n"))
    else:
        click.echo(render_report(report))
    raise SystemExit(int(report.exit_code))


def _cannot_tell(message: str, as_json: bool) -> None:
    if as_json:
        body = {"error": message, "exit_code": int(ExitCode.CANNOT_TELL)}
        click.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
    click.echo(f"check-resume: cannot tell: {message}", err=True)
    raise SystemExit(ExitCode.CANNOT_TELL)


def _url(url: str | None, config_file: Path | None) -> str:
    if url is not None:
        return url
    if config_file is None:
        return DEFAULT_URL
    try:
        url = exporter_url(load_config(config_file, check_secrets=False))
    except ConfigError as exc:
        raise ReadinessUnavailable(
            f"cannot read the exporter's address from {config_file}: {exc.problems[0]}"
        ) from None
    except Exception as exc:  # a web config that cannot be loaded (WebConfigError, ValueError)
        raise ReadinessUnavailable(
            f"cannot read the exporter's address from {config_file}: {exc}"
        ) from None
    if url is None:
        raise ReadinessUnavailable(
            f"{config_file} has web.listen_address with port 0, so the exporter's address is "
            "unknown: give --url"
        )
    return url


def _timeout(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--timeout") from None
    if seconds <= 0:
        raise click.BadParameter("must be longer than 0s", param_hint="--timeout")
    return seconds


def basic_auth_from_flags(username: str | None, password_file: Path | None) -> BasicAuth | None:
    if username is None:
        if password_file is not None or os.environ.get(PASSWORD_ENV):
            raise click.BadParameter(
                "a basic auth password is set but no user: give --web.basic-auth.username",
                param_hint="--web.basic-auth.username",
            )
        return None
    if password_file is not None:
        try:
            password = password_file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise click.BadParameter(
                f"cannot read {password_file}: {exc.strerror}",
                param_hint="--web.basic-auth.password-file",
            ) from None
    else:
        password = os.environ.get(PASSWORD_ENV, "")
        if not password:
            raise click.BadParameter(
                f"no password: set {PASSWORD_ENV} or give --web.basic-auth.password-file",
                param_hint="--web.basic-auth.username",
            )
    return BasicAuth(username, password)
