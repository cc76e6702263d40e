"""Who may call the fake Graph: bearer tokens are required, and validated only if configured.

Without a token map any non-empty bearer token is accepted with every permission. With one,
a token must be in it, and gets the application permissions listed for it, so that a test can
produce the 403 `Authorization_RequestDenied` a tenant gives an app that lacks
`Group.ReadWrite.All` or `AuditLog.Read.All`.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from exporter.simulator.errors import GraphError, forbidden, unauthenticated
from exporter.simulator.render import Actor
from exporter.simulator.tenant import GRAPH_CLIENT_ACTOR

AUDIT_READ = frozenset({"AuditLog.Read.All"})
GROUP_READ = frozenset(
    {"Group.Read.All", "Group.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
)
GROUP_WRITE = frozenset({"Group.ReadWrite.All", "Directory.ReadWrite.All"})
UNIT_READ = frozenset(
    {
        "AdministrativeUnit.Read.All",
        "AdministrativeUnit.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    }
)
UNIT_WRITE = frozenset({"AdministrativeUnit.ReadWrite.All", "Directory.ReadWrite.All"})


class TokenGrant(BaseModel):
    """What one token stands for: its permissions, and who the audit log says acted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    permissions: tuple[str, ...] = ()
    app_display_name: str | None = Field(default=None, description="initiatedBy.app.displayName")
    app_id: str | None = None
    user_principal_name: str | None = Field(
        default=None, description="a delegated caller: initiatedBy.user.userPrincipalName"
    )

    def actor(self) -> Actor:
        if self.user_principal_name:
            return Actor("user", GRAPH_CLIENT_ACTOR.principal, "", self.user_principal_name, "")
        if self.app_display_name:
            return Actor(
                "app",
                self.app_id or GRAPH_CLIENT_ACTOR.id,
                self.app_display_name,
                GRAPH_CLIENT_ACTOR.principal,
            )
        return GRAPH_CLIENT_ACTOR


class AuthSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tokens: dict[str, TokenGrant] | None = None


ALL_PERMISSIONS = TokenGrant(
    permissions=tuple(sorted(AUDIT_READ | GROUP_READ | GROUP_WRITE | UNIT_READ | UNIT_WRITE))
)


def authenticate(settings: AuthSettings, headers: Mapping[str, str]) -> TokenGrant:
    header = headers.get("Authorization", "")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthenticated()
    if settings.tokens is None:
        return ALL_PERMISSIONS
    grant = settings.tokens.get(token.strip())
    if grant is None:
        raise unauthenticated("Access token validation failure. Invalid audience.")
    return grant


def require(grant: TokenGrant, any_of: frozenset[str]) -> None:
    if not any_of.intersection(grant.permissions):
        raise forbidden()


__all__ = ["AuthSettings", "GraphError", "TokenGrant", "authenticate", "require"]
