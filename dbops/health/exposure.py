"""Who may reach the health endpoints: the bind address, the bearer token and TLS.

Loopback is the default and needs nothing. Any other address needs a bearer token
(DBOPS_HEALTH_TOKEN) for everything but a minimal /ready, or an explicit `insecure`. A token,
once set, is required on loopback too. TLS is optional: a certificate and its key.
"""

from __future__ import annotations

import hmac
import ipaddress
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from dbops.config.secrets import HEALTH_TOKEN
from dbops.errors import UsageError

TOKEN_VARIABLE = HEALTH_TOKEN
TOKEN_LENGTH = (16, 512)
"""Shortest and longest token accepted (e.g. `openssl rand -hex 32` gives 64 characters)."""


@dataclass(frozen=True)
class Exposure:
    """Where the endpoints listen and what a request must show. Its repr never shows the token."""

    host: str
    port: int
    token: str | None = field(default=None, repr=False)
    insecure: bool = False
    tls: ssl.SSLContext | None = field(default=None, repr=False, compare=False)

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    @property
    def open_to_all(self) -> bool:
        """Served beyond this host with no token: the operator chose it with `insecure`."""
        return self.token is None and not is_loopback(self.host)

    def authorized(self, header: str | None) -> bool:
        """Whether an Authorization header carries the token (always, when none is set);
        compared in constant time."""
        if self.token is None:
            return True
        scheme, _, given = (header or "").strip().partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), self.token.encode())


def parse_address(text: str) -> tuple[str, int]:
    """`127.0.0.1:9187`, `[::1]:9187` or `:9187` (127.0.0.1) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or len(port) > 5 or not 0 <= int(port) <= 65535:
        raise UsageError(f"--serve {text!r}: use HOST:PORT, e.g. 127.0.0.1:9187")
    return host.strip("[]") or "127.0.0.1", int(port)


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and `localhost`; a name that is not an address counts as the network."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure(address: str, *, token: str | None = None, insecure: bool = False,
             tls_cert: Path | None = None, tls_key: Path | None = None) -> Exposure:
    """Check what `dbops health --serve` was given; every refusal is a one-line DbopsError."""
    host, port = parse_address(address)
    token = token or None
    if token is not None:
        shortest, longest = TOKEN_LENGTH
        if not shortest <= len(token) <= longest or not all("!" <= c <= "~" for c in token):
            raise UsageError(f"{TOKEN_VARIABLE} must be {shortest} to {longest} printable "
                             "characters without spaces (e.g. the output of `openssl rand -hex 32`)")
    if token is None and not insecure and not is_loopback(host):
        raise UsageError(f"--serve {address}: {host} is not a loopback address, so the endpoints "
                         f"need a bearer token: set {TOKEN_VARIABLE} (or pass --insecure to serve "
                         "them to anyone who can reach the port)")
    return Exposure(host, port, token, insecure, _tls(tls_cert, tls_key))


def _tls(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise UsageError("--tls-cert and --tls-key go together: give both or neither")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except FileNotFoundError as exc:
        raise UsageError(f"--tls-cert/--tls-key: no such file: {exc.filename}") from None
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
        raise UsageError(f"--tls-cert {cert} / --tls-key {key}: cannot load them ({reason})") from None
    return context
