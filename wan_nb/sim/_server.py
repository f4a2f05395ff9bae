"""The HTTP layer: routing, bodies, auth, and the faults that need the socket.

Built on the standard library's ``ThreadingHTTPServer`` (daemon threads, one per
connection) rather than an async framework, because:

* fault injection needs full control of the socket: a "drop" closes the connection
  after the work is done and before any byte of the answer is sent;
* it adds no dependency;
* it runs in a background thread, so it embeds in a Jupyter kernel whose event loop
  is already running.

HTTP/1.1 keep-alive, ``Content-Length`` and ``Date`` on every answer (``omit_headers``
aside). Every answer is JSON except the image files. Open connections are tracked so that ``stop()`` really ends them.
"""

from __future__ import annotations

import contextlib
import re
import socket
import socketserver
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from .._version import __version__
from ._api import Api, Response, error, invalid_one, rate_limited, server_error
from ._faults import Decision

MAX_BODY = 64 * 2**20  # read (and so keep the connection usable) up to this; close above it
IDLE_TIMEOUT = 120  # seconds a keep-alive connection may sit idle

# (methods, path pattern, endpoint name used by the ledger and the faults, needs auth)
ROUTES = (
    (("POST",), re.compile(r"^/v1/tasks$"), "submit", True),
    (("GET", "HEAD"), re.compile(r"^/v1/tasks/([^/]+)$"), "get", True),
    (("POST",), re.compile(r"^/v1/tasks/([^/]+)/cancel$"), "cancel", True),
    (("POST",), re.compile(r"^/sim/uploads$"), "upload", True),
    (("GET", "HEAD"), re.compile(r"^/sim/files/(.+)$"), "file", False),
    (("GET", "HEAD"), re.compile(r"^/sim/ledger$"), "ledger", False),
    (("GET", "HEAD", "POST"), re.compile(r"^/sim/faults$"), "faults", False),
    (("GET", "HEAD"), re.compile(r"^(?:/|/sim|/v1)$"), "info", False),
)
ENDPOINTS = {route[2] for route in ROUTES}
FAULTABLE = ("submit", "get", "cancel", "upload", "file")


class BadBody(ValueError):
    """A request body that cannot be read (a 400, and the connection is closed)."""


class SimHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], api: Api) -> None:
        self.api = api
        self.root_url = ""
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(): a DNS lookup. Not here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class SimHTTPServer6(SimHTTPServer):
    address_family = socket.AF_INET6


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"wan-nb-sim/{__version__}"
    sys_version = ""
    timeout = IDLE_TIMEOUT
    server: SimHTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this, Nagle's algorithm and
        # delayed ACKs add ~40 ms to every keep-alive answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    # -- plumbing ----------------------------------------------------------------------------
    def _read_body(self) -> bytes | None:
        """The request body; None when it is too large or its length unreadable (the
        connection is then closed)."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks, total = [], 0
            while True:
                try:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                except ValueError:  # not a hex chunk size: the rest of the stream is unreadable
                    self.close_connection = True
                    raise BadBody("a chunk size is not a hexadecimal number") from None
                if size < 0:
                    self.close_connection = True
                    raise BadBody("a chunk size is negative")
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY:
                    self.close_connection = True
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = MAX_BODY + 1  # unreadable: answer 400 and close, like a body too large
        if length > MAX_BODY:
            self.close_connection = True
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, resp: Response) -> None:
        body = resp.body()
        faults = self.server.api.faults
        # send_response() without its fixed Date, so that omit_headers can leave it out
        self.send_response_only(resp.status)
        self.send_header("Server", self.version_string())
        if not faults.omitted("Date"):
            self.send_header("Date", self.date_time_string())  # this server's clock (time.time()), whole seconds
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in resp.headers.items():
            if not faults.omitted(name):
                self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.server.api.ledger.count("responses", str(resp.status))

    def _drop(self) -> None:
        """Close the connection without a single byte of answer."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _route(self, method: str, path: str) -> tuple[str, bool, tuple[str, ...]]:
        allowed = False
        for methods, pattern, endpoint, auth in ROUTES:
            m = pattern.match(path)
            if m:
                if method in methods:
                    return endpoint, auth, m.groups()
                allowed = True
        return ("method_not_allowed" if allowed else "not_found"), False, ()

    # -- dispatch ------------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        api = self.server.api
        try:
            path = urlsplit(self.path).path
            path = path.rstrip("/") or "/"
            endpoint, needs_auth, args = self._route(method, path)
            api.ledger.count("requests", endpoint if endpoint in ENDPOINTS else "other")
            try:
                raw = self._read_body()
            except BadBody as exc:
                self._send(invalid_one("body", "chunked", f"malformed chunked body: {exc}"))
                return
            if raw is None:
                where = "image_urls" if endpoint == "upload" else "body"
                self._send(invalid_one(where, "max_size", f"request body is over {MAX_BODY // 2**20} MB"))
                return
            if endpoint == "upload" and api.urls_only:
                self._send(error(404, "not_found", f"no endpoint {path}: this simulator is urls_only, like the "
                                                   "hosted API; send inputs as URLs"))
                return
            if endpoint == "not_found":
                self._send(error(404, "not_found", f"no endpoint {path}"))
                return
            if endpoint == "method_not_allowed":
                self._send(error(405, "method_not_allowed", f"{method} is not allowed on {path}"))
                return
            if needs_auth:
                denied = api.authorize(self.headers.get("Authorization"))
                if denied is not None:
                    self._send(denied)
                    return
            decision = api.faults.for_request(endpoint) if endpoint in FAULTABLE else Decision()
            if decision.status is not None:
                time.sleep(decision.delay)
                self._send(rate_limited(decision.rate) if decision.rate else server_error(decision.status))
                return
            resp = self._handle(endpoint, raw, args)
            if decision.delay:
                time.sleep(decision.delay)
            if decision.drop:
                self._drop()
                return
            if decision.corrupt and resp.status == 200 and isinstance(resp.payload, (bytes, bytearray)):
                resp.payload = bytes(resp.payload[: len(resp.payload) // 2])  # truncated, Content-Length to match
            self._send(resp)
        except (TimeoutError, ConnectionError):
            self.close_connection = True
        except Exception:  # noqa: BLE001 - a handler bug is printed and the connection closed; the server lives on
            traceback.print_exc(file=sys.stderr)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._send(error(500, "internal_error", "simulator bug: see the server's stderr"))

    def _handle(self, endpoint: str, raw: bytes, args: tuple[str, ...]) -> Response:
        api = self.server.api
        if endpoint == "submit":
            return api.submit(self.headers, raw)
        if endpoint == "get":
            return api.get(args[0])
        if endpoint == "cancel":
            return api.cancel(args[0])
        if endpoint == "upload":
            return api.upload(raw, self.server.root_url)
        if endpoint == "file":
            return api.file(args[0])
        if endpoint == "ledger":
            return api.ledger_view()
        if endpoint == "faults":
            return api.set_faults(raw) if self.command == "POST" else api.faults_view()
        root = self.server.root_url
        endpoints = ["POST /v1/tasks", "GET /v1/tasks/{id}", "POST /v1/tasks/{id}/cancel",
                     "POST /sim/uploads", "GET /sim/files/...", "GET /sim/ledger", "GET|POST /sim/faults"]
        if api.urls_only:
            endpoints.remove("POST /sim/uploads")
        return Response(200, {"simulator": "wan_nb", "base_url": root + "/v1", "urls_only": api.urls_only,
                              "endpoints": endpoints})
