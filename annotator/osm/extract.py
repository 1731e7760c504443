"""Read an OSM extract (.osm / .osm.pbf) with pyosmium into the same element dicts Overpass returns.

Two passes: the first finds the multipolygon relations whose tags mean a class (and their member ways), the
second reads nodes and ways with node locations and gives each kept way its geometry. Relations are assembled
from member geometry by :mod:`annotator.osm.features`, exactly as for an Overpass response, so both sources yield
the same features and the same decisions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from annotator.errors import OsmFileError
from annotator.osm.features import Feature, features_from_elements, iso_timestamp
from annotator.osm.tags import rule_for

SUPPORTED_SUFFIXES = (".osm", ".osm.pbf", ".pbf", ".osm.bz2", ".osm.gz", ".o5m")


@dataclass(frozen=True)
class Extract:
    """What an extract holds for pre-labelling."""

    path: Path
    features: list[Feature]
    source_date: str | None  # header timestamp, else the newest edit in the file


def _meta(obj: Any) -> dict[str, Any]:
    return {
        "id": obj.id,
        "version": obj.version or None,
        "timestamp": iso_timestamp(obj.timestamp) if obj.timestamp and obj.timestamp.year > 1970 else None,
        "tags": {t.k: t.v for t in obj.tags},
    }


def _header_date(path: Path) -> str | None:
    import osmium

    header = osmium.io.Reader(str(path), osmium.osm.NOTHING).header()
    for key in ("osmosis_replication_timestamp", "timestamp"):
        value = header.get(key)
        if value:
            return value
    return None


def read_elements(path: Path) -> tuple[list[dict[str, Any]], str | None]:
    """Element dicts (Overpass JSON shape) for every element that can count, and the extract's date."""
    import osmium

    relations: list[dict[str, Any]] = []
    member_ways: set[int] = set()
    for rel in osmium.FileProcessor(str(path), osmium.osm.RELATION):
        if not isinstance(rel, osmium.osm.Relation):
            continue
        tags = {t.k: t.v for t in rel.tags}
        if tags.get("type") != "multipolygon" or rule_for(tags) is None:
            continue
        members: list[dict[str, Any]] = [{"type": m.type, "ref": m.ref, "role": m.role} for m in rel.members]
        for member in members:
            member["type"] = {"n": "node", "w": "way", "r": "relation"}[member["type"]]
            if member["type"] == "way":
                member_ways.add(member["ref"])
        relations.append({"type": "relation", **_meta(rel), "members": members})

    elements: list[dict[str, Any]] = []
    way_geometry: dict[int, list[dict[str, float]]] = {}
    newest = None
    processor = osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY).with_locations()
    for obj in processor:
        if not isinstance(obj, osmium.osm.Node | osmium.osm.Way):
            continue
        if obj.timestamp and (newest is None or obj.timestamp > newest):
            newest = obj.timestamp
        if isinstance(obj, osmium.osm.Node):
            if obj.tags and rule_for({t.k: t.v for t in obj.tags}) is not None and obj.location.valid():
                elements.append({"type": "node", **_meta(obj), "lat": obj.location.lat, "lon": obj.location.lon})
            continue
        wanted = obj.id in member_ways
        counts = bool(obj.tags) and rule_for({t.k: t.v for t in obj.tags}) is not None
        if not (wanted or counts):
            continue
        geometry = [{"lat": n.location.lat, "lon": n.location.lon} for n in obj.nodes if n.location.valid()]
        if wanted:
            way_geometry[obj.id] = geometry
        if counts:
            elements.append({"type": "way", **_meta(obj), "geometry": geometry})
    for relation in relations:
        for member in relation["members"]:
            if member["type"] == "way" and member["ref"] in way_geometry:
                member["geometry"] = way_geometry[member["ref"]]
    elements.extend(relations)
    return elements, _header_date(path) or iso_timestamp(newest)


def load_extract(path: Path) -> Extract:
    """Read `path` into features; raises :class:`OsmFileError` with what to do when it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise OsmFileError(f"OSM extract {path} does not exist; pass an .osm or .osm.pbf file to --osm-file")
    if not path.name.lower().endswith(SUPPORTED_SUFFIXES):
        raise OsmFileError(f"{path} is not an OSM extract; --osm-file takes .osm or .osm.pbf files")
    try:
        elements, source_date = read_elements(path)
    except RuntimeError as exc:  # libosmium reports unreadable or corrupt input as RuntimeError
        raise OsmFileError(f"cannot read OSM extract {path}: {exc}") from exc
    return Extract(path=path, features=features_from_elements(elements), source_date=source_date)
