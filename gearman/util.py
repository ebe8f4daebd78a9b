"""Small pure helpers: host parsing, deadlines, backoff, text/bytes coercion."""
from __future__ import annotations

import random
import time
from typing import Any, Dict, List, Optional, Tuple, Union

from gearman.constants import DEFAULT_GEARMAN_PORT


def format_address(host: str, port: int) -> str:
    """``host:port``, with IPv6 literals in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def handle_text(job_handle: bytes) -> str:
    """A job handle from the wire as the ``str`` kept in ``job.handle`` (a trailing
    NUL, as on gearmand's converted WORK_FAIL, is not part of it)."""
    return job_handle.rstrip(b"\0").decode("utf-8", "surrogateescape")

HostSpec = Union[str, Tuple[str, int], Dict[str, Any]]

_TLS_KEYS = {"host", "port", "keyfile", "certfile", "ca_certs"}


class HostAddress:
    """A parsed ``host_list`` entry: host, port and the optional TLS files."""

    __slots__ = ("host", "port", "keyfile", "certfile", "ca_certs", "tls")

    def __init__(self, host: str, port: int = DEFAULT_GEARMAN_PORT, keyfile: Optional[str] = None,
                 certfile: Optional[str] = None, ca_certs: Optional[str] = None,
                 tls: bool = False) -> None:
        self.host, self.port = host, port
        self.keyfile, self.certfile, self.ca_certs, self.tls = keyfile, certfile, ca_certs, tls

    @property
    def address(self) -> str:
        """``host:port``, with IPv6 literals in brackets."""
        return format_address(self.host, self.port)

    def __repr__(self) -> str:
        return f"HostAddress({self.address!r}{', tls' if self.tls else ''})"


def _port(value: Any, entry: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"host_list entry {entry!r}: port must be an integer")
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"host_list entry {entry!r}: port {value!r} is not a number") from None
    if not 0 < port < 65536:
        raise ValueError(f"host_list entry {entry!r}: port {port} is out of range 1-65535")
    return port


def _host(value: Any, entry: Any) -> str:
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        raise ValueError(f"host_list entry {entry!r}: host must be a non-empty name "
                         "without spaces")
    try:
        value.encode("idna")
    except UnicodeError as exc:
        raise ValueError(f"host_list entry {entry!r}: {value!r} is not a valid host name "
                         f"({exc})") from None
    return value


def parse_host(entry: HostSpec) -> HostAddress:
    """Parse one ``host_list`` entry; a malformed one raises ``ValueError``.

    Accepts ``'host:port'``, ``'host'`` (port 4730), ``('host', port)``,
    ``'[::1]:4730'`` and ``{'host', 'port', 'keyfile', 'certfile', 'ca_certs'}``
    (TLS, never falling back to plain TCP).
    """
    if isinstance(entry, HostAddress):
        return entry
    if isinstance(entry, dict):
        unknown = set(entry) - _TLS_KEYS
        if unknown:
            raise ValueError(f"host_list entry {entry!r}: unknown keys {sorted(unknown)}")
        if "host" not in entry:
            raise ValueError(f"host_list entry {entry!r}: 'host' is required")
        port = _port(entry.get("port") or DEFAULT_GEARMAN_PORT, entry)
        return HostAddress(_host(entry["host"], entry), port, entry.get("keyfile"),
                           entry.get("certfile"), entry.get("ca_certs"), tls=True)
    if isinstance(entry, (tuple, list)):
        if len(entry) != 2:
            raise ValueError(f"host_list entry {entry!r}: expected (host, port)")
        return HostAddress(_host(entry[0], entry), _port(entry[1], entry))
    if isinstance(entry, bytes):
        entry = entry.decode("utf-8")
    if not isinstance(entry, str):
        raise ValueError(f"host_list entry {entry!r}: expected 'host:port', (host, port) "
                         f"or a dict, got {type(entry).__name__}")
    text = entry.strip()
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise ValueError(f"host_list entry {entry!r}: unclosed '[' in IPv6 address")
        host, rest = text[1:close], text[close + 1:]
        if rest and not rest.startswith(":"):
            raise ValueError(f"host_list entry {entry!r}: expected ':port' after ']'")
        return HostAddress(_host(host, entry), _port(rest[1:], entry) if rest else
                           DEFAULT_GEARMAN_PORT)
    if text.count(":") > 1:  # a bare IPv6 literal
        return HostAddress(_host(text, entry))
    host, sep, port_text = text.partition(":")
    return HostAddress(_host(host, entry),
                       _port(port_text, entry) if sep else DEFAULT_GEARMAN_PORT)


def parse_host_list(host_list: Any) -> List[HostAddress]:
    """Parse a whole ``host_list``; a single string is taken as one host."""
    if host_list is None:
        return []
    if isinstance(host_list, (str, bytes, dict, HostAddress)):
        host_list = [host_list]
    elif isinstance(host_list, tuple) and len(host_list) == 2 and isinstance(host_list[1], int):
        host_list = [host_list]
    if not isinstance(host_list, (list, tuple)):
        raise TypeError(f"host_list must be a list of hosts, got {type(host_list).__name__}")
    return [parse_host(entry) for entry in host_list]


class Deadline:
    """A point on the monotonic clock; ``None`` seconds means never."""

    __slots__ = ("expires",)

    def __init__(self, seconds: Optional[float]) -> None:
        if seconds is not None and seconds < 0:
            raise ValueError(f"poll_timeout must be None or >= 0, got {seconds!r}")
        self.expires = None if seconds is None else time.monotonic() + seconds

    def remaining(self) -> Optional[float]:
        """Seconds left (never negative), or ``None`` for no deadline."""
        if self.expires is None:
            return None
        return max(0.0, self.expires - time.monotonic())

    def expired(self) -> bool:
        return self.expires is not None and time.monotonic() >= self.expires


class Backoff:
    """Capped exponential backoff with full jitter: attempt n waits up to base * 2**n."""

    def __init__(self, base: float = 0.1, cap: float = 10.0,
                 rng: Optional[random.Random] = None) -> None:
        self.base, self.cap = base, cap
        self._rng = rng or random.Random()

    def compute(self, failures: int) -> float:
        if failures <= 0:
            return 0.0
        ceiling = min(self.cap, self.base * (2 ** min(failures - 1, 30)))
        return self._rng.uniform(ceiling / 2, ceiling)


def to_bytes(value: Any, name: str) -> bytes:
    """``str`` (UTF-8) or bytes-like as bytes; anything else is a ``TypeError`` naming ``name``."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")  # undoes to_text() exactly
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{name} must be str or bytes, got {type(value).__name__}")


def to_text(value: Union[str, bytes]) -> str:
    """Bytes from the wire as ``str``; invalid UTF-8 is kept via surrogateescape."""
    if isinstance(value, str):
        return value
    return value.decode("utf-8", "surrogateescape")


def check_name(value: Any, name: str, allow_empty: bool = False) -> bytes:
    """A task name or similar: str/bytes, no NUL, non-empty unless allowed."""
    data = to_bytes(value, name)
    if b"\0" in data:
        raise ValueError(f"{name} {value!r} must not contain a NUL byte")
    if not data and not allow_empty:
        raise ValueError(f"{name} must not be empty")
    return data
