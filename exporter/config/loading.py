"""Reading the configuration: the YAML file, then environment and flag overrides, validated
into `Config`; every problem one line naming where it came from (exporter/config/models.py has
the conventions)."""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from exporter.config.files import SettingsFileError, read_yaml_mapping
from exporter.config.models import ENV_OVERRIDE_PREFIX, SECTION_MODELS, Config
from exporter.config.web import WebConfigError, load_web_config


class ConfigError(SettingsFileError):
    """Every problem found, one line each, each naming the file and the key."""


def load_config(
    path: Path | None,
    *,
    overrides: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
    check_secrets: bool = True,
) -> Config:
    """Read, override and validate. Raises ConfigError listing every problem."""
    env = os.environ if env is None else env
    source = str(path) if path is not None else "<no config file>"
    raw: Any = {}
    if path is not None:
        raw = read_yaml_mapping(path, kind="config file", error=ConfigError)

    problems: list[str] = []
    env_overrides = [
        (f"environment {key}", key[len(ENV_OVERRIDE_PREFIX) :].lower().replace("__", "."), value)
        for key, value in sorted(env.items())
        if key.upper().startswith(ENV_OVERRIDE_PREFIX)
    ]
    flag_overrides = []
    for item in overrides:
        dotted, sep, value = item.partition("=")
        if not sep or not dotted.strip():
            problems.append(f"--config.set {item.split('=')[0]!r}: expected KEY=VALUE")
            continue
        flag_overrides.append((f"--config.set {dotted.strip()}", dotted.strip(), value))
    origins: dict[str, str] = {}
    """dotted key -> the override that set it last (flags after environment: flags win)."""
    for origin, dotted, value in [*env_overrides, *flag_overrides]:
        try:
            _apply_override(raw, dotted, value)
        except ValueError as exc:
            problems.append(f"{origin}: {exc}")
        else:
            origins[".".join(p for p in dotted.split(".") if p)] = origin
    if problems:
        raise ConfigError(problems)

    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, raw, source, origins)) from None

    if check_secrets:
        for tenant in config.tenants:
            problems.extend(
                f"{source}: tenants.{tenant.name}.auth: {p}"
                for p in tenant.auth.secret_problems(env)
            )
    if config.web.config_file is not None and not config.web.config_file.is_file():
        problems.append(f"{source}: web.config_file: {config.web.config_file} does not exist")
    elif config.web.config_file is not None:
        try:
            load_web_config(config.web.config_file)
        except WebConfigError as exc:
            problems.extend(f"{source}: web.config_file: {p}" for p in exc.problems)
    if problems:
        raise ConfigError(problems)
    return config


def _apply_override(raw: dict[str, Any], dotted: str, value: str) -> None:
    parts = [p for p in dotted.split(".") if p]
    if not parts:
        raise ValueError("empty setting path")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        raise ValueError(f"{dotted}: the value is not a YAML scalar or list") from None
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        if part == "tenants" and i == 0:
            tenants = node.setdefault("tenants", [])
            name = parts[1] if len(parts) > 1 else ""
            match = [t for t in tenants if isinstance(t, dict) and t.get("name") == name]
            if not match:
                raise ValueError(f"{dotted}: no tenant named {name!r} in the config file")
            node = match[0]
            remaining = parts[2:]
            if not remaining:
                raise ValueError(
                    f"{dotted}: name a setting of the tenant, e.g. tenants.{name}.cloud"
                )
            for sub in remaining[:-1]:
                node = node.setdefault(sub, {})
                if not isinstance(node, dict):
                    raise ValueError(f"{dotted}: {sub} is not a section")
            node[remaining[-1]] = parsed
            return
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(f"{dotted}: {part} is not a section")
    node[parts[-1]] = parsed


def _describe(
    exc: ValidationError, raw: Any, source: str, origins: Mapping[str, str] | None = None
) -> list[str]:
    lines = []
    errors = exc.errors(include_input=False, include_url=False)
    for error in errors:
        if error["type"] == "too_short" and _has_inner_error(error["loc"], errors):
            # pydantic counts the items that failed as missing too: the items' own errors say
            # what is wrong, "should have at least 1 item" would only mislead.
            continue
        loc = _readable_loc(error["loc"], raw)
        if error["type"] == "extra_forbidden":
            key = str(error["loc"][-1])
            hint = _closest_key(key, error["loc"][:-1])
            msg = f"unknown key {key!r}" + (f" (did you mean {hint!r}?)" if hint else "")
            loc = _readable_loc(error["loc"][:-1], raw) or "top level"
        elif error["type"] == "missing":
            msg = "required setting is missing"
        else:
            msg = str(error["msg"]).removeprefix("Value error, ")
        key = loc
        if error["type"] == "extra_forbidden":
            key = f"{loc}.{error['loc'][-1]}" if loc != "top level" else str(error["loc"][-1])
        where = _origin(key, msg, origins or {}) or source
        lines.append(f"{where}: {loc}: {msg}" if loc else f"{where}: {msg}")
    return lines


def _origin(key: str, message: str, origins: Mapping[str, str]) -> str | None:
    """The override a problem at `key` comes from: one that set the key or a section holding
    it, else one under the key (a section's own check) whose key the message names."""
    setting = [k for k in origins if key == k or key.startswith(k + ".")]
    if setting:
        return origins[max(setting, key=len)]
    prefix = f"{key}." if key else ""
    named = [k for k in origins if k.startswith(prefix) and k.removeprefix(prefix) in message]
    return origins[named[-1]] if named else None


def _has_inner_error(loc: tuple[int | str, ...], errors: list[ErrorDetails]) -> bool:
    return any(len(e["loc"]) > len(loc) and e["loc"][: len(loc)] == loc for e in errors)


def _readable_loc(loc: tuple[int | str, ...], raw: Any) -> str:
    """('tenants', 0, 'auth') -> 'tenants.contoso.auth' when the tenant has a name."""
    parts: list[str] = []
    node = raw
    for part in loc:
        if isinstance(part, int) and isinstance(node, list) and part < len(node):
            item = node[part]
            name = item.get("name") if isinstance(item, dict) else None
            parts.append(str(name) if isinstance(name, str) else f"[{part}]")
            node = item
            continue
        if isinstance(node, dict):
            node = node.get(part)
        parts.append(str(part))
    return ".".join(parts).replace(".[", "[")


def _closest_key(key: str, parent_loc: tuple[int | str, ...]) -> str | None:
    model: type[BaseModel] = Config
    for part in parent_loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        inner = [SECTION_MODELS.get(a, a) for a in getattr(annotation, "__args__", (annotation,))]
        sub = next((a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if sub is None:
            return None
        model = sub
    close = difflib.get_close_matches(key, list(model.model_fields), n=1, cutoff=0.6)
    return close[0] if close else None
