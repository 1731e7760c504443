"""The dataset readers: export vs release layout, pairing by id, the vocabulary's class order, the cache."""

from __future__ import annotations

import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from advance_generator import write_release

from annotator.errors import DatasetError
from annotator.vocabulary import SceneClass
from dataset.split import recording_of
from model.cache import open_or_build_cache
from model.data import SceneDataset, open_dataset


def _release_copy(export: Path, dest: Path) -> Path:
    """The same files without metadata.csv / manifest.json: the published release layout."""
    shutil.copytree(export / "vision", dest / "vision")
    shutil.copytree(export / "sound", dest / "sound")
    return dest


def test_release_and_export_readers_give_the_same_samples(planted_export: Path, tmp_path: Path) -> None:
    export = open_dataset(planted_export)
    release = open_dataset(_release_copy(planted_export, tmp_path / "release"), split_seed=0)
    assert (export.layout, release.layout) == ("export", "release")

    def rows(index):  # type: ignore[no-untyped-def]
        return [
            (s.id, s.label, s.split, s.image_path.relative_to(index.root), s.audio_path.relative_to(index.root))
            for s in index.samples
        ]

    assert rows(export) == rows(release)
    assert len(export.samples) == 156
    a = SceneDataset(export.samples[:3], image_size=32)
    b = SceneDataset(release.samples[:3], image_size=32)
    for i in range(3):
        assert a[i]["id"] == b[i]["id"] and a[i]["label"] == b[i]["label"]
        assert np.array_equal(a[i]["image"].numpy(), b[i]["image"].numpy())
        assert np.array_equal(a[i]["audio"].numpy(), b[i]["audio"].numpy())


def test_computed_split_never_puts_a_recording_in_two_splits(planted_export: Path, tmp_path: Path) -> None:
    index = open_dataset(_release_copy(planted_export, tmp_path / "release"), split_seed=11)
    splits_of = defaultdict(set)
    for sample in index.samples:
        splits_of[recording_of(sample.id)].add(sample.split)
    assert all(len(s) == 1 for s in splits_of.values())
    assert any("_" in s.id for s in index.samples)  # offset copies exist, so grouping was really tested
    assert {s.split.value for s in index.samples} == {"train", "val", "test"}
    again = open_dataset(index.root, split_seed=11)
    assert [s.split for s in again.samples] == [s.split for s in index.samples]


def test_class_index_comes_from_the_vocabulary_not_the_folders(tmp_path: Path) -> None:
    write_release(
        tmp_path,
        per_class=3,
        image_size=32,
        duration_s=1.0,
        offsets_every=0,
        classes=(SceneClass.LAKE, SceneClass.TRAIN_STATION),
    )
    index = open_dataset(tmp_path)
    item = SceneDataset([s for s in index.samples if s.label == SceneClass.TRAIN_STATION][:1], image_size=32)[0]
    assert item["label"] == 12 and set(item) == {"image", "audio", "label", "id"}
    assert {s.label.index for s in index.samples} == {7, 12}


def test_a_missing_sound_names_the_id_instead_of_shifting_pairs(tmp_path: Path) -> None:
    write_release(tmp_path, per_class=3, image_size=32, duration_s=1.0, offsets_every=0, classes=(SceneClass.BEACH,))
    (tmp_path / "sound" / "beach" / "10002.wav").unlink()
    with pytest.raises(DatasetError, match="10002"):
        open_dataset(tmp_path)


def test_a_missing_file_in_an_export_names_the_id(planted_export: Path, tmp_path: Path) -> None:
    copy = tmp_path / "export"
    shutil.copytree(planted_export, copy)
    next((copy / "vision" / "forest").glob("*.jpg")).unlink()
    with pytest.raises(DatasetError, match=r"sample \d{5}.*image file vision/forest/"):
        open_dataset(copy)


def test_an_unknown_class_folder_is_a_clear_error(tmp_path: Path) -> None:
    write_release(tmp_path, per_class=1, image_size=32, duration_s=1.0, offsets_every=0, classes=(SceneClass.LAKE,))
    (tmp_path / "vision" / "desert").mkdir()
    with pytest.raises(DatasetError, match="unknown class folder vision/desert"):
        open_dataset(tmp_path)


def test_no_dataset_at_all_says_what_was_expected(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="metadata.csv"):
        open_dataset(tmp_path)


def test_cached_features_equal_decoded_ones_bit_for_bit(planted_export: Path, feature_cache_dir: Path) -> None:
    index = open_dataset(planted_export)
    cache = open_or_build_cache(index, 32, feature_cache_dir)
    again = open_or_build_cache(index, 32, feature_cache_dir)  # second call opens, does not rebuild
    assert again.directory == cache.directory
    samples = list(index.samples[::40])
    cached, decoded = SceneDataset(samples, image_size=32, cache=cache), SceneDataset(samples, image_size=32)
    for i in range(len(samples)):
        assert np.array_equal(cached[i]["image"].numpy(), decoded[i]["image"].numpy())
        assert np.array_equal(cached[i]["audio"].numpy(), decoded[i]["audio"].numpy())
