"""The web layer against an attacker (#14 item 5): over-long basic-auth passwords, bcrypt costs
that cannot work, look-alike loopback hosts, and connections that never finish a request.
Real HTTP on 127.0.0.1, real bcrypt, real config files."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import bcrypt
import pytest

from exporter.config.loading import ConfigError, load_config
from exporter.config.web import WebConfigError
from exporter.http.app import running
from tests.test_web import LOCAL, basic, client, make_app, write_web_config

PASSWORD = "s3cret"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()


@pytest.mark.parametrize("length", [73, 100, 4096])
async def test_a_password_over_72_bytes_is_a_failed_login_not_a_500(
    tmp_path: Path, length: int
) -> None:
    config = write_web_config(tmp_path, f"basic_auth_users:\n  alice: {HASH}\n")
    async with running(make_app(web_config=config), LOCAL) as server, client() as http:
        for user in ("alice", "mallory"):
            async with http.get(server.url + "metrics", headers=basic(user, "x" * length)) as r:
                assert r.status == 401
        # The right password still logs in afterwards.
        async with http.get(server.url + "metrics", headers=basic("alice", PASSWORD)) as r:
            assert r.status == 200


@pytest.mark.parametrize(
    ("cost", "says"),
    [("03", "does not accept"), ("32", "does not accept"), ("20", "each login would take")],
)
def test_a_bcrypt_cost_that_cannot_work_is_refused_in_one_line(
    tmp_path: Path, cost: str, says: str
) -> None:
    # A well-formed hash in every other respect (the salt and digest of a real cost-4 hash).
    hashed = HASH[:4] + cost + HASH[6:]
    with pytest.raises(WebConfigError) as refused:
        write_web_config(tmp_path, f"basic_auth_users:\n  alice: {hashed}\n")
    assert len(refused.value.problems) == 1
    assert "basic_auth_users" in refused.value.problems[0]
    assert says in refused.value.problems[0]


def tenant_config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "config.yml"
    path.write_text(
        "tenants:\n- name: lab\n  auth: {method: static_token, token: t}\n"
        f"  graph_base_url: {url}\n"
    )
    return path


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost.attacker.example",
        "http://127.0.0.1.attacker.example:8080",
        "http://localhost@attacker.example",
        "http://[::1].attacker.example",
    ],
)
def test_a_look_alike_loopback_host_needs_https(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config(tenant_config(tmp_path, url))
    assert len(refused.value.problems) == 1
    assert "graph_base_url" in refused.value.problems[0]
    assert "use https" in refused.value.problems[0]


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080", "http://localhost:9000/", "http://[::1]:8080"]
)
def test_real_loopback_hosts_may_use_plain_http(tmp_path: Path, url: str) -> None:
    load_config(tenant_config(tmp_path, url))


async def test_idle_and_slow_connections_are_closed_after_the_header_read_timeout() -> None:
    async with running(make_app(), LOCAL, header_read_timeout=1.0) as server:
        host, port = server.addresses[0]
        connections = []
        for n in range(40):
            reader, writer = await asyncio.open_connection(host, port)
            if n % 2:  # slow: a request line and one header, never the blank line
                writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
                await writer.drain()
            connections.append((reader, writer))
        started = time.monotonic()

        async def closed(reader: asyncio.StreamReader) -> float:
            try:
                while await reader.read(1024):  # a slow one keeps trickling headers: no reply
                    pass
            except ConnectionResetError:  # closed while our trickle was unread: also closed
                pass
            return time.monotonic() - started

        async def trickle(writer: asyncio.StreamWriter) -> None:
            for _ in range(20):
                await asyncio.sleep(0.2)
                if writer.is_closing():
                    return
                writer.write(b"X-Slow: 1\r\n")

        trickling = [asyncio.create_task(trickle(w)) for _, w in connections[1::2]]
        ends = await asyncio.wait_for(asyncio.gather(*(closed(r) for r, _ in connections)), 10)
        for task in trickling:
            task.cancel()
        for _, writer in connections:
            writer.close()
        assert max(ends) < 3.0, ends
