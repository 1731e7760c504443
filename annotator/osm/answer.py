"""The shape of an Overpass ``[out:json]`` answer, checked once before anything uses or caches it.

:func:`features_from_elements` trusts its input (``float(p["lat"])``, ``int(element["id"])``, tag regexes), so an
answer is parsed here exactly once — ``json.loads`` of the whole body, no incremental concatenation — and every
element is checked against what ``out meta geom`` promises. A wrong answer becomes :class:`BadAnswer` naming the
first problem; the client turns it into an :class:`~annotator.errors.OverpassRefused` sentence.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

#: How much of a wrong body an error message quotes.
EXCERPT_CHARS = 160

_TAG = re.compile(r"<[^>]*>")
_HIDDEN = re.compile(r"<(script|style|head)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_OVERPASS_ERROR = re.compile(r"<strong[^>]*>\s*Error\s*</strong>\s*:?(.*?)</p>", re.IGNORECASE | re.DOTALL)


class BadAnswer(ValueError):
    """An Overpass answer that is not the JSON ``out meta geom`` promises; the message names the first problem."""


@dataclass(frozen=True)
class OverpassAnswer:
    """A checked ``[out:json]`` answer: its elements, the data timestamp and the server's remark, if any."""

    elements: list[dict[str, Any]]
    osm_base: str | None
    remark: str | None


def excerpt(body: bytes, limit: int = EXCERPT_CHARS) -> str:
    """A short, one-line excerpt of a (usually HTML) body for an error message: Overpass's own ``Error:``
    paragraphs when there are any, else the visible text, cut to `limit` characters."""
    text = body[: 64 * 1024].decode("utf-8", errors="replace")
    found = [_TAG.sub("", m.group(1)) for m in _OVERPASS_ERROR.finditer(text)]
    text = "; ".join(found) if found else _TAG.sub(" ", _HIDDEN.sub(" ", text))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _kind(value: object) -> str:
    """How a JSON value reads in a message: 'a JSON array', 'the string "x"'."""
    if isinstance(value, str):
        return f"the string {json.dumps(value[:40])}"
    names = {dict: "object", list: "array", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else f"a JSON {names.get(type(value), type(value).__name__)}"


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _position_problem(point: Mapping[str, Any]) -> str | None:
    for key, bound in (("lat", 90.0), ("lon", 180.0)):
        value = point.get(key)
        if not _is_number(value) or abs(float(value)) > bound:  # type: ignore[arg-type]
            return f"'{key}' {_kind(value)}, not a coordinate"
    return None


def _geometry_problem(geometry: object) -> str | None:
    if geometry is None:
        return None
    if not isinstance(geometry, list):
        return f"has 'geometry' {_kind(geometry)}, not a list"
    for point in geometry:
        if point is None:  # Overpass writes null for a node outside a clipped geometry
            continue
        if not isinstance(point, dict):
            return f"has a geometry point that is {_kind(point)}"
        problem = _position_problem(point)
        if problem:
            return f"has a geometry point with {problem}"
    return None


def _member_problem(member: object) -> str | None:
    if not isinstance(member, dict):
        return f"has a member that is {_kind(member)}, not an object"
    if not isinstance(member.get("type", ""), str) or not isinstance(member.get("role", ""), str):
        return "has a member whose 'type' or 'role' is not a string"
    if "lat" in member or "lon" in member:
        problem = _position_problem(member)
        return f"has a member with {problem}" if problem else None
    return _geometry_problem(member.get("geometry"))


def element_problem(element: object) -> str | None:
    """What is wrong with one element of an answer, or None when it is usable."""
    if not isinstance(element, dict):
        return f"is {_kind(element)}, not an object"
    kind, ident = element.get("type"), element.get("id")
    if not isinstance(kind, str):
        return f"has 'type' {_kind(kind)}"
    if not isinstance(ident, int) or isinstance(ident, bool):
        return f"has 'id' {_kind(ident)}"
    tags = element.get("tags")
    if tags is not None and not (
        isinstance(tags, dict) and all(isinstance(v, str) for v in tags.values())
    ):  # JSON object keys are always strings
        return "has 'tags' that are not an object of strings"
    version, timestamp = element.get("version"), element.get("timestamp")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        return f"has 'version' {_kind(version)}"
    if timestamp is not None:
        try:
            datetime.fromisoformat(str(timestamp).replace("Z", "+00:00"))
        except ValueError:
            return f"has 'timestamp' {_kind(timestamp)}, not an ISO 8601 time"
        if not isinstance(timestamp, str):
            return f"has 'timestamp' {_kind(timestamp)}"
    if kind == "node" and ("lat" in element or "lon" in element):
        problem = _position_problem(element)
        return f"has {problem}" if problem else None
    problem = _geometry_problem(element.get("geometry"))
    if problem is None and kind == "relation":
        members = element.get("members")
        if members is not None and not isinstance(members, list):
            return f"has 'members' {_kind(members)}, not a list"
        for member in members or []:
            problem = _member_problem(member)
            if problem:
                break
    return problem


def parse_answer(body: bytes) -> OverpassAnswer:
    """Parse and check an ``[out:json]`` body once.

    Raises:
        BadAnswer: the body is not JSON, not an object with an ``elements`` list, or an element is malformed.
    """
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        start = " ".join(body[:60].decode("utf-8", errors="replace").split())
        raise BadAnswer(f"invalid JSON ({exc.msg} at byte {exc.pos}; it starts {start!r})") from None
    except (UnicodeDecodeError, RecursionError) as exc:
        raise BadAnswer(f"invalid JSON ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise BadAnswer(f"{_kind(data)} where an object with 'elements' was expected")
    elements = data.get("elements")
    if not isinstance(elements, list):
        raise BadAnswer(f"'elements' is {_kind(elements)}, not a list")
    for number, element in enumerate(elements):
        problem = element_problem(element)
        if problem:
            raise BadAnswer(f"element {number} {problem}")
    osm3s = data.get("osm3s")
    osm_base = osm3s.get("timestamp_osm_base") if isinstance(osm3s, dict) else None
    remark = data.get("remark")
    return OverpassAnswer(
        elements=elements,
        osm_base=osm_base if isinstance(osm_base, str) else None,
        remark=remark.strip() or None if isinstance(remark, str) else None,
    )
