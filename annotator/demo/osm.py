"""The demo world's OSM extract: an .osm XML file mapping every cell with the tags of the class OSM claims.

Each cell is a closed way tagged with its OSM class's canonical tags (:data:`annotator.osm.tags.CANONICAL_TAGS`);
stale cells keep the class OSM still claims, with an old last edit (2012), the kind of evidence a reviewer uses
to suspect a stale label. Small objects are mapped the way real mappers do: the bridge cell has a bridge outline
(``man_made=bridge``) with a road way ``bridge=yes`` across it, the station cell a station area with a
``railway=station`` node, the airport cell an aerodrome polygon with a runway way. Unmapped cells are a park and
commercial land (no ADVANCE class). Ids, versions and timestamps are fixed, so the file is byte-identical on
every run.
"""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import quoteattr

from annotator.demo.world import Cell, bounds, cells
from annotator.files import atomic_write_text
from annotator.osm.tags import CANONICAL_TAGS
from annotator.vocabulary import SceneClass

#: Tags of the cells OSM maps with no ADVANCE class, in the order those cells appear.
UNMAPPED_TAGS: tuple[dict[str, str], ...] = ({"leisure": "park", "name": "Demo Park"}, {"landuse": "commercial"})
STALE_TIMESTAMP = "2012-05-14T09:21:07Z"


class _Writer:
    def __init__(self) -> None:
        self.nodes: list[str] = []
        self.ways: list[str] = []
        self._next_node = 1_000_001
        self._next_way = 2_000_001

    @staticmethod
    def _meta(version: int, timestamp: str) -> str:
        return f'version="{version}" timestamp="{timestamp}" changeset="{40_000_000 + version}" user="demo" uid="1"'

    @staticmethod
    def _tags(tags: dict[str, str]) -> str:
        return "".join(f"\n    <tag k={quoteattr(k)} v={quoteattr(v)}/>" for k, v in sorted(tags.items()))

    def node(
        self, lat: float, lon: float, *, version: int = 1, timestamp: str, tags: dict[str, str] | None = None
    ) -> int:
        node_id = self._next_node
        self._next_node += 1
        attrs = f'id="{node_id}" {self._meta(version, timestamp)} lat="{lat:.7f}" lon="{lon:.7f}"'
        if tags:
            self.nodes.append(f"  <node {attrs}>{self._tags(tags)}\n  </node>")
        else:
            self.nodes.append(f"  <node {attrs}/>")
        return node_id

    def way(
        self, points: list[tuple[float, float]], tags: dict[str, str], *, version: int, timestamp: str, closed: bool
    ) -> int:
        refs = [self.node(lat, lon, timestamp=timestamp) for lat, lon in points]
        if closed:
            refs.append(refs[0])
        way_id = self._next_way
        self._next_way += 1
        nds = "".join(f'\n    <nd ref="{r}"/>' for r in refs)
        self.ways.append(f'  <way id="{way_id}" {self._meta(version, timestamp)}>{nds}{self._tags(tags)}\n  </way>')
        return way_id


def _ring(cell: Cell) -> list[tuple[float, float]]:
    return [(cell.south, cell.west), (cell.south, cell.east), (cell.north, cell.east), (cell.north, cell.west)]


def _map_cell(writer: _Writer, cell: Cell, index: int, unmapped_tags: dict[str, str] | None) -> None:
    stale = cell.osm is not cell.truth
    timestamp = STALE_TIMESTAMP if stale else f"20{18 + index % 6}-0{1 + index % 9}-1{index % 10}T12:00:00Z"
    version = 1 + index % 4
    tags = dict(unmapped_tags or {}) if cell.osm is None else dict(CANONICAL_TAGS[cell.osm])
    writer.way(_ring(cell), tags, version=version, timestamp=timestamp, closed=True)
    lat, lon = cell.centre
    if cell.osm is SceneClass.BRIDGE:
        road = [(lat, cell.west), (lat, cell.east)]
        writer.way(
            road, {"highway": "secondary", "bridge": "yes", "layer": "1"}, version=2, timestamp=timestamp, closed=False
        )
    elif cell.osm is SceneClass.TRAIN_STATION:
        writer.node(
            lat,
            lon,
            version=3,
            timestamp=timestamp,
            tags={"railway": "station", "public_transport": "station", "train": "yes", "name": "Demo"},
        )
    elif cell.osm is SceneClass.AIRPORT:
        runway = [(lat, cell.west + 0.1 * (cell.east - cell.west)), (lat, cell.east - 0.1 * (cell.east - cell.west))]
        writer.way(runway, {"aeroway": "runway", "ref": "09/27"}, version=2, timestamp=timestamp, closed=False)


def write_demo_osm(out_path: Path) -> Path:
    """Write the demo extract to `out_path` (atomically) and return the path."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    writer = _Writer()
    unmapped = iter(UNMAPPED_TAGS)
    for index, cell in enumerate(cells()):
        extra = next(unmapped, {"leisure": "park"}) if cell.osm is None else None
        _map_cell(writer, cell, index, extra)
    west, south, east, north = bounds()
    text = "\n".join(
        [
            '<?xml version="1.0" encoding="UTF-8"?>',
            '<osm version="0.6" generator="annotator demo">',
            f'  <bounds minlat="{south:.7f}" minlon="{west:.7f}" maxlat="{north:.7f}" maxlon="{east:.7f}"/>',
            *writer.nodes,
            *writer.ways,
            "</osm>",
            "",
        ]
    )
    atomic_write_text(out_path, text)
    return out_path
