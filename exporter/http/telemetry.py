"""The exporter's own process and runtime metrics, as every Prometheus client library exports
them: `process_*` (CPU, memory, file descriptors, start time), `python_gc_*` and `python_info`;
and the audit commit process's CPU and memory under `entra_dynamic_audit_commit_process_*`,
read from /proc as for the exporter itself (no round trip to the child).

They live in a registry of their own because they change between snapshots: the snapshot's
families are rendered once per snapshot (exporter.http.app), these on every scrape.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

COMMIT_PROCESS_NAMESPACE = "entra_dynamic_audit_commit"


def exporter_metrics_registry(
    commit_pid: Callable[[], int | None] | None = None,
) -> CollectorRegistry:
    """A registry of the exporter's self-metrics; with `commit_pid`, the audit commit child's
    too (none while no child runs: ProcessCollector yields nothing for a missing /proc entry)."""
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    if commit_pid is not None:

        def pid() -> int | str:
            # /proc/-1 never exists: no child, no samples.
            current = commit_pid()
            return -1 if current is None else current

        ProcessCollector(namespace=COMMIT_PROCESS_NAMESPACE, pid=pid, registry=registry)
    return registry
