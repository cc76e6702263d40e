"""azure-identity async credentials from a tenant's `auth` settings.

One credential per tenant per process: it caches tokens and refreshes them early; the owner
closes it on shutdown. Secrets are read here, at start, from the environment or a file, and
are never logged or put into an error message.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, TypeVar

from azure.core.credentials import AccessToken
from azure.core.credentials_async import AsyncTokenCredential
from azure.identity.aio import (
    CertificateCredential,
    ClientSecretCredential,
    ManagedIdentityCredential,
    WorkloadIdentityCredential,
)

from exporter.config.models import Auth, AuthMethod, Tenant
from exporter.graph.clouds import CLOUDS

_T = TypeVar("_T")


class CredentialError(Exception):
    """A credential cannot be built from the configuration (names the setting, never a value)."""


class StaticTokenCredential(AsyncTokenCredential):
    """A fixed bearer token, for the simulator and labs."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        # Far in the future: the token never "expires" for the SDK's refresh logic.
        return AccessToken(self._token, 4_102_444_800)

    async def close(self) -> None:
        return None

    async def __aexit__(self, *args: object) -> None:
        return None

    def __repr__(self) -> str:
        return "StaticTokenCredential(token=**********)"


def build_credential(
    tenant: Tenant, env: Mapping[str, str] | None = None
) -> AsyncTokenCredential | None:
    """The tenant's credential, or None for `auth.method: none` (anonymous requests)."""
    env = os.environ if env is None else env
    auth = tenant.auth
    authority = CLOUDS[tenant.cloud].authority
    method = auth.method
    where = f"tenants.{tenant.name}.auth"
    if method is AuthMethod.NONE:
        return None
    if method is AuthMethod.STATIC_TOKEN:
        if auth.token is not None:
            return StaticTokenCredential(auth.token.get_secret_value())
        return StaticTokenCredential(_secret(auth.token_env, auth.token_file, env, where))
    tenant_id = _required(tenant.tenant_id, f"tenants.{tenant.name}.tenant_id")
    if method is AuthMethod.CLIENT_SECRET:
        return ClientSecretCredential(
            tenant_id,
            _required(auth.client_id, f"{where}.client_id"),
            _secret(auth.client_secret_env, auth.client_secret_file, env, where),
            authority=authority,
        )
    if method is AuthMethod.CERTIFICATE:
        password = _optional_env(auth.certificate_password_env, env, where)
        path = _required(auth.certificate_path, f"{where}.certificate_path")
        try:
            return CertificateCredential(
                tenant_id,
                _required(auth.client_id, f"{where}.client_id"),
                certificate_path=str(path),
                password=password,
                authority=authority,
            )
        except (OSError, ValueError, TypeError) as exc:
            # azure-identity reads the file here; its messages name the problem, not the key.
            reason = str(exc).splitlines()[0] if str(exc) else "unreadable"
            raise CredentialError(
                f"{where}.certificate_path: cannot load {path} ({type(exc).__name__}: "
                f"{reason}); it must be a PEM or PKCS12 file with the private key and the "
                "certificate"
            ) from None
    if method is AuthMethod.WORKLOAD_IDENTITY:
        # Kubernetes workload identity: the webhook mounts a federated token and sets these.
        token_file = env.get("AZURE_FEDERATED_TOKEN_FILE")
        client_id = auth.client_id or env.get("AZURE_CLIENT_ID")
        if not token_file:
            raise CredentialError(
                f"{where}: workload identity needs AZURE_FEDERATED_TOKEN_FILE (set by the "
                "workload identity webhook on a pod whose service account is federated)"
            )
        if not client_id:
            raise CredentialError(f"{where}: set client_id (or AZURE_CLIENT_ID)")
        return WorkloadIdentityCredential(
            tenant_id=tenant_id,
            client_id=client_id,
            token_file_path=token_file,
            authority=authority,
        )
    if method is AuthMethod.MANAGED_IDENTITY:
        return ManagedIdentityCredential(client_id=auth.managed_identity_client_id)
    raise CredentialError(f"{where}.method: unsupported auth method {method}")


def _required(value: _T | None, setting: str) -> _T:
    if value is None:
        raise CredentialError(f"{setting} is required")
    return value


def _optional_env(var: str | None, env: Mapping[str, str], where: str) -> str | None:
    if var is None:
        return None
    value = env.get(var)
    if not value:
        raise CredentialError(f"{where}: environment variable {var} is not set or empty")
    return value


def _secret(
    var: str | None, path: os.PathLike[str] | None, env: Mapping[str, str], where: str
) -> str:
    if var is not None:
        value = _optional_env(var, env, where)
        assert value is not None
        return value
    if path is None:
        raise CredentialError(f"{where}: no secret source configured")
    try:
        with open(path, encoding="utf-8") as handle:
            value = handle.read().strip()
    except OSError as exc:
        raise CredentialError(f"{where}: cannot read {path}: {exc.strerror}") from None
    if not value:
        raise CredentialError(f"{where}: {path} is empty")
    return value


def auth_summary(auth: Auth) -> str:
    """How a tenant authenticates, for logs: the method and where the secret comes from."""
    source = (
        f"env {auth.client_secret_env or auth.token_env}"
        if (auth.client_secret_env or auth.token_env)
        else f"file {auth.client_secret_file or auth.token_file or auth.certificate_path}"
        if (auth.client_secret_file or auth.token_file or auth.certificate_path)
        else "inline"
        if auth.token is not None
        else "ambient"
    )
    return f"{auth.method} ({source})"
