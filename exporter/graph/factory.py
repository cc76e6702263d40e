"""The one way to build a `GraphClient` for a configured tenant: the exporter's pollers, the
ops commands and `lint-rules --tenant` differ only in how patiently they retry."""

from __future__ import annotations

from exporter.config.models import Config, Polling, Tenant
from exporter.graph.budget import AppBudget
from exporter.graph.client import GraphClient
from exporter.graph.clouds import CLOUDS
from exporter.graph.credentials import build_credential
from exporter.graph.retry import RetryPolicy


def polling_retry_policy(polling: Polling) -> RetryPolicy:
    """The configured retry policy (`polling.retry_*`)."""
    return RetryPolicy(
        attempts=polling.retry_attempts,
        initial_delay=polling.retry_initial_delay,
        max_delay=polling.retry_max_delay,
    )


def build_graph_client(
    config: Config,
    tenant: Tenant,
    *,
    retry: RetryPolicy | None = None,
    app_budget: AppBudget | None = None,
) -> GraphClient:
    """A GraphClient for one configured tenant: its cloud, its credential, the polling limits,
    and `retry` (default: the configured policy). CredentialError when the credential cannot
    be built from the configuration. `app_budget`: the app-wide audit budget the tenant shares
    (`exporter.graph.budget.share_budgets`), if any."""
    cloud = CLOUDS[tenant.cloud]
    polling = config.polling
    return GraphClient(
        root_url=tenant.graph_base_url or cloud.graph,
        credential=build_credential(tenant),
        scopes=[cloud.scope],
        audit_requests_per_10s=polling.audit_requests_per_10s,
        retry=retry or polling_retry_policy(polling),
        request_timeout=polling.request_timeout,
        max_body_bytes=polling.max_response_bytes,
        app_budget=app_budget,
        tenant=tenant.name,
    )
