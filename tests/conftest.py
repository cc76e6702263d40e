"""Fixtures shared by several test modules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from exporter.store.database import Store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """An open store on a file of the test's own (no page consumers)."""
    opened = Store(tmp_path / "state.sqlite3")
    await opened.open()
    yield opened
    await opened.close()
