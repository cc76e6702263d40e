"""The flag conventions every subcommand follows.

Flags are dotted like Prometheus exporters' (`--web.listen-address`); every flag also reads an
environment variable, `ENTRA_DG_` + the flag upper-cased with `.` and `-` turned into `_`
(`ENTRA_DG_WEB_LISTEN_ADDRESS`), shown in `--help`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

ENV_PREFIX = "ENTRA_DG_"


def envvar_for(flag: str) -> str:
    """The environment variable that backs a long flag: `--web.listen-address` ->
    `ENTRA_DG_WEB_LISTEN_ADDRESS`."""
    name = flag.lstrip("-").upper().replace(".", "_").replace("-", "_")
    return ENV_PREFIX + name


def option(flag: str, *param_decls: str, **attrs: Any) -> Callable[[Any], Any]:
    """`click.option` with the project's env-var convention applied to the first long flag."""
    attrs.setdefault("envvar", envvar_for(flag))
    attrs.setdefault("show_envvar", True)
    return click.option(flag, *param_decls, **attrs)
