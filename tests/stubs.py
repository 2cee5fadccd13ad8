"""Test doubles shared by the test layers: a misbehaving HTTP server on loopback, data: URIs."""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qsl


def data_uri(payload: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode()}"



# -- a local HTTP server ----------------------------------------------------------------


@dataclass
class Reply:
    """What the local server answers on a path."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0            # sleep before the status line
    drip_s: float = 0.0             # sleep between body bytes
    stall_s: float = 0.0            # sleep after the headers, before the body
    content_length: bool = True     # False: no Content-Length, the body ends when the connection closes
    header_drip_s: float = 0.0      # sleep between bytes of the status line and headers


class LocalServer:
    """http.server on 127.0.0.1 in a thread.

    `routes[path] = Reply(...)` (path without its query string; "POST " + path for a POST), or a
    function of the query parameters that returns one; `requests` records (path, lower-cased headers).
    """

    def __init__(self) -> None:
        self.routes: dict[str, Reply | Callable[[dict[str, str]], Reply]] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.bodies: list[Any] = []  # each POST's body, parsed when it is JSON
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                self.answer("")

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    server.bodies.append(json.loads(body))
                except ValueError:
                    server.bodies.append(body)
                self.answer("POST ")

            def do_PATCH(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.answer("PATCH ")

            def answer(self, method: str) -> None:
                path, _, query = self.path.partition("?")
                path = method + path
                server.requests.append((path, {k.lower(): v for k, v in self.headers.items()}))
                reply = server.routes.get(path, Reply(status=404, body=b"not found"))
                if callable(reply):
                    reply = reply(dict(parse_qsl(query)))
                time.sleep(reply.delay_s)
                try:
                    if reply.header_drip_s:
                        self.drip_headers(reply)
                        return
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    if reply.content_length:
                        self.send_header("Content-Length", str(len(reply.body)))
                    else:
                        self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.flush()
                    time.sleep(reply.stall_s)
                    if reply.drip_s:
                        for byte in reply.body:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(reply.drip_s)
                    else:
                        self.wfile.write(reply.body)
                except OSError:
                    pass  # the client gave up: that is what slow routes are for
                if not reply.content_length:
                    self.close_connection = True

            def drip_headers(self, reply: Reply) -> None:
                head = f"HTTP/1.1 {reply.status} OK\r\nContent-Length: {len(reply.body)}\r\n"
                head += "".join(f"{name}: {value}\r\n" for name, value in reply.headers.items())
                for byte in (head + "\r\n").encode() + reply.body:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(reply.header_drip_s)
                self.close_connection = True

            def log_message(self, *args) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

            def handle_error(self, request, client_address) -> None:
                pass  # a client that gave up (timeouts under test) is expected

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_port
        self.origin = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return self.origin + path

    def headers_for(self, path: str) -> list[dict[str, str]]:
        return [headers for p, headers in self.requests if p == path]

    def close(self) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._httpd.server_close()
