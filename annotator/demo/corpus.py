"""Builds the whole offline demo corpus in one folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DemoCorpus:
    """Where the parts of a generated demo corpus are."""

    root: Path
    manifest: Path
    tiles: Path
    osm_file: Path


def build_demo_corpus(root: Path, *, seed: int = 0) -> DemoCorpus:
    """Write recordings + manifest, a local XYZ tile pyramid and an OSM extract under `root`."""
    from annotator.demo.osm import write_demo_osm
    from annotator.demo.recordings import write_demo_recordings
    from annotator.demo.tiles import write_demo_tiles

    root.mkdir(parents=True, exist_ok=True)
    manifest = write_demo_recordings(root / "recordings", seed=seed)
    tiles = write_demo_tiles(root / "tiles")
    osm_file = write_demo_osm(root / "demo.osm")
    return DemoCorpus(root=root, manifest=manifest, tiles=tiles, osm_file=osm_file)
