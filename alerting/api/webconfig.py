"""``ALERTING_WEB_CONFIG``: TLS and basic authentication for the worker's HTTP endpoints, in the web
configuration format of Prometheus and Alertmanager (``--web.config.file``), so one file serves both::

    tls_server_config:
      cert_file: server.crt        # paths are relative to this file
      key_file: server.key
      client_ca_file: clients.crt  # with client_auth_type: RequireAndVerifyClientCert
      min_version: TLS12
    http_server_config:
      headers: {Strict-Transport-Security: max-age=31536000}
    basic_auth_users:
      alice: $2y$10$...            # a bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\\n')

Every problem is a :class:`~alerting.errors.ConfigError` at ``file:line:col``.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt

from alerting.config.yamlfile import Mapping as YamlMapping
from alerting.config.yamlfile import check_fields, expect_mapping, load_file, type_name
from alerting.errors import ConfigError, Position

TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# Go's client_auth_type names; the two that ask for a certificate without verifying it cannot be
# had from Python's ssl module, which verifies every certificate it asks for.
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
UNVERIFIED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert")
TLS_FIELDS = (
    "cert_file",
    "key_file",
    "client_ca_file",
    "client_auth_type",
    "min_version",
    "max_version",
    "prefer_server_cipher_suites",
)
# Fields of the format this server cannot honour: refused by name rather than silently ignored.
UNSUPPORTED_TLS_FIELDS = (
    "cert",
    "key",
    "client_ca",
    "client_allowed_sans",
    "cipher_suites",
    "curve_preferences",
)


@dataclass(frozen=True)
class TLSServerConfig:
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    client_auth: ssl.VerifyMode = ssl.CERT_NONE
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2  # the format's default
    max_version: ssl.TLSVersion | None = None

    def context(self) -> ssl.SSLContext:
        """The server's SSL context, read from the files now."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = self.min_version
        if self.max_version is not None:
            ctx.maximum_version = self.max_version
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
        ctx.load_cert_chain(self.cert_file, self.key_file)
        ctx.verify_mode = self.client_auth
        if self.client_ca_file is not None:
            ctx.load_verify_locations(self.client_ca_file)
        return ctx


@dataclass(frozen=True)
class WebConfig:
    """A parsed web configuration: TLS (None: plain HTTP), extra response headers, and users."""

    path: str
    tls: TLSServerConfig | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    users: Mapping[str, bytes] = field(default_factory=dict)  # user -> bcrypt hash

    @property
    def authenticates(self) -> bool:
        """Whether every request has to prove who it is (a password, or a verified certificate)."""
        return bool(self.users) or (self.tls is not None and self.tls.client_auth == ssl.CERT_REQUIRED)

    def ssl_context(self) -> ssl.SSLContext | None:
        return self.tls.context() if self.tls is not None else None


def _string(doc: YamlMapping, key: str, what: str) -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{what}.{key} must be a string, got {type_name(value)}", doc.at(key))
    return value


def _file(doc: YamlMapping, key: str, base: Path) -> Path | None:
    text = _string(doc, key, "tls_server_config")
    if not text:
        return None
    path = base / text
    if not path.is_file():
        raise ConfigError(f"tls_server_config.{key}: cannot read {path}: no such file", doc.at(key))
    return path


def _version(doc: YamlMapping, key: str) -> ssl.TLSVersion | None:
    text = _string(doc, key, "tls_server_config")
    if text is None:
        return None
    if text not in TLS_VERSIONS:
        choices = ", ".join(TLS_VERSIONS)
        raise ConfigError(
            f'tls_server_config.{key}: unknown TLS version "{text}" (one of {choices})', doc.at(key)
        )
    return TLS_VERSIONS[text]


def _tls(doc: YamlMapping, base: Path) -> TLSServerConfig | None:
    for key in UNSUPPORTED_TLS_FIELDS:
        if key in doc:
            raise ConfigError(
                f"tls_server_config.{key} is not supported by the worker; remove it", doc.key_pos[key]
            )
    check_fields(doc, TLS_FIELDS, "tls_server_config", ConfigError)
    cert, key_path = _file(doc, "cert_file", base), _file(doc, "key_file", base)
    client_ca = _file(doc, "client_ca_file", base)
    auth_name = _string(doc, "client_auth_type", "tls_server_config") or ""
    if auth_name in UNVERIFIED_CLIENT_AUTH:
        raise ConfigError(
            f"tls_server_config.client_auth_type: {auth_name} is not supported (client certificates are "
            "always verified here): use VerifyClientCertIfGiven or RequireAndVerifyClientCert",
            doc.at("client_auth_type"),
        )
    if auth_name and auth_name not in CLIENT_AUTH:
        raise ConfigError(
            f'tls_server_config.client_auth_type: unknown "{auth_name}" (one of {", ".join(CLIENT_AUTH)})',
            doc.at("client_auth_type"),
        )
    auth = CLIENT_AUTH.get(auth_name, ssl.CERT_NONE)
    if cert is None and key_path is None and client_ca is None and not auth_name:
        return None
    if cert is None or key_path is None:
        missing = "cert_file" if cert is None else "key_file"
        raise ConfigError(f"tls_server_config: {missing} is required to serve TLS", doc.pos)
    if auth != ssl.CERT_NONE and client_ca is None:
        raise ConfigError(
            f"tls_server_config: client_auth_type {auth_name} needs client_ca_file to verify with",
            doc.at("client_auth_type"),
        )
    if client_ca is not None and auth == ssl.CERT_NONE:
        raise ConfigError(
            "tls_server_config: client_ca_file is set but client_auth_type is not: set it to "
            "VerifyClientCertIfGiven or RequireAndVerifyClientCert",
            doc.at("client_ca_file"),
        )
    tls = TLSServerConfig(
        cert,
        key_path,
        client_ca,
        auth,
        _version(doc, "min_version") or ssl.TLSVersion.TLSv1_2,
        _version(doc, "max_version"),
    )
    try:
        tls.context()
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"tls_server_config: cannot load the certificate and key: {exc}", doc.at("cert_file")
        ) from None
    return tls


def _users(doc: YamlMapping) -> dict[str, bytes]:
    users: dict[str, bytes] = {}
    for user, hashed in doc.items():
        where = doc.at(user)
        if not isinstance(hashed, str):
            raise ConfigError(
                f"basic_auth_users.{user} must be a bcrypt hash, got {type_name(hashed)}", where
            )
        try:
            bcrypt.checkpw(b"", hashed.encode())  # a malformed hash raises; this one only checks its form
        except ValueError:
            raise ConfigError(
                f'basic_auth_users.{user}: not a bcrypt hash (make one with htpasswd -nBC 10 "" or '
                "python -c 'import bcrypt; print(bcrypt.hashpw(b\"secret\", bcrypt.gensalt()).decode())')",
                where,
            ) from None
        users[str(user)] = hashed.encode()
    return users


def load_web_config(path: str | Path) -> WebConfig:
    """Parse and check the web configuration at ``path``; raises :class:`ConfigError`."""
    file = str(path)
    doc: Any = load_file(path, ConfigError)
    if doc is None:
        return WebConfig(file)
    doc = expect_mapping(doc, Position(file, 1, 1), "the web configuration", ConfigError)
    check_fields(
        doc,
        ("tls_server_config", "http_server_config", "basic_auth_users"),
        "the web configuration",
        ConfigError,
    )
    base = Path(path).parent
    tls = None
    if doc.get("tls_server_config") is not None:
        tls = _tls(
            expect_mapping(
                doc["tls_server_config"], doc.at("tls_server_config"), "tls_server_config", ConfigError
            ),
            base,
        )
    headers: dict[str, str] = {}
    if doc.get("http_server_config") is not None:
        server = expect_mapping(
            doc["http_server_config"], doc.at("http_server_config"), "http_server_config", ConfigError
        )
        check_fields(server, ("http2", "headers"), "http_server_config", ConfigError)
        if server.get("headers") is not None:
            raw = expect_mapping(
                server["headers"], server.at("headers"), "http_server_config.headers", ConfigError
            )
            for name, value in raw.items():
                if not isinstance(value, str):
                    raise ConfigError(f"http_server_config.headers.{name} must be a string", raw.at(name))
                headers[str(name)] = value
    users: dict[str, bytes] = {}
    if doc.get("basic_auth_users") is not None:
        users = _users(
            expect_mapping(
                doc["basic_auth_users"], doc.at("basic_auth_users"), "basic_auth_users", ConfigError
            )
        )
    return WebConfig(file, tls, headers, users)
