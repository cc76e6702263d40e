"""The web config file: exporter-toolkit's format, strict, one fixture per error."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from click.testing import CliRunner

from exporter.cli.main import cli
from exporter.config.loading import ConfigError, load_config
from exporter.config.web import (
    ClientAuthType,
    WebConfigError,
    build_ssl_context,
    load_web_config,
)
from tests.certs import TLSFiles, make_tls_files

FIXTURES = Path(__file__).parent / "fixtures" / "webconfig"
INVALID = sorted(FIXTURES.glob("invalid-*.yml"))
# A real bcrypt hash (cost 4) of "s3cret"; hashes are not secrets, but never echo them anyway.
HASH = "$2b$04$aT7RuEMJSSt1uVZIrT8W8uYXBwI38zDVKGTaoMjm6AHjsYTHe8o8e"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem.removeprefix("invalid-"))
def test_each_invalid_fixture_gives_its_message(path: Path) -> None:
    expected = path.with_suffix(".expect").read_text().strip()
    with pytest.raises(WebConfigError) as info:
        load_web_config(path)
    problems = info.value.problems
    assert len(problems) == 1, problems
    assert expected in problems[0]
    assert problems[0].startswith(f"{path}: ")
    assert "\n" not in problems[0]
    assert "hunter2" not in problems[0]
    assert "QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ" not in problems[0]


def test_there_is_a_fixture_per_error_kind() -> None:
    assert len(INVALID) >= 25
    assert all(p.with_suffix(".expect").is_file() for p in INVALID)


def test_empty_file_and_empty_sections_mean_plain_http_without_auth(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yml"
    empty.write_text("")
    sections = tmp_path / "sections.yml"
    sections.write_text("tls_server_config:\nbasic_auth_users: {}\n")
    for path in (empty, sections):
        config = load_web_config(path)
        assert config.tls_server_config is None
        assert not config.basic_auth_users
        assert config.rate_limit is None
        assert config.http_server_config.headers.items() == []


def test_full_config_with_relative_paths(tmp_path: Path, tls_files: TLSFiles) -> None:
    (tmp_path / "certs").mkdir()
    for src in (tls_files.server.cert, tls_files.server.key, tls_files.ca.cert):
        (tmp_path / "certs" / src.name).write_bytes(src.read_bytes())
    path = tmp_path / "web.yml"
    path.write_text(
        "tls_server_config:\n"
        "  cert_file: certs/server.crt\n"
        "  key_file: certs/server.key\n"
        "  client_auth_type: RequireAndVerifyClientCert\n"
        "  client_ca_file: certs/ca.crt\n"
        "  min_version: TLS13\n"
        "http_server_config:\n"
        "  http2: false\n"
        "  headers:\n"
        "    X-Frame-Options: deny\n"
        "    X-Content-Type-Options: nosniff\n"
        "    Content-Security-Policy: default-src 'self'\n"
        f"basic_auth_users:\n  alice: {HASH}\n"
        "rate_limit:\n  interval: 100ms\n  burst: 20\n"
    )
    config = load_web_config(path)
    tls = config.tls_server_config
    assert tls is not None
    assert tls.cert_file == tmp_path / "certs" / "server.crt"
    assert tls.client_ca_file == tmp_path / "certs" / "ca.crt"
    assert tls.client_auth_type is ClientAuthType.REQUIRE_AND_VERIFY_CLIENT_CERT
    assert config.http_server_config.headers.items() == [
        ("Content-Security-Policy", "default-src 'self'"),
        ("X-Frame-Options", "deny"),
        ("X-Content-Type-Options", "nosniff"),
    ]
    assert config.basic_auth_users["alice"].get_secret_value() == HASH
    assert HASH not in repr(config)
    assert config.rate_limit is not None
    assert config.rate_limit.interval == pytest.approx(0.1)
    context = build_ssl_context(tls)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.minimum_version is ssl.TLSVersion.TLSv1_3


def test_inline_client_ca_and_optional_client_cert(tmp_path: Path, tls_files: TLSFiles) -> None:
    path = tmp_path / "web.yml"
    ca_pem = tls_files.ca.cert.read_text().replace("\n", "\n    ")
    path.write_text(
        "tls_server_config:\n"
        f"  cert_file: {tls_files.server.cert}\n"
        f"  key_file: {tls_files.server.key}\n"
        "  client_auth_type: VerifyClientCertIfGiven\n"
        f"  client_ca: |\n    {ca_pem}\n"
    )
    tls = load_web_config(path).tls_server_config
    assert tls is not None
    assert build_ssl_context(tls).verify_mode is ssl.CERT_OPTIONAL


def test_mismatched_certificate_and_key_are_caught(tmp_path: Path, tls_files: TLSFiles) -> None:
    path = tmp_path / "web.yml"
    path.write_text(
        f"tls_server_config:\n  cert_file: {tls_files.server.cert}\n"
        f"  key_file: {tls_files.client.key}\n"
    )
    with pytest.raises(WebConfigError, match="do not hold a matching PEM certificate"):
        load_web_config(path)


def test_config_check_validates_the_referenced_web_config(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    base = "tenants:\n  - name: lab\n    graph_base_url: http://127.0.0.1:8080\n"
    base += "    auth: {method: none}\n"
    bad_web = FIXTURES / "invalid-not-bcrypt.yml"
    config.write_text(base + f"web:\n  config_file: {bad_web}\n")
    with pytest.raises(ConfigError) as info:
        load_config(config, env={})
    assert info.value.problems == [
        f"{config}: web.config_file: {bad_web}: basic_auth_users: the password of 'alice' is "
        "not a bcrypt hash; generate one with: htpasswd -nBC 10 \"\" | tr -d ':\\n'"
    ]
    result = CliRunner().invoke(cli, ["config", "check", str(config)])
    assert result.exit_code == 1
    assert "is not a bcrypt hash" in result.output

    good_web = tmp_path / "web.yml"
    good_web.write_text(f"basic_auth_users:\n  alice: {HASH}\n")
    config.write_text(base + f"web:\n  config_file: {good_web}\n")
    assert load_config(config, env={}).web.config_file == good_web
    result = CliRunner().invoke(cli, ["config", "check", str(config)])
    assert result.exit_code == 0, result.output
