"""docker-compose.yml, the Dockerfile and the configs they mount: valid (compose-spec JSON schema,
promtool check config, amtool check-config), consistent with each other, and loadable by the
exporter's own config loader. No Docker engine is needed (none is available to the tests).

The compose-spec schema is not committed: `.ci/install-tools` extracts it from the docker-compose
1.29.2 wheel on PyPI (compose/config/compose_spec.json) into .ci/cache/schemas/."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click
import jsonschema
import pytest
import yaml

from alerts import build as alerts_build
from alerts import config as c
from exporter.cli.main import cli
from exporter.config.loading import load_config
from tests.prometheus_tools import REPO, run

COMPOSE_FILE = REPO / "docker-compose.yml"
COMPOSE_SCHEMA = REPO / ".ci" / "cache" / "schemas" / "compose_spec.json"
PROMETHEUS_CONFIG = REPO / "alerts" / "prometheus.yml"
ALERTMANAGER_CONFIG = REPO / "alerts" / "alertmanager.yml"
PROVISIONING = REPO / "dashboards" / "provisioning"
TENANT_ENV_EXAMPLE = REPO / "docs" / "examples" / "tenant.env.example"
# The schema declares "http://json-schema.org/draft/2019-09/schema#", a spelling jsonschema does
# not look up; name the draft it means.
SCHEMA_DRAFT = jsonschema.Draft201909Validator


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


COMPOSE = _yaml(COMPOSE_FILE)
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]


def _with_defaults(text: str) -> str:
    """Compose interpolation with every variable unset: `${VAR:-default}` -> default."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", text)


def _bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    mounts = []
    for volume in service.get("volumes", []):
        source, target = _with_defaults(volume).split(":")[:2]
        if source.startswith((".", "/")):
            mounts.append((source, target))
    return mounts


def test_compose_file_matches_the_compose_spec_schema() -> None:
    if not COMPOSE_SCHEMA.is_file():
        pytest.fail(
            f"{COMPOSE_SCHEMA} is missing: run `bash .ci/install-tools` (it extracts the "
            "compose-spec schema from the docker-compose 1.29.2 wheel on PyPI)",
            pytrace=False,
        )
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    SCHEMA_DRAFT.check_schema(schema)
    errors = sorted(SCHEMA_DRAFT(schema).iter_errors(COMPOSE), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_schema_validation_catches_a_mistake() -> None:
    if not COMPOSE_SCHEMA.is_file():
        pytest.fail(f"{COMPOSE_SCHEMA} is missing: run `bash .ci/install-tools`", pytrace=False)
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    broken = {"services": {"exporter": {"image": "x", "restart_policy": "always"}}}
    assert not SCHEMA_DRAFT(schema).is_valid(broken)


def _project_image(service: dict[str, Any]) -> bool:
    build = service.get("build")
    return build == "." or (isinstance(build, dict) and build.get("context") == ".")


def test_the_image_is_built_with_the_source_revision() -> None:
    # The Dockerfile writes its REVISION build argument where `--version` reads it.
    build = SERVICES["exporter"]["build"]
    assert _with_defaults(build["args"]["REVISION"]) == "unknown"
    assert "${REVISION" in build["args"]["REVISION"]
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert "ARG REVISION" in dockerfile
    assert "> exporter/REVISION" in dockerfile


def _parse_command(argv: list[str]) -> tuple[str, dict[str, Any]]:
    """The subcommand and its parameters, as the image's entrypoint (`entra-dg-exporter`) would
    parse `argv`: click's own parsing, so an unknown or misspelt flag is a UsageError. Nothing
    runs; paths are not opened."""
    parent = click.Context(cli, info_name="entra-dg-exporter")
    name, *args = argv
    command = cli.get_command(parent, name)
    if command is None:
        raise click.UsageError(f"No such command {name!r}.")
    with command.make_context(name, args, parent=parent) as context:
        return name, dict(context.params)


def _service_command(name: str) -> tuple[str, dict[str, Any]]:
    service = SERVICES[name]
    try:
        return _parse_command(list(service["command"]))
    except click.UsageError as exc:
        pytest.fail(
            f"docker-compose.yml service {name}: `entra-dg-exporter {' '.join(service['command'])}`"
            f": {exc.format_message()}",
            pytrace=False,
        )


def test_every_project_service_command_parses_with_the_cli() -> None:
    project_services = [n for n, s in SERVICES.items() if _project_image(s)]
    assert sorted(project_services) == ["exporter", "exporter-demo", "simulator"]
    for name in project_services:
        _service_command(name)


def test_the_command_check_catches_a_flag_the_subcommand_does_not_take() -> None:
    # click words it "No such option: X" up to 8.2 and "No such option 'X'" later.
    with pytest.raises(click.UsageError, match=r"No such option:? '?--web\.listen-address"):
        _parse_command(["simulate", "--web.listen-address=127.0.0.1:8080"])
    with pytest.raises(click.UsageError, match="No such command"):
        _parse_command(["simulator", "--listen=127.0.0.1:8080"])


def test_profiles_pick_the_exporter() -> None:
    profiles = {name: tuple(s.get("profiles", ())) for name, s in SERVICES.items()}
    assert profiles == {
        "exporter": ("tenant",),
        "simulator": ("demo",),
        "exporter-demo": ("demo",),
        "prometheus": (),
        "alertmanager": (),
        "grafana": (),
    }
    assert SERVICES["exporter"]["env_file"] == ["tenant.env"]
    assert SERVICES["exporter-demo"]["network_mode"] == "service:simulator"
    assert _service_command("simulator")[0] == "simulate"
    for name in ("exporter", "exporter-demo"):
        command, params = _service_command(name)
        assert command == "serve"
        assert params["listen_address"] == "0.0.0.0:9717"


def test_images_are_pinned_and_ports_stay_on_loopback() -> None:
    for name, service in SERVICES.items():
        image = service["image"]
        assert ":" in image, f"{name}: pin the image tag"
        assert not image.endswith(":latest"), f"{name}: pin the image tag"
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name}: publish {port} on loopback only"


def test_every_bind_mount_source_exists() -> None:
    for name, service in SERVICES.items():
        for source, target in _bind_mounts(service):
            assert (REPO / source).exists(), f"{name}: {source} (mounted at {target}) is missing"


def test_the_env_file_is_ignored_by_git_and_its_example_has_no_secret() -> None:
    ignored = (REPO / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "tenant.env" in ignored
    values = _env_file(TENANT_ENV_EXAMPLE)
    assert values["ENTRA_DG_CLIENT_SECRET"] == ""


def _env_file(path: Path) -> dict[str, str]:
    pairs = [
        line.partition("=")
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    return {key.strip(): value.strip() for key, _, value in pairs}


def _exporter_config_source(service: str) -> Path:
    sources = [s for s, t in _bind_mounts(SERVICES[service]) if t == "/etc/entra-dg/config.yml"]
    assert len(sources) == 1, service
    return REPO / sources[0]


def test_the_tenant_profile_config_loads_with_the_example_env() -> None:
    env = {**_env_file(TENANT_ENV_EXAMPLE), "ENTRA_DG_CLIENT_SECRET": "from-tenant-env"}
    config = load_config(_exporter_config_source("exporter"), env=env)
    tenant = config.tenants[0]
    assert tenant.tenant_id == env["ENTRA_DG_CONFIG__TENANTS__PRODUCTION__TENANT_ID"]
    assert tenant.auth.client_secret_env == "ENTRA_DG_CLIENT_SECRET"


def test_the_demo_profile_config_loads_and_targets_the_simulator() -> None:
    config = load_config(_exporter_config_source("exporter-demo"), env={})
    tenant = config.tenants[0]
    simulator_address = _service_command("simulator")[1]["listen"]
    assert tenant.graph_base_url == f"http://{simulator_address}"
    assert tenant.clock == "simulator"
    healthcheck = " ".join(SERVICES["simulator"]["healthcheck"]["test"])
    assert f"http://{simulator_address}/_sim/clock" in healthcheck


# --- Prometheus --------------------------------------------------------------------------------


def test_promtool_check_config_is_clean() -> None:
    result = run("promtool", ["check", "config", str(PROMETHEUS_CONFIG)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_loads_the_generated_rules_and_scrapes_the_job_alerts_select() -> None:
    config = _yaml(PROMETHEUS_CONFIG)
    assert config["rule_files"] == ["rules/*.yml"]
    loaded = sorted(p.name for p in PROMETHEUS_CONFIG.parent.glob(config["rule_files"][0]))
    assert loaded == sorted([alerts_build.RECORDING_FILE, alerts_build.ALERTING_FILE])
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    names = jobs[c.EXPORTER_JOB]["dns_sd_configs"][0]["names"]
    assert set(names) == {"exporter", "simulator"}  # the services that serve :9717
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "alertmanager:9093"
    ]
    mounts = {t: s for s, t in _bind_mounts(SERVICES["prometheus"])}
    assert mounts["/etc/prometheus"] == "./alerts"


# --- Alertmanager ------------------------------------------------------------------------------


def test_amtool_check_config_is_clean() -> None:
    result = run("amtool", ["check-config", str(ALERTMANAGER_CONFIG)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=EntraDynamicPauseWarranted", "severity=critical"], "oncall-pager,oncall-chat"),
        (["alertname=EntraDynamicPauseWarranted", "severity=warning"], "oncall-chat"),
        (["alertname=EntraDynamicResumeReady", "severity=info"], "oncall-chat"),
        (["alertname=SomethingElse", "severity=critical"], "null"),
    ],
)
def test_alertmanager_routes_by_severity(labels: list[str], receiver: str) -> None:
    result = run(
        "amtool", ["config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}", *labels]
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


# --- Grafana -----------------------------------------------------------------------------------


def test_grafana_provisioning_matches_the_mounts_and_prometheus() -> None:
    mounts = {t: s for s, t in _bind_mounts(SERVICES["grafana"])}
    assert mounts["/etc/grafana/provisioning"] == "./dashboards/provisioning"
    provider = _yaml(PROVISIONING / "dashboards" / "entra-dg.yml")["providers"][0]
    assert mounts[provider["options"]["path"]] == "./dashboards/json"
    datasource = _yaml(PROVISIONING / "datasources" / "prometheus.yml")["datasources"][0]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    scrape_interval = _yaml(PROMETHEUS_CONFIG)["global"]["scrape_interval"]
    assert datasource["jsonData"]["timeInterval"] == scrape_interval
    home = SERVICES["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(provider["options"]["path"] + "/")
    assert (REPO / "dashboards" / "json" / Path(home).name).is_file()


# --- Dockerfile --------------------------------------------------------------------------------


def test_dockerfile_is_slim_non_root_and_checks_health_without_curl() -> None:
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    stages = re.findall(r"^FROM (\S+)", text, flags=re.MULTILINE)
    assert stages
    assert all(s.startswith("python:3.11-slim") for s in stages)
    assert re.search(r"pip install \.", text)
    user = re.findall(r"^USER (\S+)", text, flags=re.MULTILINE)
    assert user
    assert user[-1].split(":")[0] not in ("root", "0")
    healthcheck = re.search(r"^HEALTHCHECK .*?$(?:\n    .*$)*", text, flags=re.MULTILINE)
    assert healthcheck is not None
    assert "/healthz" in healthcheck.group(0)
    assert "curl" not in healthcheck.group(0)
