"""Fixtures of the import tests: the standard generated corpus (built once per module) and store helpers."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator.store.models import Recording
from tests.data.generate import CorpusRow, build_corpus, write_csv_manifest


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[CorpusRow]]:
    root = tmp_path_factory.mktemp("corpus")
    return root, build_corpus(root, seed=0)


@pytest.fixture(scope="module")
def csv_manifest(corpus: tuple[Path, list[CorpusRow]]) -> Path:
    root, rows = corpus
    return write_csv_manifest(root / "manifest.csv", [r.row for r in rows])


def recordings_by_id(engine) -> dict[str, Recording]:  # type: ignore[no-untyped-def]
    with Session(engine, expire_on_commit=False) as session:
        recordings = session.scalars(select(Recording)).all()
        for r in recordings:
            _ = r.pairs  # load before the session closes
        return {r.source_id: r for r in recordings}


def read_rejects(path: Path) -> list[dict[str, str]]:
    import csv

    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))
