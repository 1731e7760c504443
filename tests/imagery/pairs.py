"""Stored pairs for the imagery tests: a recording and a pair at each point, needing imagery by default."""

from __future__ import annotations

from sqlalchemy.orm import Session

from annotator.store.models import Pair, Recording
from annotator.vocabulary import ImageStatus, RecordingSource, RecordingStatus


def add_pairs(engine, points: list[tuple[float, float]], status: ImageStatus = ImageStatus.NEEDS_IMAGERY) -> list[int]:
    """Pairs at ``points`` (with their recordings) in `status`; their ids in order. Source ids are unique across
    calls for different points or statuses, so one test may call it several times."""
    with Session(engine) as session, session.begin():
        ids = []
        for i, (lat, lon) in enumerate(points):
            recording = Recording(
                source=RecordingSource.MANIFEST,
                source_id=f"rec{i}-{lat}-{lon}-{status}",
                lat=lat,
                lon=lon,
                original_path=f"rec{i}.wav",
                sha256="0" * 64,
                sample_rate=22050,
                channels=1,
                frames=22050 * 12,
                duration_s=12.0,
                status=RecordingStatus.ACCEPTED,
            )
            pair = Pair(recording=recording, lat=lat, lon=lon, image_status=status)
            session.add(pair)
            session.flush()
            ids.append(pair.id)
    return ids
