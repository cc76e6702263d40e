"""The exporter's configuration for watching a simulated tenant: the static token the simulator
accepts, the simulator's clock, a store file, loopback only. The demo builds its config here,
and so do the tests and benchmarks that run the exporter against a simulator."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml


def simulated_tenant_config(
    graph_url: str,
    store_path: Path,
    *,
    token: str,
    tenant: str = "sim",
    critical_groups: Sequence[str] = (),
    listen_address: str = "127.0.0.1:0",
    extra_tenants: Sequence[Mapping[str, Any]] = (),
    **sections: Mapping[str, Any],
) -> dict[str, Any]:
    """A config document (as `Config.model_validate` takes it). `sections` are added as top-level
    sections (`polling={...}`, `resume={...}`), merged into the defaults set here (`store`)."""
    document: dict[str, Any] = {
        "tenants": [
            {
                "name": tenant,
                "graph_base_url": graph_url,
                "clock": "simulator",
                "auth": {"method": "static_token", "token": token},
                "critical_groups": list(critical_groups),
            },
            *(dict(extra) for extra in extra_tenants),
        ],
        "store": {"path": str(store_path)},
        "web": {"listen_address": listen_address},
    }
    for name, section in sections.items():
        document[name] = {**document.get(name, {}), **section}
    return document


def write_config_file(path: Path, document: Mapping[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(dict(document)), encoding="utf-8")
    return path
