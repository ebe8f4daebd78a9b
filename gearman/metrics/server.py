"""MetricsServer: ``/metrics`` and ``/healthz`` over HTTP on a background thread."""
from __future__ import annotations

import http.server
import logging
import socket
import threading
from typing import Any, Callable, Optional, Tuple, Union

from gearman.metrics.core import Registry
from gearman.metrics.exposition import CONTENT_TYPE

log = logging.getLogger(__name__)

#: ``health()`` returns (ok, text): 200 with the text when ok, else 503.
HealthCheck = Callable[[], Tuple[bool, str]]

#: Seconds a client may take to send its request before its thread gives up on it.
REQUEST_TIMEOUT = 10.0


def parse_listen_address(text: str) -> Tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9418`` for IPv6; an empty HOST means every interface)
    -> (host, port).  Port 0 lets the kernel choose."""
    if not isinstance(text, str):
        raise TypeError(f"listen address must be a 'HOST:PORT' str, got {type(text).__name__}")
    host, sep, port_text = text.strip().rpartition(":")
    if not sep:
        raise ValueError(f"listen address {text!r} needs a port: HOST:PORT (e.g. "
                         "127.0.0.1:9418, :9418 for every interface, [::1]:9418)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"listen address {text!r}: write an IPv6 host in brackets, "
                         "e.g. [::1]:9418")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"listen address {text!r}: port {port_text!r} is not a number") \
            from None
    if not 0 <= port <= 65535:
        raise ValueError(f"listen address {text!r}: port {port} is not in 0..65535")
    return host, port


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    registry: Registry
    health: Optional[HealthCheck]


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    timeout = REQUEST_TIMEOUT
    server_version = "gearman-metrics"

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _answer(self, send_body: bool) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            try:
                status, body, ctype = 200, self.server.registry.render(), CONTENT_TYPE
            except Exception as exc:  # a collector failed: say so, not half a page
                log.exception("rendering /metrics failed")
                status, body, ctype = 500, f"collecting metrics failed: {exc!r}\n", _TEXT
        elif path == "/healthz":
            status, body, ctype = self._health()
        elif path == "/":
            status, ctype = 200, "text/html; charset=utf-8"
            body = ('<html><body><a href="/metrics">/metrics</a> '
                    '<a href="/healthz">/healthz</a></body></html>\n')
        else:
            status, body, ctype = 404, "not found: try /metrics or /healthz\n", _TEXT
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if send_body:
            self.wfile.write(data)

    def _health(self) -> Tuple[int, str, str]:
        check = self.server.health
        if check is None:
            return 200, "ok\n", _TEXT
        try:
            ok, text = check()
        except Exception as exc:
            log.exception("health check failed")
            return 503, f"health check raised {exc!r}\n", _TEXT
        return (200 if ok else 503), (text if text.endswith("\n") else text + "\n"), _TEXT

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s: " + format, self.address_string(), *args)


_TEXT = "text/plain; charset=utf-8"


class MetricsServer:
    """Serves ``registry`` at ``/metrics`` and ``health`` at ``/healthz`` on ``listen``
    (``'HOST:PORT'`` or ``(host, port)``; port 0 picks a free one, see :attr:`port`).

    It starts serving on a daemon thread at once; :meth:`close` stops it and
    frees the port.  Also a context manager.
    """

    def __init__(self, listen: Union[str, Tuple[str, int]], registry: Registry,
                 health: Optional[HealthCheck] = None) -> None:
        if not isinstance(registry, Registry):
            raise TypeError(f"registry must be a gearman.metrics.Registry, got "
                            f"{type(registry).__name__}")
        if health is not None and not callable(health):
            raise TypeError(f"health must be callable, got {type(health).__name__}")
        host, port = parse_listen_address(listen) if isinstance(listen, str) else listen
        server_class = _Server6 if ":" in host else _Server
        try:
            self._server = server_class((host, port), _Handler)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot listen on {host or '*'}:{port} for metrics: "
                          f"{exc.strerror}") from None
        self._server.registry, self._server.health = registry, health
        self.host: str = host
        self.port: int = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.2},
                                        name=f"gearman-metrics:{self.port}", daemon=True)
        self._thread.start()
        self._closed = False

    @property
    def url(self) -> str:
        """``http://host:port`` (the loopback address when listening everywhere)."""
        host = self.host or "127.0.0.1"
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def close(self, timeout: float = 5.0) -> None:
        """Stop serving and free the port; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

