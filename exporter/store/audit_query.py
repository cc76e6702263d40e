"""The audit query mode the store keeps per tenant (table `audit_query`, #13), read by the
audit poller (`Store.audit_query_mode`) and, through a read-only connection, by the hygiene
report's trigger sample (`store.hygiene.read_hygiene_facts`)."""

from __future__ import annotations

import sqlite3

from exporter.domain.audit_query import AuditQueryMode


def stored_audit_query_mode(db: sqlite3.Connection, tenant: str) -> AuditQueryMode:
    """How the audit log is asked for `tenant`: narrow until Graph refused it."""
    row = db.execute("SELECT mode FROM audit_query WHERE tenant=?", (tenant,)).fetchone()
    return AuditQueryMode.NARROW if row is None else AuditQueryMode(row[0])
