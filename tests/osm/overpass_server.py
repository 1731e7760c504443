"""A loopback Overpass API server answering from real OSM data (converted by data/generate_overpass.py).

It speaks the protocol overpy relies on: ``POST /api/interpreter`` with the query as the raw body or as a
``data=`` form field, ``200`` with the exact Content-Type ``application/json``, ``429`` / ``504`` with HTML
bodies, ``200`` with a ``remark`` for runtime errors. It evaluates the statements the client sends — ``nwr``
with tag filters in a bbox, ``is_in(lat,lon)`` and ``wr(pivot.…)`` with tag filters — against the elements the
way Overpass does (a way is in a bbox when one of its segments is; areas exist for closed ways and named
multipolygons), so it answers like a real server loaded with the same data would. Scripted failures
(``"429"``, ``"504"``, ``"remark"``, ``"stall"``) are consumed one per request before normal answers resume.

The fault suite (tests/faults/test_overpass_faults.py) scripts misbehaviour the same way (see ``MISBEHAVIOUR``):
answers that are not what Overpass promises (invalid JSON, a JSON array, elements of the wrong types, an HTML page
where JSON was due), connections reset before or during the body (an RST, SO_LINGER 0), a body dripped one byte
every ``drip_interval_s``, ``429`` with a ``Retry-After`` header (``"429 retry-after=120"``), a JSON answer with a
``charset`` parameter, and a canned ``big_body`` answer.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from shapely import STRtree, make_valid
from shapely.geometry import LineString, Point, Polygon, box
from shapely.ops import polygonize, unary_union

_FILTER = re.compile(r'\["([^"]+)"(?:(=|!=|~|!~)"([^"]*)")?\]')
_BBOX_STATEMENT = re.compile(r"nwr((?:\[[^\]]*\])+)\(([-\d.]+),([-\d.]+),([-\d.]+),([-\d.]+)\);")
_IS_IN = re.compile(r"is_in\(([-\d.]+),([-\d.]+)\);")
_PIVOT_STATEMENT = re.compile(r"wr\(pivot\.\w+\)((?:\[[^\]]*\])+);")
OSM_BASE = "2019-04-15T00:00:00Z"
#: An Overpass-like HTML error page long enough that printing it whole would flood a terminal.
HTML_PAGE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE html>\n<html><head><title>OSM3S Response</title>'
    b"<style>body { font-family: sans-serif; }</style></head><body>\n"
    b"<p>The data included in this document is from www.openstreetmap.org.</p>\n"
    b'<p><strong style="color:#FF0000">Error</strong>: line 1: parse error: Unknown type "nwx"</p>\n'
    + b"<p>"
    + b"padding " * 2000
    + b"</p></body></html>\n"
)
#: The bodies of the scripted 200 answers whose content is wrong (everything else about them is right).
BAD_BODIES = {
    "invalid-json": b'{"version": 0.6, "elements": [{"type": "node", "id": 1,',
    "json-array": b"[1, 2, 3]",
    "elements-string": b'{"version": 0.6, "elements": "x"}',
    "element-without-id": b'{"version": 0.6, "elements": [{"type": "node", "lat": 60.5, "lon": 26.9}]}',
    "lat-string": b'{"version": 0.6, "elements": [{"type": "node", "id": 1, "lat": "sixty", "lon": 26.9}]}',
}
MISBEHAVIOUR = (
    *BAD_BODIES,
    "html-200",
    "html-as-json",
    "html-400",
    "reset-before-body",
    "reset-during-body",
    "drip",
    "charset",
    "big",
    "429 retry-after=SECONDS-OR-HTTP-DATE",
)


def tag_filter_matches(filters: str, tags: dict[str, str]) -> bool:
    for key, op, value in _FILTER.findall(filters):
        have = tags.get(key)
        if not op:
            ok = have is not None
        elif op == "=":
            ok = have == value
        elif op == "!=":
            ok = have != value
        elif op == "~":
            ok = have is not None and re.search(value, have) is not None
        else:  # !~
            ok = have is None or re.search(value, have) is None
        if not ok:
            return False
    return True


def _line(points: list[dict[str, float]]) -> Any:
    coords = [(p["lon"], p["lat"]) for p in points]
    return Point(coords[0]) if len(coords) == 1 else LineString(coords)


class OverpassData:
    """The elements and the spatial tests Overpass applies to them."""

    def __init__(self, elements: list[dict[str, Any]]) -> None:
        self.elements = elements
        self._shapes = [self._shape(e) for e in elements]
        self._areas = [self._area(e) for e in elements]
        self._shape_ids = [i for i, g in enumerate(self._shapes) if g is not None]
        self._shape_tree = STRtree([self._shapes[i] for i in self._shape_ids])
        self._area_ids = [i for i, g in enumerate(self._areas) if g is not None]
        self._area_tree = STRtree([self._areas[i] for i in self._area_ids])

    @staticmethod
    def _shape(element: dict[str, Any]) -> Any:
        if element["type"] == "node":
            return Point(element["lon"], element["lat"])
        if element["type"] == "way":
            return _line(element["geometry"])
        parts = [
            Point(m["lon"], m["lat"]) if "lat" in m else _line(m["geometry"])
            for m in element["members"]
            if "lat" in m or m.get("geometry")
        ]
        return unary_union(parts) if parts else None

    @staticmethod
    def _area(element: dict[str, Any]) -> Any:
        tags = element.get("tags") or {}
        if element["type"] == "way" and tags and tags.get("area") != "no":
            g = element["geometry"]
            if len(g) >= 4 and g[0] == g[-1]:
                return make_valid(Polygon([(p["lon"], p["lat"]) for p in g]))
        if element["type"] == "relation" and tags.get("type") == "multipolygon" and "name" in tags:
            lines = [_line(m["geometry"]) for m in element["members"] if m.get("geometry")]
            faces = list(polygonize(unary_union(lines))) if lines else []
            return unary_union(faces) if faces else None
        return None

    def evaluate(self, query: str) -> list[dict[str, Any]]:
        chosen: set[int] = set()
        for filters, s, w, n, e in _BBOX_STATEMENT.findall(query):
            frame = box(float(w), float(s), float(e), float(n))
            for j in self._shape_tree.query(frame, predicate="intersects"):
                i = self._shape_ids[j]
                if tag_filter_matches(filters, self.elements[i].get("tags") or {}):
                    chosen.add(i)
        enclosing: set[int] = set()
        for lat, lon in _IS_IN.findall(query):
            point = Point(float(lon), float(lat))
            enclosing |= {self._area_ids[j] for j in self._area_tree.query(point, predicate="covered_by")}
        for filters in _PIVOT_STATEMENT.findall(query):
            chosen |= {i for i in enclosing if tag_filter_matches(filters, self.elements[i].get("tags") or {})}
        order = {"node": 0, "way": 1, "relation": 2}
        return sorted((self.elements[i] for i in chosen), key=lambda el: (order[el["type"]], el["id"]))


@dataclass
class FakeOverpass:
    """The running server: its URL, what it was asked, and the failures still scripted."""

    data: OverpassData
    latency_s: float = 0.0
    stall_s: float = 30.0
    drip_interval_s: float = 0.5
    big_body: bytes = b""
    script: deque[str] = field(default_factory=deque)
    requests: list[dict[str, str]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _release: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/api/interpreter"

    def fail_next(self, *modes: str) -> None:
        self.script.extend(modes)

    def start(self) -> FakeOverpass:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _send(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name.replace("_", "-"), value)
                self.end_headers()
                self.wfile.write(body)

            def _reset(self) -> None:
                # SO_LINGER 0: close() sends an RST, as a dropped connection or a crashing proxy does
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                self.close_connection = True

            def _document(self, query: str, mode: str) -> bytes:
                document: dict[str, Any] = {
                    "version": 0.6,
                    "generator": "Overpass API 0.7.62 (loopback test server)",
                    "osm3s": {"timestamp_osm_base": OSM_BASE, "copyright": "OpenStreetMap contributors, ODbL"},
                    "elements": [] if mode == "remark" else fake.data.evaluate(query),
                }
                if mode == "remark":
                    document["remark"] = 'runtime error: Query timed out in "query" at line 3 after 25 seconds.'
                return json.dumps(document).encode("utf-8")

            def _misbehave(self, query: str, mode: str) -> bool:
                """Answer a scripted misbehaviour; False when `mode` is not one."""
                if mode in BAD_BODIES:
                    self._send(200, BAD_BODIES[mode], "application/json")
                elif mode == "html-200":
                    self._send(200, HTML_PAGE, "text/html; charset=utf-8")
                elif mode == "html-as-json":  # a proxy's error page labelled as JSON
                    self._send(200, HTML_PAGE, "application/json")
                elif mode == "html-400":
                    self._send(400, HTML_PAGE, "text/html; charset=utf-8")
                elif mode == "reset-before-body":
                    self._reset()
                elif mode == "reset-during-body":
                    body = self._document(query, "ok")
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    time.sleep(0.05)  # let the client start reading the body before the reset
                    self._reset()
                elif mode == "drip":
                    body = self._document(query, "ok")
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    for i in range(len(body)):
                        if fake._release.is_set():
                            return True
                        try:
                            self.wfile.write(body[i : i + 1])
                        except OSError:  # the client gave up: what it should do
                            return True
                        time.sleep(fake.drip_interval_s)
                elif mode == "charset":
                    self._send(200, self._document(query, "ok"), "application/json; charset=utf-8")
                elif mode == "big":
                    self._send(200, fake.big_body, "application/json")
                elif mode.startswith("429 retry-after="):
                    page = b"<html><body><p>Too Many Requests</p></body></html>"
                    self._send(429, page, "text/html", Retry_After=mode.removeprefix("429 retry-after="))
                else:
                    return False
                return True

            def do_POST(self) -> None:
                if self.path != "/api/interpreter":
                    self._send(404, b"not found", "text/plain")
                    return
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode("utf-8")
                query = urllib.parse.parse_qs(raw)["data"][0] if raw.startswith("data=") else raw
                fake.requests.append({"user_agent": self.headers.get("User-Agent", ""), "query": query})
                if fake.latency_s:
                    time.sleep(fake.latency_s)
                mode = fake.script.popleft() if fake.script else "ok"
                if self._misbehave(query, mode):
                    return
                if mode == "429":
                    self._send(429, b"<html><body><p>Too Many Requests</p></body></html>", "text/html")
                elif mode == "504":
                    self._send(504, b"<html><body><p>Gateway Timeout</p></body></html>", "text/html")
                elif mode == "stall":
                    fake._release.wait(fake.stall_s)
                    self._send(504, b"late", "text/html")
                else:
                    self._send(200, self._document(query, mode), "application/json")

        class QuietServer(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:  # resets and drips end in OSError
                pass

        self._server = QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
