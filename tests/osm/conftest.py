"""Fixtures for the OSM tests: the real Kotka extract, its Overpass JSON, a loopback Overpass server, pairs."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from annotator.store.engine import session_scope
from annotator.store.models import Pair, Recording
from annotator.vocabulary import RecordingSource, RecordingStatus
from tests.osm.data.generate_overpass import overpass_elements, write_overpass_json
from tests.osm.overpass_server import FakeOverpass, OverpassData

KOTKA_PBF = Path(__file__).parent / "data" / "kotka-2019.osm.pbf"


@pytest.fixture(scope="session")
def kotka_elements(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The Kotka extract as Overpass JSON elements, generated into a temp folder by the committed script."""
    out = write_overpass_json(overpass_elements(KOTKA_PBF), tmp_path_factory.mktemp("overpass") / "kotka.json")
    return json.loads(out.read_text(encoding="utf-8"))["elements"]


@pytest.fixture(scope="session")
def kotka_data(kotka_elements: list[dict[str, Any]]) -> OverpassData:
    return OverpassData(kotka_elements)


@pytest.fixture
def overpass_server(kotka_data: OverpassData) -> Iterator[FakeOverpass]:
    server = FakeOverpass(kotka_data, stall_s=10.0).start()
    yield server
    server.stop()


def add_pairs(engine: Engine, points: Sequence[tuple[float, float]]) -> list[int]:
    """Store one recording with one pair per (lat, lon) through the store models; returns the pair ids."""
    with session_scope(engine) as session:
        ids = []
        for n, (lat, lon) in enumerate(points):
            recording = Recording(
                source=RecordingSource.MANIFEST,
                source_id=f"rec-{n}-{lat:.6f}-{lon:.6f}",
                lat=lat,
                lon=lon,
                original_path=f"rec{n}.wav",
                sha256="0" * 64,
                sample_rate=22050,
                channels=1,
                frames=220500,
                duration_s=10.0,
                status=RecordingStatus.ACCEPTED,
            )
            pair = Pair(recording=recording, lat=lat, lon=lon)
            session.add(pair)
            session.flush()
            ids.append(pair.id)
        return ids
