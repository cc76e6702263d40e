"""Microsoft Graph and login endpoints per national cloud: the one table (graph-facts.md)."""

from __future__ import annotations

from dataclasses import dataclass

from exporter.config.models import Cloud


@dataclass(frozen=True, slots=True)
class CloudEndpoints:
    graph: str
    """Graph root, without the API version."""
    authority: str
    """Login authority host, as azure-identity takes it."""

    @property
    def scope(self) -> str:
        return f"{self.graph}/.default"


CLOUDS: dict[Cloud, CloudEndpoints] = {
    Cloud.GLOBAL: CloudEndpoints("https://graph.microsoft.com", "login.microsoftonline.com"),
    Cloud.US_GOV: CloudEndpoints("https://graph.microsoft.us", "login.microsoftonline.us"),
    Cloud.US_GOV_DOD: CloudEndpoints("https://dod-graph.microsoft.us", "login.microsoftonline.us"),
    Cloud.CHINA: CloudEndpoints(
        "https://microsoftgraph.chinacloudapi.cn", "login.chinacloudapi.cn"
    ),
}
