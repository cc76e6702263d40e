"""Structured logging (logfmt or JSON) through structlog, written to stderr."""

from __future__ import annotations

import logging
import sys
from enum import StrEnum
from typing import TextIO, cast

import structlog


class LogFormat(StrEnum):
    LOGFMT = "logfmt"
    JSON = "json"


class _CurrentStderr:
    """Whatever sys.stderr is at the time of writing, so that a live progress display (which
    redirects stderr to print above its bar) also carries the log lines."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


_current_format = LogFormat.LOGFMT


def current_format() -> LogFormat:
    """The format configure_logging last set, for output that must follow it."""
    return _current_format


def configure_logging(level: str = "info", fmt: LogFormat = LogFormat.LOGFMT) -> None:
    global _current_format
    _current_format = fmt
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if fmt is LogFormat.JSON
        else structlog.processors.LogfmtRenderer(key_order=["ts", "level", "event"])
    )
    numeric_level = logging.getLevelName(level.upper())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(file=cast(TextIO, _CurrentStderr())),
        cache_logger_on_first_use=False,
    )
    # Libraries (azure-identity, aiohttp, httpx) and Python's own warnings log through stdlib
    # logging; keep them quiet unless asked, on stderr, and in the same format as ours, so that
    # a JSON log has no plain line in it.
    handler = logging.StreamHandler(cast(TextIO, _CurrentStderr()))
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
            ],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric_level, logging.WARNING))
    logging.captureWarnings(True)


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger
