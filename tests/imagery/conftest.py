"""Fixtures of the imagery tests: a loopback HTTP tile server speaking plain HTTP/1.1, as tile servers do."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class TileServer:
    """Serves ``/{z}/{x}/{y}.png`` from ``tiles``; misbehaves on request, counts every request."""

    url: str = ""
    tiles: dict[str, bytes] = field(default_factory=dict)  # "/z/x/y.png" -> body
    fail_first: dict[str, int] = field(default_factory=dict)  # path -> how many 500s before serving
    throttle_first: dict[str, int] = field(default_factory=dict)  # path -> how many 429s (Retry-After: 0)
    stall: set[str] = field(default_factory=set)  # paths whose response never comes (until teardown)
    forbidden: bool = False
    requests: list[tuple[str, str]] = field(default_factory=list)  # (path, User-Agent)
    release: threading.Event = field(default_factory=threading.Event)

    @property
    def template(self) -> str:
        return self.url + "/{z}/{x}/{y}.png"

    def count(self) -> Counter[str]:
        return Counter(path for path, _ in self.requests)


def _handler(server_state: TileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
            pass

        def _send(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Type", "image/png" if code == 200 else "text/plain")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.split("?")[0]
            server_state.requests.append((path, self.headers.get("User-Agent", "")))
            if server_state.forbidden:
                return self._send(403, b"forbidden")
            if path in server_state.stall:
                server_state.release.wait(30)
                return None
            if server_state.fail_first.get(path, 0) > 0:
                server_state.fail_first[path] -= 1
                return self._send(500, b"try again")
            if server_state.throttle_first.get(path, 0) > 0:
                server_state.throttle_first[path] -= 1
                return self._send(429, b"slow down", {"Retry-After": "0"})
            body = server_state.tiles.get(path)
            if body is None:
                return self._send(404, b"no such tile")
            return self._send(200, body)

    return Handler


@pytest.fixture
def tile_server() -> Iterator[TileServer]:
    """A real HTTP server on 127.0.0.1 (ephemeral port) in a thread."""
    state = TileServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    state.release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)
