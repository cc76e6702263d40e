"""Credentials per auth method and cloud: built from settings, secrets read but never shown."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
from azure.identity.aio import (
    CertificateCredential,
    ClientSecretCredential,
    ManagedIdentityCredential,
    WorkloadIdentityCredential,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from exporter.config.models import Cloud, Tenant
from exporter.graph.clouds import CLOUDS
from exporter.graph.credentials import (
    CredentialError,
    StaticTokenCredential,
    auth_summary,
    build_credential,
)

TENANT_ID = "0b6b7b8e-3f2c-4a56-9f57-2f3b8a1c9d10"
CLIENT_ID = "7f1c2a90-5d3e-4b8a-a1f0-6c2d9e8b7a65"


def tenant(auth: dict[str, Any], **extra: Any) -> Tenant:
    return Tenant.model_validate({"name": "t", "tenant_id": TENANT_ID, "auth": auth, **extra})


async def test_client_secret_from_env_and_file(tmp_path: Path) -> None:
    from_env = build_credential(
        tenant({"method": "client_secret", "client_id": CLIENT_ID, "client_secret_env": "S"}),
        env={"S": "s3cret"},
    )
    assert isinstance(from_env, ClientSecretCredential)
    await from_env.close()
    secret_file = tmp_path / "secret"
    secret_file.write_text("s3cret\n")
    from_file = build_credential(
        tenant(
            {
                "method": "client_secret",
                "client_id": CLIENT_ID,
                "client_secret_file": str(secret_file),
            },
            cloud="usgov",
        ),
        env={},
    )
    assert isinstance(from_file, ClientSecretCredential)
    await from_file.close()


def test_missing_secret_names_the_variable_not_a_value() -> None:
    with pytest.raises(CredentialError, match="environment variable S is not set") as info:
        build_credential(
            tenant({"method": "client_secret", "client_id": CLIENT_ID, "client_secret_env": "S"}),
            env={"OTHER": "s3cret"},
        )
    assert "s3cret" not in str(info.value)


def rsa_certificate(path: Path) -> Path:
    """A throwaway self-signed RSA certificate with its key, as an app registration uses."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "entra-dg-exporter test")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC))
        .not_valid_after(datetime.datetime(2120, 1, 1, tzinfo=datetime.UTC))
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + cert.public_bytes(serialization.Encoding.PEM)
    )
    return path


async def test_certificate_workload_and_managed_identity(tmp_path: Path) -> None:
    cert = rsa_certificate(tmp_path / "app.pem")
    certificate = {"method": "certificate", "client_id": CLIENT_ID, "certificate_path": str(cert)}
    token_file = tmp_path / "token"
    token_file.write_text("federated")
    built = [
        build_credential(tenant(certificate), env={}),
        build_credential(
            tenant({"method": "workload_identity", "client_id": CLIENT_ID}),
            env={"AZURE_FEDERATED_TOKEN_FILE": str(token_file)},
        ),
        build_credential(tenant({"method": "managed_identity"}), env={}),
    ]
    assert isinstance(built[0], CertificateCredential)
    assert isinstance(built[1], WorkloadIdentityCredential)
    assert isinstance(built[2], ManagedIdentityCredential)
    for credential in built:
        assert credential is not None
        await credential.close()


def test_unusable_certificate_or_workload_identity_is_explained(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(CredentialError, match=r"certificate_path: cannot load .*garbage\.pem"):
        build_credential(
            tenant(
                {"method": "certificate", "client_id": CLIENT_ID, "certificate_path": str(garbage)}
            ),
            env={},
        )
    with pytest.raises(CredentialError, match="AZURE_FEDERATED_TOKEN_FILE"):
        build_credential(tenant({"method": "workload_identity", "client_id": CLIENT_ID}), env={})


async def test_static_token_and_anonymous() -> None:
    lab = {"graph_base_url": "http://127.0.0.1:8080"}
    static = build_credential(
        Tenant.model_validate(
            {"name": "lab", "auth": {"method": "static_token", "token": "lab-token-123"}, **lab}
        ),
        env={},
    )
    assert isinstance(static, StaticTokenCredential)
    assert (await static.get_token("scope")).token == "lab-token-123"
    assert "lab-token-123" not in repr(static)
    none = Tenant.model_validate({"name": "lab", "auth": {"method": "none"}, **lab})
    assert build_credential(none, env={}) is None
    assert auth_summary(none.auth) == "none (ambient)"


def test_every_cloud_has_its_endpoints() -> None:
    assert set(CLOUDS) == set(Cloud)
    assert CLOUDS[Cloud.GLOBAL].scope == "https://graph.microsoft.com/.default"
    assert CLOUDS[Cloud.US_GOV_DOD].graph == "https://dod-graph.microsoft.us"
    assert CLOUDS[Cloud.CHINA].authority == "login.chinacloudapi.cn"
