"""The web config file (`web.config_file`): TLS, response headers, basic auth, rate limit.

The format is Prometheus exporter-toolkit's (docs/web-configuration.md in
prometheus/exporter-toolkit), so one file can serve this exporter and the node exporter next to
it. What maps cleanly onto Python's `ssl` is supported; the rest is rejected with an error naming
the key, never silently ignored:

* supported: `tls_server_config` `cert_file`, `key_file`, `client_ca_file`, `client_ca` (inline
  PEM), `client_auth_type` (`NoClientCert`, `VerifyClientCertIfGiven`,
  `RequireAndVerifyClientCert`), `min_version`, `max_version`, `prefer_server_cipher_suites`;
  `http_server_config` `headers` (the five exporter-toolkit allows) and `http2: false`;
  `basic_auth_users` (bcrypt hashes); `rate_limit` (`interval`, `burst`).
* rejected: inline `cert` / `key` (Python's ssl loads a key pair from files only),
  `client_allowed_sans`, `cipher_suites` and `curve_preferences` (Go names with no clean OpenSSL
  mapping), client auth types that request a certificate without verifying it, `http2: true`
  (aiohttp serves HTTP/1.1).

Relative file names are resolved against the web config file's directory, as exporter-toolkit
does. Every problem is one line: `FILE: KEY: what is wrong and how to fix it`.
"""

from __future__ import annotations

import difflib
import re
import ssl
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from exporter.config.durations import Duration
from exporter.config.files import SettingsFileError, read_yaml_mapping
from exporter.logs import get_logger

BCRYPT_HASH = re.compile(r"^\$2[abxy]?\$\d\d\$[./A-Za-z0-9]{53}$")
log = get_logger(__name__)

HTPASSWD_HINT = "generate one with: htpasswd -nBC 10 \"\" | tr -d ':\\n'"


class WebConfigError(SettingsFileError):
    """Every problem found in a web config file, one line each, each naming the file and key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _empty_is_unset(value: object) -> object:
    """exporter-toolkit treats an empty string as "not set"; so do we."""
    return None if value == "" else value


OptionalPath = Annotated[Path | None, BeforeValidator(_empty_is_unset)]


class ClientAuthType(StrEnum):
    NO_CLIENT_CERT = "NoClientCert"
    VERIFY_CLIENT_CERT_IF_GIVEN = "VerifyClientCertIfGiven"
    REQUIRE_AND_VERIFY_CLIENT_CERT = "RequireAndVerifyClientCert"


# exporter-toolkit values that have no Python ssl equivalent: OpenSSL cannot ask for a client
# certificate and then accept it unverified.
_UNVERIFIED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")

TLS_VERSIONS: Mapping[str, ssl.TLSVersion] = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
TLSVersionName = Literal["TLS10", "TLS11", "TLS12", "TLS13"]

_UNSUPPORTED_TLS_KEYS: Mapping[str, str] = {
    "cert": "an inline certificate is not supported (Python's ssl loads it from a file); "
    "put the PEM in a file and use cert_file",
    "key": "an inline key is not supported (Python's ssl loads it from a file); "
    "put the PEM in a file only the exporter can read and use key_file",
    "client_allowed_sans": "not supported (Python's ssl has no certificate verify callback); "
    "issue client certificates from a dedicated CA and name it in client_ca_file",
    "cipher_suites": "not supported (Go cipher suite names do not map onto OpenSSL's); "
    "remove it to use OpenSSL's defaults, or set min_version: TLS13",
    "curve_preferences": "not supported (Python's ssl cannot set a curve preference list); "
    "remove it to use OpenSSL's defaults",
}


class TLSServerConfig(_Strict):
    cert_file: OptionalPath = None
    key_file: OptionalPath = None
    client_auth_type: ClientAuthType = ClientAuthType.NO_CLIENT_CERT
    client_ca_file: OptionalPath = None
    client_ca: str | None = Field(default=None, description="inline PEM bundle of client CAs")
    min_version: TLSVersionName = "TLS12"
    max_version: TLSVersionName = "TLS13"
    prefer_server_cipher_suites: bool = True
    # exporter-toolkit keys with no clean Python ssl equivalent: present so that an error names
    # them and says why, rather than calling them unknown; always None once validated.
    cert: None = None
    key: None = None
    client_allowed_sans: None = None
    cipher_suites: None = None
    curve_preferences: None = None

    @field_validator(*_UNSUPPORTED_TLS_KEYS, mode="before")
    @classmethod
    def _unsupported(cls, value: object, info: ValidationInfo) -> None:
        if value not in (None, "", []):
            raise ValueError(_UNSUPPORTED_TLS_KEYS[str(info.field_name)])

    @field_validator("client_auth_type", mode="before")
    @classmethod
    def _verifiable_client_auth(cls, value: object) -> object:
        if value in _UNVERIFIED_CLIENT_AUTH:
            raise ValueError(
                f"{value} is not supported (Python's ssl verifies every client certificate it "
                "asks for); use RequireAndVerifyClientCert with client_ca_file"
            )
        return "NoClientCert" if value == "" else value

    @field_validator("cert_file", "key_file", "client_ca_file")
    @classmethod
    def _relative_to_the_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        base = (info.context or {}).get("base_dir")
        if value is None or base is None or value.is_absolute():
            return value
        return Path(base) / value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.cert_file is None:
            raise ValueError("TLS needs cert_file (a PEM certificate chain)")
        if self.key_file is None:
            raise ValueError("TLS needs key_file (the PEM private key of cert_file)")
        if self.client_ca_file is not None and self.client_ca is not None:
            raise ValueError("give one of client_ca_file, client_ca, not both")
        has_ca = self.client_ca_file is not None or self.client_ca is not None
        verifies = self.client_auth_type is not ClientAuthType.NO_CLIENT_CERT
        if has_ca and not verifies:
            raise ValueError(
                "client CAs are set but client_auth_type is NoClientCert; "
                "set client_auth_type: RequireAndVerifyClientCert"
            )
        if verifies and not has_ca:
            raise ValueError(
                f"client_auth_type {self.client_auth_type} needs client_ca_file "
                "(the CA that issued the client certificates)"
            )
        if TLS_VERSIONS[self.min_version] > TLS_VERSIONS[self.max_version]:
            raise ValueError(
                f"min_version {self.min_version} is above max_version {self.max_version}"
            )
        return self


class Headers(_Strict):
    """The response headers exporter-toolkit lets a web config set; empty means unset."""

    content_security_policy: str = Field(default="", alias="Content-Security-Policy")
    x_frame_options: Literal["", "deny", "sameorigin"] = Field(default="", alias="X-Frame-Options")
    x_content_type_options: Literal["", "nosniff"] = Field(
        default="", alias="X-Content-Type-Options"
    )
    x_xss_protection: str = Field(default="", alias="X-XSS-Protection")
    strict_transport_security: str = Field(default="", alias="Strict-Transport-Security")

    def items(self) -> list[tuple[str, str]]:
        """(header, value) for every header that is set."""
        pairs = self.model_dump(by_alias=True).items()
        return [(name, value) for name, value in pairs if value]


class HTTPServerConfig(_Strict):
    http2: bool = False
    headers: Headers = Headers()

    @field_validator("http2")
    @classmethod
    def _no_http2(cls, value: bool) -> bool:
        if value:
            raise ValueError(
                "HTTP/2 is not supported (aiohttp serves HTTP/1.1); remove http2 or set it to false"
            )
        return value


class RateLimit(_Strict):
    interval: Duration = Field(description="one request per interval on average; 0 disables")
    burst: int = Field(ge=0, description="requests allowed at once")

    @model_validator(mode="after")
    def _burst_when_enabled(self) -> Self:
        if self.interval > 0 and self.burst < 1:
            raise ValueError("burst must be at least 1 when interval is set (0 would refuse all)")
        return self


class WebConfig(_Strict):
    tls_server_config: TLSServerConfig | None = None
    http_server_config: HTTPServerConfig = HTTPServerConfig()
    basic_auth_users: Mapping[str, SecretStr] = Field(default_factory=dict)
    rate_limit: RateLimit | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty_sections_are_unset(cls, data: Any) -> Any:
        # `tls_server_config:` with nothing under it is YAML null, or `{}`: no TLS, as in Go.
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None and v != {}}
        return data

    @field_validator("basic_auth_users")
    @classmethod
    def _bcrypt_hashes(cls, users: Mapping[str, SecretStr]) -> Mapping[str, SecretStr]:
        for name, hashed in users.items():
            if not name or ":" in name:
                raise ValueError(
                    f"user name {name!r} cannot be used with basic auth (empty or contains ':')"
                )
            if not BCRYPT_HASH.match(hashed.get_secret_value()):
                raise ValueError(f"the password of {name!r} is not a bcrypt hash; {HTPASSWD_HINT}")
            _sensible_cost(name, int(hashed.get_secret_value().split("$")[2]))
        return users


BCRYPT_COSTS = range(4, 17)
"""bcrypt itself takes 4..31; above 16 one uncached login costs seconds of CPU (about 70 ms at
10, doubling with each step), and logins are checked one at a time, so a slow hash is a way to
stall every scrape."""


def _sensible_cost(name: str, cost: int) -> None:
    if cost < 4 or cost > 31:
        raise ValueError(
            f"the password hash of {name!r} has bcrypt cost {cost}, which bcrypt does not "
            f"accept (4 to 31); {HTPASSWD_HINT}"
        )
    if cost not in BCRYPT_COSTS:
        raise ValueError(
            f"the password hash of {name!r} has bcrypt cost {cost}: each login would take "
            f"{0.07 * 2 ** (cost - 10):.0f}s or more of CPU; use a cost from "
            f"{BCRYPT_COSTS.start} to {BCRYPT_COSTS.stop - 1}; {HTPASSWD_HINT}"
        )


def build_ssl_context(tls: TLSServerConfig) -> ssl.SSLContext:
    """The server-side SSLContext. Raises ValueError (one line, naming the key) if a file is
    missing or the certificate and key do not load."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    context.maximum_version = TLS_VERSIONS[tls.max_version]
    if tls.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    if tls.cert_file is None or tls.key_file is None:
        raise ValueError("TLS needs cert_file and key_file")
    _readable("cert_file", tls.cert_file)
    _readable("key_file", tls.key_file)
    try:
        # The password callback stops OpenSSL prompting on the terminal for an encrypted key.
        context.load_cert_chain(tls.cert_file, tls.key_file, password=_no_password)
    except (ssl.SSLError, ValueError) as exc:
        raise ValueError(
            f"cert_file and key_file do not hold a matching PEM certificate and unencrypted "
            f"key ({_ssl_reason(exc)})"
        ) from None
    if tls.client_auth_type is not ClientAuthType.NO_CLIENT_CERT:
        context.verify_mode = (
            ssl.CERT_REQUIRED
            if tls.client_auth_type is ClientAuthType.REQUIRE_AND_VERIFY_CLIENT_CERT
            else ssl.CERT_OPTIONAL
        )
        key = "client_ca_file" if tls.client_ca_file is not None else "client_ca"
        try:
            if tls.client_ca_file is not None:
                _readable(key, tls.client_ca_file)
                context.load_verify_locations(cafile=tls.client_ca_file)
            else:
                context.load_verify_locations(cadata=tls.client_ca)
        except (ssl.SSLError, ValueError) as exc:
            if isinstance(exc, ValueError) and str(exc).startswith(key):
                raise
            raise ValueError(f"{key} holds no PEM certificate ({_ssl_reason(exc)})") from None
    return context


class ReloadingServerContext:
    """A server SSLContext that picks up rotated certificates without a restart, as
    exporter-toolkit does: every TLS handshake stats cert_file, key_file and client_ca_file
    (the ClientHello callback runs for every connection, SNI or not), and when they changed,
    the connection is served from a context rebuilt from the new files. A half-written rotation
    that does not load is logged and the previous context kept.

    Only the certificate chain and key are swapped per connection (OpenSSL's SSL_set_SSL_CTX);
    a changed client CA or TLS setting takes effect on restart.
    """

    def __init__(self, tls: TLSServerConfig) -> None:
        self._tls = tls
        self._stamp = self._files_stamp()
        self.context = build_ssl_context(tls)
        self.context.sni_callback = self._on_client_hello
        self._current = self.context
        self.reloads = 0

    def _files_stamp(self) -> tuple[tuple[int, int, int], ...]:
        paths = (self._tls.cert_file, self._tls.key_file, self._tls.client_ca_file)
        stamps = []
        for path in paths:
            if path is None:
                continue
            try:
                st = path.stat()
            except OSError:
                stamps.append((0, 0, 0))
            else:
                stamps.append((st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(stamps)

    def _on_client_hello(
        self, connection: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        stamp = self._files_stamp()
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._current = build_ssl_context(self._tls)
            except ValueError as exc:
                log.warning("certificate reload failed, keeping the previous one", error=str(exc))
            else:
                self.reloads += 1
                log.info("certificate reloaded", cert_file=str(self._tls.cert_file))
        if self._current is not self.context:
            connection.context = self._current


def _readable(key: str, path: Path) -> None:
    try:
        path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{key} {path}: {exc.strerror or 'cannot be read'}") from None


def _no_password() -> bytes:
    return b""


def _ssl_reason(exc: Exception) -> str:
    """OpenSSL's words without the noise: `[SSL] PEM lib (_ssl.c:3905)` -> `openssl: PEM lib`."""
    text = str(exc.args[-1]) if exc.args else str(exc)
    text = re.sub(r"^\[\w+\]\s*|\s*\(_ssl\.c:\d+\)$", "", text)
    return f"openssl: {text}"


def load_web_config(path: Path) -> WebConfig:
    """Read and validate a web config file, including that its certificates load.
    Raises WebConfigError listing every problem."""
    source = str(path)
    raw = read_yaml_mapping(path, kind="web config file", error=WebConfigError)
    try:
        config = WebConfig.model_validate(raw, context={"base_dir": path.parent})
    except ValidationError as exc:
        raise WebConfigError(_describe(exc, source)) from None
    if config.tls_server_config is not None:
        try:
            build_ssl_context(config.tls_server_config)
        except ValueError as exc:
            raise WebConfigError([f"{source}: tls_server_config: {exc}"]) from None
    return config


def _describe(exc: ValidationError, source: str) -> list[str]:
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = [str(part) for part in error["loc"]]
        if error["type"] == "extra_forbidden":
            key = loc.pop()
            known = _known_keys(loc)
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            msg = f"unknown key {key!r}" + (
                f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
            )
        elif error["type"] == "missing":
            msg = "required setting is missing"
        elif error["type"] == "literal_error" or error["type"] == "enum":
            expected = error.get("ctx", {}).get("expected", "")
            msg = f"must be one of {expected}"
        else:
            msg = str(error["msg"]).removeprefix("Value error, ")
        where = ".".join(loc) or "top level"
        lines.append(f"{source}: {where}: {msg}")
    return lines


def _known_keys(parent: list[str]) -> list[str]:
    """The keys a section accepts, as written in the file, without the rejected ones."""
    model: type[BaseModel] = WebConfig
    for part in parent:
        field = next(
            (f for name, f in model.model_fields.items() if (f.alias or name) == part), None
        )
        annotation = getattr(field, "annotation", None)
        inner = getattr(annotation, "__args__", (annotation,))
        sub = next((a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if sub is None:
            return []
        model = sub
    return [
        field.alias or name
        for name, field in model.model_fields.items()
        if name not in _UNSUPPORTED_TLS_KEYS
    ]
