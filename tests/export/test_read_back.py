"""The export read back: by a minimal reader of the layout, and by the training loader (model/data.py)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import soundfile
from PIL import Image

from annotator.export import ExportOptions
from annotator.vocabulary import SceneClass
from dataset.layout import read_metadata
from tests.export.world import labelled, plant_pairs, run_export


@pytest.fixture
def exported(engine, location, tiles, tmp_path):
    plant_pairs(engine, location, labelled(SceneClass.TRAIN_STATION, 3) + labelled(SceneClass.BEACH, 5), tiles=tiles)
    options = ExportOptions(min_per_class=2, augment_below=4, seed=1, workers=1)
    return run_export(engine, location, tmp_path / "ds", options)


def test_minimal_reader_pairs_every_id_with_its_image_and_sound(exported):
    rows = read_metadata(exported.out)
    assert len(rows) == 3 * 5 + 5
    for row in rows:
        cls = SceneClass.parse(row["class"])
        with Image.open(exported.out / "vision" / cls.value / f"{row['id']}.jpg") as image:
            pixels = np.asarray(image)
        sound, rate = soundfile.read(exported.out / "sound" / cls.value / f"{row['id']}.wav", dtype="int16")
        assert pixels.shape == (512, 512, 3) and sound.shape == (220500,) and rate == 22050
        assert row["recording"] == row["id"].split("_", 1)[0]
        assert (row["origin"] == "offset") == ("_" in row["id"])
    with (exported.out / "metadata.csv").open(newline="") as handle:
        assert csv.reader(handle).__next__()[0] == "id"


def test_training_loader_reads_the_export(exported):
    data = pytest.importorskip("model.data")
    index = data.open_dataset(exported.out)
    assert index.layout == "export"
    by_id = {s.id: s for s in index.samples}
    rows = read_metadata(exported.out)
    assert set(by_id) == {r["id"] for r in rows}
    for row in rows:
        sample = by_id[row["id"]]
        assert sample.label.value == row["class"] and sample.split.value == row["split"]
        assert sample.image_path.name == f"{row['id']}.jpg" and sample.audio_path.name == f"{row['id']}.wav"
