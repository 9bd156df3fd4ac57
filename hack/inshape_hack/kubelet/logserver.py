"""The kubelet's log endpoint, so `kubectl logs` works through kube-apiserver.

kube-apiserver calls https://<node InternalIP>:<kubelet port>/containerLogs/<ns>/<pod>/<c>
with its kubelet client certificate; only clients with a certificate from the cluster CA
are served.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass(frozen=True)
class LogSource:
    path: Path
    running: Callable[[], bool]  # whether more output may still come (for follow)


# (namespace, pod, container, previous) -> where its log is, or None if unknown
Finder = Callable[[str, str, str, bool], LogSource | None]


@dataclass(frozen=True)
class LogQuery:
    follow: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None
    previous: bool = False


def parse_query(query: str) -> LogQuery:
    values = {k: v[-1] for k, v in parse_qs(query).items()}

    def number(key: str) -> int | None:
        return int(values[key]) if key in values else None

    return LogQuery(
        follow=values.get("follow") == "true",
        tail_lines=number("tailLines"),
        limit_bytes=number("limitBytes"),
        previous=values.get("previous") == "true",
    )


def tail_lines(data: bytes, count: int) -> bytes:
    """The last `count` lines of a log (a trailing partial line counts as one)."""
    if count <= 0:
        return b""
    lines = data.splitlines(keepends=True)
    return b"".join(lines[-count:])


class _Handler(BaseHTTPRequestHandler):
    finder: Finder

    def log_message(self, format: str, *args: object) -> None:
        pass  # the apiserver logs requests; ours would only be noise

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        if len(parts) != 4 or parts[0] != "containerLogs":
            self.send_error(404, "only /containerLogs/{namespace}/{pod}/{container} is served")
            return
        query = parse_query(url.query)
        source = self.finder(parts[1], parts[2], parts[3], query.previous)
        if source is None or not source.path.exists():
            self.send_error(404, f"no logs for {'/'.join(parts[1:])}")
            return
        data = source.path.read_bytes()
        offset = len(data)
        if query.tail_lines is not None:
            data = tail_lines(data, query.tail_lines)
        if query.limit_bytes is not None:
            data = data[: query.limit_bytes]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(data)
        if query.follow and query.limit_bytes is None:
            self._follow(source, offset)

    def _follow(self, source: LogSource, offset: int) -> None:
        """Stream what is appended until the container stops or the client goes away."""
        try:
            while True:
                alive = source.running()
                with source.path.open("rb") as f:
                    f.seek(offset)
                    chunk = f.read()
                if chunk:
                    offset += len(chunk)
                    self.wfile.write(chunk)
                    self.wfile.flush()
                elif not alive:
                    return
                else:
                    time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError, FileNotFoundError):
            return


def serve_logs(
    host: str, port: int, *, cert: Path, key: Path, client_ca: Path, finder: Finder
) -> ThreadingHTTPServer:
    """Start the TLS log server in a daemon thread; the caller shuts it down."""
    handler = type("LogHandler", (_Handler,), {"finder": staticmethod(finder)})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    context.load_verify_locations(str(client_ca))
    context.verify_mode = ssl.CERT_REQUIRED
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, name="kubelet-logs", daemon=True).start()
    return server
