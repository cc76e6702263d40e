"""The readiness client and `check-resume` against the real `/api/v1/readiness` route served by
the real web layer (basic auth and TLS included), fed with real assessments of the domain.

The end-to-end path (simulator -> exporter -> API -> check-resume) is tested in
tests/test_signals_e2e.py; here every answer the client must tell apart is produced on purpose.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import bcrypt
import orjson
import pytest
from aiohttp import web
from click.testing import CliRunner, Result
from jsonschema import Draft202012Validator, FormatChecker
from prometheus_client import CollectorRegistry
from referencing import Registry, Resource

from exporter.cli.main import cli
from exporter.config.web import WebConfig, load_web_config
from exporter.domain.assessment import TenantAssessment, assess_tenant
from exporter.domain.history import HOUR
from exporter.domain.readiness import ConditionStatus, ReadinessState, ResumeCondition
from exporter.domain.settings import ResumeSettings, Thresholds
from exporter.http.app import Readiness, create_app, running
from exporter.http.readiness_api import (
    STALE_MIN_WALL_SECONDS,
    AssessmentView,
    readiness_routes,
    tenant_entry,
)
from exporter.readiness.client import (
    BasicAuth,
    ClientTLS,
    ReadinessClient,
    ReadinessUnavailable,
    readiness_url,
)
from exporter.readiness.wire import combine_exit_codes
from tests.certs import TLSFiles, make_tls_files
from tests.test_assessment import STORM, observe

DOCS = Path(__file__).parent.parent / "docs"
T, R = Thresholds(), ResumeSettings()
PASSWORD = "s3cret"


def api_validator() -> Draft202012Validator:
    """docs/readiness-api.schema.json, with the per-tenant docs/readiness.schema.json it
    references."""
    resources = []
    for name in ("readiness.schema.json", "readiness-api.schema.json"):
        document = json.loads((DOCS / name).read_text("utf-8"))
        resources.append((document["$id"], Resource.from_contents(document)))
    api = json.loads((DOCS / "readiness-api.schema.json").read_text("utf-8"))
    return Draft202012Validator(
        api, registry=Registry().with_resources(resources), format_checker=FormatChecker()
    )


def ready_assessment() -> TenantAssessment:
    paused_at = STORM + 2 * HOUR
    now = paused_at + 26 * HOUR
    obs = observe(now, paused_at=paused_at, storm_until=STORM + 20 * HOUR)
    return assess_tenant(obs, thresholds=T, resume=R, now=now)


def not_ready_assessment() -> TenantAssessment:
    paused_at = STORM + 2 * HOUR
    now = paused_at + 10 * HOUR
    obs = observe(now, paused_at=paused_at, storm_until=now)
    return assess_tenant(obs, thresholds=T, resume=R, now=now)


class Views:
    """What the exporter's snapshot would offer; tests change it between requests."""

    def __init__(self, views: Sequence[AssessmentView]) -> None:
        self.views = list(views)

    def __call__(self) -> Sequence[AssessmentView]:
        return self.views


def view(name: str, assessment: TenantAssessment | None, age: float = 30.0) -> AssessmentView:
    now = (assessment.evaluated_at if assessment else 0.0) + age
    return AssessmentView(name, assessment, now, 900.0, "first polls under way")


@asynccontextmanager
async def serving(views: Views, web_config: WebConfig | None = None) -> AsyncIterator[str]:
    app = create_app(
        registry=CollectorRegistry(),
        readiness=lambda: Readiness.of({}),
        extra_routes=readiness_routes(views),
        web_config=web_config,
    )
    async with running(app, "127.0.0.1:0") as where:
        yield where.url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def check_resume(*args: str, env: dict[str, str] | None = None) -> Result:
    # check-resume runs its own event loop: give it a thread of its own.
    return await asyncio.to_thread(
        CliRunner().invoke, cli, ["check-resume", *args], env=env, catch_exceptions=False
    )


def test_exit_codes_combine_like_and_over_ready() -> None:
    assert combine_exit_codes([0, 0]) == 0
    assert combine_exit_codes([0, 2]) == 2
    assert combine_exit_codes([2, 1, 0]) == 1
    assert combine_exit_codes([]) == 2
    # Nothing to resume is never "go": 0 only when every tenant is ready.
    assert combine_exit_codes([3]) == 3
    assert combine_exit_codes([0, 3]) == 3
    assert combine_exit_codes([3, 2]) == 2


def test_readiness_url_keeps_a_path_prefix_and_refuses_other_schemes() -> None:
    assert readiness_url("http://h:9717") == "http://h:9717/api/v1/readiness"
    assert readiness_url("https://h/ex/") == "https://h/ex/api/v1/readiness"
    assert readiness_url("http://h/api/v1/readiness?x=1") == "http://h/api/v1/readiness"
    with pytest.raises(ReadinessUnavailable, match="not an http"):
        readiness_url("h:9717")


async def test_typed_results_filters_and_the_schema() -> None:
    views = Views([view("contoso", ready_assessment()), view("fabrikam", not_ready_assessment())])
    async with serving(views) as url:
        client = ReadinessClient(url)
        report = await client.fetch()
        api_validator().validate(orjson.loads(report.raw))
        assert (report.ready, report.exit_code) == (False, 1)
        contoso, fabrikam = report.tenants
        assert contoso.ready
        assert contoso.exit_code == 0
        assert not contoso.stale
        assert contoso.state is ReadinessState.READY
        assert contoso.assessment_age_seconds == 30.0
        assert contoso.episode is not None
        assert contoso.episode.groups == 1200
        assert contoso.episode.started_by == "alice@contoso.example"
        assert contoso.plan is not None
        assert contoso.plan.batches == 12
        assert len(contoso.pause_signals) == 6
        assert contoso.pause_warranted is True
        assert fabrikam.state is ReadinessState.NOT_READY
        minimum = fabrikam.condition(ResumeCondition.MINIMUM_PAUSE)
        assert minimum is not None
        assert minimum.status is ConditionStatus.BLOCKING
        assert minimum.observed == 10 * HOUR
        assert minimum.threshold == T.minimum_pause
        assert minimum.since_epoch == STORM + 2 * HOUR

        one = await client.tenant("contoso")
        assert one == contoso
        only = await client.fetch("fabrikam")
        assert [t.tenant for t in only.tenants] == ["fabrikam"]
        assert only.exit_code == 1
        synced = await asyncio.to_thread(client.fetch_sync, "contoso")  # the loop serves
        assert synced.tenants == (contoso,)
        with pytest.raises(ReadinessUnavailable, match="configured tenants: contoso, fabrikam"):
            await client.fetch("nope")


async def test_no_assessment_yet_and_a_stale_one_cannot_tell() -> None:
    views = Views([view("contoso", None)])
    async with serving(views) as url:
        client = ReadinessClient(url)
        result = await client.tenant("contoso")
        assert (result.state, result.exit_code) == (ReadinessState.CANNOT_TELL, 2)
        assert "first polls under way" in result.detail
        assert result.conditions == ()
        assert result.assessment is None

        views.views = [view("contoso", ready_assessment(), age=3600.0)]
        report = await client.fetch()
        api_validator().validate(orjson.loads(report.raw))
        stale = report.tenants[0]
        assert stale.stale
        assert stale.state is ReadinessState.CANNOT_TELL
        assert report.exit_code == 2
        assert "3600 s old" in stale.detail
        # The assessment itself is still there for people to read.
        assert stale.condition(ResumeCondition.MINIMUM_PAUSE) is not None


def test_on_an_accelerated_clock_staleness_also_needs_real_seconds() -> None:
    """At the demo's speed a second of delay is minutes of tenant time: an assessment an hour old
    on the tenant's clock but made 2 s ago is not stale; 20 s ago it is."""
    assessment = ready_assessment()
    now = assessment.evaluated_at + 3600.0
    fresh = AssessmentView("contoso", assessment, now, 900.0, "", wall_age=2.0)
    old = AssessmentView(
        "contoso", assessment, now, 900.0, "", wall_age=STALE_MIN_WALL_SECONDS + 10
    )
    assert tenant_entry(fresh).stale is False
    assert tenant_entry(old).stale is True
    assert tenant_entry(old).exit_code == 2


async def test_unreachable_unknown_and_foreign_answers_are_cannot_tell() -> None:
    with pytest.raises(ReadinessUnavailable, match="cannot reach the exporter"):
        await ReadinessClient(f"http://127.0.0.1:{free_port()}", timeout=2).fetch()
    async with serving(Views([])) as url:
        with pytest.raises(ReadinessUnavailable, match="404"):
            await ReadinessClient(url + "elsewhere/").fetch()
        report = await ReadinessClient(url).fetch()  # no tenant at all: nothing to trust
        assert report.exit_code == 2
        assert not report.ready


async def test_basic_auth_over_tls(tmp_path: Path) -> None:
    tls: TLSFiles = make_tls_files(tmp_path)
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    web_file = tmp_path / "web.yml"
    web_file.write_text(
        f"tls_server_config:\n  cert_file: {tls.server.cert}\n  key_file: {tls.server.key}\n"
        f"  client_ca_file: {tls.ca.cert}\n  client_auth_type: RequireAndVerifyClientCert\n"
        f"basic_auth_users:\n  alice: {hashed}\n"
    )
    views = Views([view("contoso", ready_assessment())])
    async with serving(views, load_web_config(web_file)) as url:
        assert url.startswith("https://")
        client_tls = ClientTLS(
            ca_file=tls.ca.cert, cert_file=tls.client.cert, key_file=tls.client.key
        )
        good = ReadinessClient(url, basic_auth=BasicAuth("alice", PASSWORD), tls=client_tls)
        assert (await good.tenant("contoso")).ready
        with pytest.raises(ReadinessUnavailable, match="401"):
            await ReadinessClient(
                url, basic_auth=BasicAuth("alice", "wrong"), tls=client_tls
            ).fetch()
        with pytest.raises(ReadinessUnavailable, match="cannot reach"):  # no client certificate
            await ReadinessClient(
                url, basic_auth=BasicAuth("alice", PASSWORD), tls=ClientTLS(ca_file=tls.ca.cert)
            ).fetch()
        assert "secret" not in repr(BasicAuth("alice", PASSWORD)).lower()

        password_file = tmp_path / "password"
        password_file.write_text(PASSWORD + "\n")
        common = [
            "--url", url, "--web.basic-auth.username", "alice",
            "--tls.ca-file", str(tls.ca.cert), "--tls.cert-file", str(tls.client.cert),
            "--tls.key-file", str(tls.client.key),
        ]  # fmt: skip
        by_file = await check_resume(*common, "--web.basic-auth.password-file", str(password_file))
        assert by_file.exit_code == 0, by_file.output
        by_env = await check_resume(*common, env={"ENTRA_DG_WEB_BASIC_AUTH_PASSWORD": PASSWORD})
        assert by_env.exit_code == 0, by_env.output
        no_password = await check_resume(*common, env={"ENTRA_DG_WEB_BASIC_AUTH_PASSWORD": ""})
        assert no_password.exit_code == 2
        assert "no password" in no_password.output


async def test_check_resume_human_and_json_output_and_exit_codes(tmp_path: Path) -> None:
    views = Views([view("contoso", ready_assessment()), view("fabrikam", not_ready_assessment())])
    async with serving(views) as url:
        ready = await check_resume("--url", url, "--tenant", "contoso")
        assert ready.exit_code == 0, ready.output
        lines = ready.output.splitlines()
        assert lines[0].startswith("contoso: READY to resume (exit 0)")
        verdicts = {line.split()[1]: line.split()[0] for line in lines[1:7]}
        # Without a canary probe its condition does not apply (#20).
        assert verdicts == {
            c.value: "n/a" if c is ResumeCondition.PROCESSING_KEEPING_UP else "ok"
            for c in ResumeCondition
        }
        assert "pause episode: ledger" in ready.output
        assert "resume plan:" in ready.output

        not_ready = await check_resume("--url", url, "--tenant", "fabrikam")
        assert not_ready.exit_code == 1
        assert "BLOCKS  minimum_pause" in not_ready.output
        assert "[since 2026-11-30 11:00Z]" in not_ready.output

        both = await check_resume("--url", url, "--json")
        assert both.exit_code == 1
        body: dict[str, Any] = orjson.loads(both.stdout)
        api_validator().validate(body)
        assert [t["state"] for t in body["tenants"]] == ["ready", "not_ready"]

        unknown = await check_resume("--url", url, "--tenant", "nope", "--json")
        assert unknown.exit_code == 2
        assert "no tenant named 'nope'" in orjson.loads(unknown.stdout)["error"]

    # The address comes from the exporter's config when --url is not given.
    port = free_port()
    config = tmp_path / "config.yml"
    config.write_text(
        "tenants:\n- name: sim\n  graph_base_url: http://127.0.0.1:1\n"
        "  auth: {method: static_token, token: t}\n"
        f"web: {{listen_address: ':{port}'}}\n"
    )
    down = await check_resume("--config.file", str(config), "--timeout", "2s")
    assert down.exit_code == 2
    assert f"cannot reach the exporter at http://127.0.0.1:{port}/api/v1/readiness" in down.output

    # An exporter bound to port 0 has no address to ask: the error says to give --url.
    config.write_text(config.read_text().replace(f":{port}", ":0"))
    unknown_port = await check_resume("--config.file", str(config))
    assert unknown_port.exit_code == 2
    assert "web.listen_address with port 0" in unknown_port.output
    assert "give --url" in unknown_port.output


def test_server_and_client_share_the_wire_format_not_each_other() -> None:
    """One wire format (exporter/readiness/wire.py): the server encodes its Structs, the client
    decodes them; the server takes nothing from the client."""
    import ast

    def imported(module: str) -> set[str]:
        path = Path(__file__).parent.parent / (module.replace(".", "/") + ".py")
        tree = ast.parse(path.read_text("utf-8"))
        return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}

    server = imported("exporter.http.readiness_api")
    client = imported("exporter.readiness.client")
    assert "exporter.readiness.wire" in server
    assert "exporter.readiness.wire" in client
    assert "exporter.readiness.client" not in server


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda b: b.update(api_version=2), "answers API version 2"),
        (lambda b: b["tenants"][0].update(state="maybe"), "Invalid enum value 'maybe'"),
        (lambda b: b["tenants"][0].update(exit_code=7), "Invalid enum value 7"),
        (lambda b: b["tenants"][0].pop("stale"), "missing required field `stale`"),
        (lambda b: b["tenants"][0]["assessment"].update(evaluated_at="noon"), "datetime"),
        (lambda b: b.update(tenants="all"), "Expected `array`"),
    ],
)
async def test_an_answer_off_the_wire_format_is_cannot_tell_naming_the_problem(
    mutate: Any, problem: str
) -> None:
    """msgspec checks every type and enum value on decode; the message names the field."""
    async with serving(Views([view("contoso", ready_assessment())])) as url:
        body = orjson.loads((await ReadinessClient(url).fetch()).raw)

    mutate(body)

    async def answer(request: web.Request) -> web.Response:
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/api/v1/readiness", answer)
    async with running(app, "127.0.0.1:0") as where:
        with pytest.raises(ReadinessUnavailable, match=re.escape(problem)) as info:
            await ReadinessClient(where.url).fetch()
    assert "\n" not in str(info.value)


async def test_reasons_a_newer_server_added_are_shown_and_the_state_still_decides() -> None:
    """A newer release adds pause reasons and resume conditions; a pipeline pinned to an older
    check-resume must still read the answer (its verdict is the server's state and exit code)
    rather than refuse it as off the wire format."""
    async with serving(Views([view("fabrikam", not_ready_assessment())])) as url:
        body = orjson.loads((await ReadinessClient(url).fetch()).raw)
    assessment = body["tenants"][0]["assessment"]
    assessment["pause_signals"][0]["reason"] = "queue_growth_from_the_future"
    assessment["readiness"]["conditions"].append(
        {
            **assessment["readiness"]["conditions"][0],
            "reason": "a_condition_from_the_future",
            "status": "blocking",
            "detail": "a newer server's condition",
        }
    )

    async def answer(request: web.Request) -> web.Response:
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/api/v1/readiness", answer)
    async with running(app, "127.0.0.1:0") as where:
        fabrikam = (await ReadinessClient(where.url).fetch()).tenants[0]
        shown = await check_resume("--url", where.url, "--tenant", "fabrikam")
    assert fabrikam.pause_signals[0].reason == "queue_growth_from_the_future"
    assert fabrikam.conditions[-1].reason == "a_condition_from_the_future"
    assert fabrikam.condition(ResumeCondition.MINIMUM_PAUSE) is not None
    assert shown.exit_code == 1, shown.output
    assert "BLOCKS  a_condition_from_the_future" in shown.output
