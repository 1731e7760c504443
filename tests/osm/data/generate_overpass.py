"""Turn an OSM extract into the JSON an Overpass server answers with for ``[out:json]`` ``out meta geom``.

Written independently of ``annotator.osm`` (only pyosmium), so the loopback server's answers do not share code
with the client under test. Every tagged node, every way (with its node coordinates as ``geometry`` and
``bounds``) and every relation (members with geometry) is kept; the server filters them per query.

Usage: python tests/osm/data/generate_overpass.py IN.osm.pbf OUT.json [--shift DLAT DLON ID_OFFSET]...
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import osmium

OSM_BASE = "2019-04-15T00:00:00Z"  # the extract is from April 2019


def _meta(obj: Any, kind: str) -> dict[str, Any]:
    return {
        "type": kind,
        "id": obj.id,
        "timestamp": obj.timestamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "version": obj.version,
        "changeset": obj.changeset,
        "user": obj.user,
        "uid": obj.uid,
    }


def _bounds(points: list[dict[str, float]]) -> dict[str, float]:
    return {
        "minlat": min(p["lat"] for p in points),
        "minlon": min(p["lon"] for p in points),
        "maxlat": max(p["lat"] for p in points),
        "maxlon": max(p["lon"] for p in points),
    }


def overpass_elements(path: Path) -> list[dict[str, Any]]:
    """All elements of the extract as Overpass ``out meta geom`` JSON elements."""
    nodes: list[dict[str, Any]] = []
    ways: list[dict[str, Any]] = []
    relations: list[dict[str, Any]] = []
    for obj in osmium.FileProcessor(str(path)).with_locations():
        tags = {t.k: t.v for t in obj.tags}
        if obj.is_node():
            if tags:
                loc = obj.location
                nodes.append({**_meta(obj, "node"), "lat": round(loc.lat, 7), "lon": round(loc.lon, 7), "tags": tags})
        elif obj.is_way():
            located = [n.location for n in obj.nodes if n.location.valid()]
            geometry = [{"lat": round(loc.lat, 7), "lon": round(loc.lon, 7)} for loc in located]
            if len(geometry) < 2:
                continue
            way = {**_meta(obj, "way"), "bounds": _bounds(geometry), "nodes": [n.ref for n in obj.nodes]}
            way["geometry"] = geometry
            if tags:
                way["tags"] = tags
            ways.append(way)
        elif obj.is_relation():
            members = [
                {"type": {"n": "node", "w": "way", "r": "relation"}[m.type], "ref": m.ref, "role": m.role}
                for m in obj.members
            ]
            relations.append({**_meta(obj, "relation"), "members": members, "tags": tags})
    way_geometry = {w["id"]: w["geometry"] for w in ways}
    for relation in relations:
        for member in relation["members"]:
            if member["type"] == "way" and member["ref"] in way_geometry:
                member["geometry"] = way_geometry[member["ref"]]
    return nodes + ways + relations


def shifted(elements: list[dict[str, Any]], dlat: float, dlon: float, id_offset: int) -> list[dict[str, Any]]:
    """A copy of the elements moved by (dlat, dlon) with ids offset (to make several 'towns' from one extract)."""

    def move(point: dict[str, Any]) -> dict[str, Any]:
        return {**point, "lat": round(point["lat"] + dlat, 7), "lon": round(point["lon"] + dlon, 7)}

    out = []
    for element in elements:
        copy = {**element, "id": element["id"] + id_offset}
        if "lat" in copy:
            copy.update(move(copy))
        if "geometry" in copy:
            copy["geometry"] = [move(p) for p in copy["geometry"]]
            copy["bounds"] = _bounds(copy["geometry"])
        if "nodes" in copy:
            copy["nodes"] = [n + id_offset for n in copy["nodes"]]
        if "members" in copy:
            copy["members"] = [
                {
                    **m,
                    "ref": m["ref"] + id_offset,
                    **({"geometry": [move(p) for p in m["geometry"]]} if "geometry" in m else {}),
                }
                for m in copy["members"]
            ]
        out.append(copy)
    return out


def write_overpass_json(elements: list[dict[str, Any]], out: Path) -> Path:
    document = {
        "version": 0.6,
        "generator": "Overpass API 0.7.62 (test fixture from kotka-2019.osm.pbf)",
        "osm3s": {
            "timestamp_osm_base": OSM_BASE,
            "copyright": "The data included in this document is from www.openstreetmap.org. "
            "The data is made available under ODbL.",
        },
        "elements": elements,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document), encoding="utf-8")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("extract", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--shift", nargs=3, action="append", metavar=("DLAT", "DLON", "ID_OFFSET"), default=[])
    args = parser.parse_args()
    base = overpass_elements(args.extract)
    elements = list(base)
    for dlat, dlon, offset in args.shift:
        elements += shifted(base, float(dlat), float(dlon), int(offset))
    write_overpass_json(elements, args.out)


if __name__ == "__main__":
    main()
