"""A real Prometheus for the end-to-end test: its configuration derived from the shipped one, and
the few HTTP API calls the test makes.

The configuration is alerts/prometheus.yml with only what names places and paces changed
(`derive_config`): the intervals, the exporter job's target (a static loopback address instead of
compose's DNS names, and without the relabelling that builds `instance` from those names), no
Alertmanager (the test reads alerts from Prometheus itself) and no self-scrape (its address is
compose's). The rule files keep their names and are the project's, rendered next to the config
with shortened `for:` (alerts.build.write_rule_files), so `rule_files` resolves as it does in
compose.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from alerts import build
from alerts.config import EXPORTER_JOB, EXPORTER_URL

SHIPPED_CONFIG = build.ALERTS_DIR / "prometheus.yml"
CONFIG_FILE = "prometheus.yml"
RULES_SUBDIR = build.RULES_DIR.name
RULES_GLOB = f"{RULES_SUBDIR}/*.yml"


class ShippedConfigChanged(AssertionError):
    """alerts/prometheus.yml no longer has the shape the derivation relies on."""


def derive_config(
    shipped: dict[str, Any],
    *,
    exporter_target: str,
    interval: str,
    alertmanager: str | None = None,
) -> dict[str, Any]:
    """The shipped configuration, scraping `exporter_target` every `interval`, sending alerts
    to `alertmanager` (host:port) if given."""
    config = copy.deepcopy(shipped)
    rule_files = config.get("rule_files")
    if rule_files != [RULES_GLOB]:
        raise ShippedConfigChanged(
            f"{SHIPPED_CONFIG}: rule_files is {rule_files!r}; the e2e test renders the rule "
            f"files into {RULES_SUBDIR}/ next to the config (alerts.build.write_rule_files) "
            f"and expects [{RULES_GLOB!r}]"
        )
    config["global"]["scrape_interval"] = interval
    config["global"]["evaluation_interval"] = interval
    config.pop("alerting", None)
    if alertmanager is not None:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    jobs = {job["job_name"]: job for job in config.get("scrape_configs", [])}
    if EXPORTER_JOB not in jobs:
        raise ShippedConfigChanged(
            f"{SHIPPED_CONFIG}: no scrape job named {EXPORTER_JOB!r} (alerts/config.py "
            "EXPORTER_JOB; every alert selects it)"
        )
    job = jobs[EXPORTER_JOB]
    for key in [k for k in job if k.endswith("_sd_configs") or k == "static_configs"]:
        del job[key]
    job.pop("relabel_configs", None)
    job["static_configs"] = [{"targets": [exporter_target]}]
    job["scrape_interval"] = interval
    job["scrape_timeout"] = interval
    config["scrape_configs"] = [job]
    return config


def write_config_dir(
    directory: Path,
    *,
    exporter_target: str,
    interval: str,
    for_override: str,
    alertmanager: str | None = None,
    exporter_url: str = EXPORTER_URL,
) -> Path:
    """The derived config and the rule files it names, in `directory`; returns the config path.
    The rules' runbook links open the runbook served at `exporter_url`."""
    shipped = yaml.safe_load(SHIPPED_CONFIG.read_text(encoding="utf-8"))
    config = derive_config(
        shipped, exporter_target=exporter_target, interval=interval, alertmanager=alertmanager
    )
    build.write_rule_files(
        directory / RULES_SUBDIR, for_override=for_override, exporter=exporter_url
    )
    path = directory / CONFIG_FILE
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


class PrometheusError(AssertionError):
    """The HTTP API answered with an error."""


class PrometheusAPI:
    """The parts of Prometheus's HTTP API (/api/v1) the test reads."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=10.0)

    def close(self) -> None:
        self._http.close()

    def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        response = self._http.get(f"/api/v1/{path}", params=params)
        try:
            body = response.json()
        except ValueError:
            raise PrometheusError(
                f"GET /api/v1/{path}: HTTP {response.status_code}, not JSON: {response.text[:200]}"
            ) from None
        if body.get("status") != "success":
            raise PrometheusError(
                f"GET /api/v1/{path} {params or ''}: {body.get('errorType')}: {body.get('error')}"
            )
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result as a list of {metric, value} (a scalar becomes one)."""
        data = self._get("query", {"query": promql})
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self._get("alerts")["alerts"]
        return alerts

    def active(self, alertname: str) -> list[dict[str, Any]]:
        """The alert's instances that are pending or firing."""
        return [a for a in self.alerts() if a["labels"].get("alertname") == alertname]

    def firing(self, alertname: str) -> list[dict[str, Any]]:
        return [a for a in self.active(alertname) if a["state"] == "firing"]

    def targets(self) -> list[dict[str, Any]]:
        targets: list[dict[str, Any]] = self._get("targets", {"state": "active"})["activeTargets"]
        return targets

    def rules(self) -> Iterator[dict[str, Any]]:
        for group in self._get("rules")["groups"]:
            yield from group["rules"]

    def ready(self) -> bool:
        try:
            return self._http.get("/-/ready").status_code == 200
        except httpx.HTTPError:
            return False


def values(result: list[dict[str, Any]]) -> list[float]:
    return [float(sample["value"][1]) for sample in result]
