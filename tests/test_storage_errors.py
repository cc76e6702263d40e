"""Storage problems are one line naming the file and the fix, exit 1 (#14 item 7): `serve` on a
store that is read-only, in a read-only directory, corrupt, truncated, not SQLite, of an unknown
schema version, or on a full disk; and `config check` tells when store.path cannot be used.
Real `serve` and `config check` processes, real files. Read-only and full disks are made real
with mounts when the tests run as root (root writes through file modes)."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import structlog
import yaml

from exporter.config.loading import load_config
from exporter.http.app import running
from exporter.runtime.service import Exporter
from exporter.simulator.app import running_simulator
from exporter.store.database import Store
from tests.harness import counts_exactly
from tests.harness import write_config as harness_config
from tests.support.waiting import wait_until
from tests.test_resilience import SMALL_STORM

CLI = [sys.executable, "-c", "from exporter.cli.main import main; main()"]
ROOT = os.geteuid() == 0


def write_config(directory: Path, store: Path) -> Path:
    path = directory / "config.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "tenants": [
                    {
                        "name": "lab",
                        "auth": {"method": "static_token", "token": "t"},
                        # Nothing listens: every case fails before the first request.
                        "graph_base_url": "http://127.0.0.1:9",
                    }
                ],
                "store": {"path": str(store)},
                "web": {"listen_address": "127.0.0.1:0"},
            }
        )
    )
    return path


def run(*args: str) -> tuple[int, list[str]]:
    done = subprocess.run([*CLI, *args], capture_output=True, timeout=60, check=False)
    return done.returncode, done.stderr.decode().strip().splitlines()


def serve(config: Path) -> tuple[int, list[str]]:
    return run("serve", "--config.file", str(config))


def make_store(path: Path) -> None:
    store = Store(path)
    store.connect()
    db = store.db
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO seen_events VALUES ('t', ?, ?)", [(i, f"event-{i:08d}") for i in range(20000)]
    )
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.disconnect()


def unmount(path: Path) -> None:
    """Unmount, lazily if something still has it open: a mount must never outlive its test."""
    if subprocess.run(["umount", str(path)], check=False).returncode != 0:
        subprocess.run(["umount", "-l", str(path)], check=True)


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """`path` (a file or a directory) read-only for the exporter: a read-only bind mount when
    running as root, else its mode."""
    if ROOT:
        subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], check=True)
            yield
        finally:
            unmount(path)
        return
    mode = path.stat().st_mode
    path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        yield
    finally:
        path.chmod(mode)


def assert_one_line(code: int, lines: list[str], path: Path, *says: str) -> None:
    assert code == 1, lines
    assert len(lines) == 1, lines
    assert str(path) in lines[0], lines[0]
    for words in says:
        assert words in lines[0], lines[0]
    assert "Traceback" not in lines[0]


def test_not_sqlite(tmp_path: Path) -> None:
    store = tmp_path / "state.sqlite3"
    store.write_text("metrics_path: /metrics\n" * 200)
    assert_one_line(*serve(write_config(tmp_path, store)), store, "not an SQLite database")
    code, lines = run("config", "check", str(write_config(tmp_path, store)))
    assert_one_line(code, lines, store, "store.path", "not an SQLite database")


@pytest.mark.parametrize("keep", [0.6, 0.05])
def test_truncated(tmp_path: Path, keep: float) -> None:
    store = tmp_path / "state.sqlite3"
    make_store(store)
    os.truncate(store, int(store.stat().st_size * keep))
    assert_one_line(*serve(write_config(tmp_path, store)), store, "corrupt or truncated", "aside")


def test_corrupt(tmp_path: Path) -> None:
    store = tmp_path / "state.sqlite3"
    make_store(store)
    with store.open("r+b") as file:  # scribble over the schema page, keep the header
        file.seek(100)
        file.write(b"\xff" * 3000)
    assert_one_line(*serve(write_config(tmp_path, store)), store, "corrupt", "aside")


def test_unknown_schema_version(tmp_path: Path) -> None:
    store = tmp_path / "state.sqlite3"
    make_store(store)
    with sqlite3.connect(store) as db:
        db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    db.close()
    assert_one_line(*serve(write_config(tmp_path, store)), store, "schema version 99", "newer")


def test_read_only_store(tmp_path: Path) -> None:
    store = tmp_path / "state.sqlite3"
    make_store(store)
    config = write_config(tmp_path, store)
    with read_only(store):
        assert_one_line(*serve(config), store, "read-only")
        if not ROOT:  # a bind mount is not a file mode config check can see
            code, lines = run("config", "check", str(config))
            assert_one_line(code, lines, store, "store.path", "read-only")


def test_read_only_directory(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    store = folder / "state.sqlite3"
    config = write_config(tmp_path, store)
    with read_only(folder):
        assert_one_line(*serve(config), store, "writable")


def test_config_check_names_a_directory_given_as_the_store(tmp_path: Path) -> None:
    config = write_config(tmp_path, tmp_path)
    code, lines = run("config", "check", str(config))
    assert_one_line(code, lines, tmp_path, "store.path", "is a directory")
    assert_one_line(*serve(config), tmp_path, "directory")


@pytest.mark.skipif(not ROOT, reason="a full disk is made with a small tmpfs mount (root only)")
def test_disk_full_at_start(tmp_path: Path) -> None:
    folder = tmp_path / "small"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)], check=True)
    try:
        with contextlib.suppress(OSError), (folder / "filler").open("wb") as filler:
            while True:
                filler.write(b"\0" * 4096)
                filler.flush()
        store = folder / "state.sqlite3"
        assert_one_line(*serve(write_config(tmp_path, store)), store, "free space")
    finally:
        shutil.rmtree(folder / "filler", ignore_errors=True)
        unmount(folder)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB file system of the test's own (tmpfs; root only)."""
    if not ROOT:
        pytest.skip("a full disk is made with a small tmpfs mount (root only)")
    folder = tmp_path / "small"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        unmount(folder)


async def test_disk_full_while_running_keeps_serving_warns_once_and_recovers(
    tmp_path: Path, small_disk: Path
) -> None:
    folder = small_disk
    filler = folder / "filler"
    try:
        async with running_simulator(
            "storm", overrides=SMALL_STORM, speed=0, throttle=False, history_days=0.1
        ) as sim:
            config = load_config(
                harness_config(
                    tmp_path / "config.yml",
                    sim.base_url,
                    polling={"audit_interval": "1m", "groups_interval": "1m", "backfill_days": 0.1},
                    store={"path": str(folder / "state.sqlite3")},
                )
            )
            exporter = Exporter(config)
            await exporter.start()
            runner = exporter.runners[0]
            statuses = runner.statuses

            def polled(success: bool, since: int) -> Callable[[], bool]:
                return lambda: all(
                    s.polls > since and s.success is success
                    for n, s in statuses.items()
                    if n in ("audit", "groups")
                )

            try:
                await wait_until(polled(True, 0), within=60, what="the first polls")
                with contextlib.suppress(OSError), filler.open("wb") as fill:
                    while True:
                        fill.write(b"\0" * 65536)
                        fill.flush()
                with structlog.testing.capture_logs() as logs:
                    for _ in range(4):  # several failing polls within a minute
                        before = max(s.polls for s in statuses.values())
                        await sim.advance(120)
                        await wait_until(polled(False, before), within=60, what="failing polls")
                    async with (
                        running(exporter.app(), "127.0.0.1:0") as where,
                        httpx.AsyncClient() as web,
                    ):
                        metrics = await web.get(f"{where.url}metrics")
                    assert metrics.status_code == 200
                    assert 'collector="audit",tenant="sim"} 0.0' in metrics.text
                filler.unlink()
                before = max(s.polls for s in statuses.values())
                await sim.advance(120)
                await wait_until(polled(True, before), within=60, what="recovery")
                await counts_exactly(exporter, sim)
            finally:
                await exporter.stop()
        crashed = [e for e in logs if e["event"] == "poll crashed"]
        assert crashed == []
        warned = [e for e in logs if e["log_level"] == "warning"]
        assert warned, "the storage failure was not reported"
        kinds = Counter(str(e.get("error")) for e in warned)
        assert all(n == 1 for n in kinds.values()), kinds
        assert all("store could not be written" in e["event"] for e in warned), warned
        assert not any("exc_info" in e for e in warned)
    finally:
        with contextlib.suppress(FileNotFoundError):
            filler.unlink()
