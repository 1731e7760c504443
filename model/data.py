"""Datasets over an `annotator export` folder or the published ADVANCE release (SPEC §9).

Two layouts, one index:

* **export**: ``metadata.csv`` gives every id, class and split; files are ``vision/<class>/<id>.jpg`` and
  ``sound/<class>/<id>.wav``.
* **release**: only ``vision/<class>/<id>.jpg`` and ``sound/<class>/<id>.wav``; the 70/10/20 split grouped by
  recording is computed with :func:`dataset.split.assign_splits`, deterministically for a seed.

Images and sounds are paired by id, never by position in a listing: a file missing in one modality is an
error naming that id. Class indices come from :class:`~annotator.vocabulary.SceneClass`, never from the folders
that happen to exist (torchgeo's two ADVANCE mistakes).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

from annotator.errors import DatasetError
from annotator.vocabulary import SceneClass
from dataset.layout import (
    MANIFEST_FILE,
    METADATA_FILE,
    SOUND_DIR,
    VISION_DIR,
    image_relpath,
    read_metadata,
    sound_relpath,
)
from dataset.shards import is_shard_manifest
from dataset.split import Split, assign_splits, recording_of
from model.features import clip_features, read_image

#: File types accepted in the release layout (an export always writes .jpg and .wav, see :mod:`dataset.layout`).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


class DatasetLayout(StrEnum):
    """Which of the two dataset layouts an index was read from."""

    EXPORT = "export"
    RELEASE = "release"
    SHARDS = "shards"  # WebDataset shards staged in the export layout (model.shards)


@dataclass(frozen=True)
class SampleRef:
    """One image/sound pair on disk."""

    id: str
    label: SceneClass
    split: Split
    image_path: Path
    audio_path: Path


@dataclass(frozen=True)
class DatasetIndex:
    """Every pair of a dataset folder, sorted by id, and a key that changes when the files do."""

    root: Path
    layout: DatasetLayout
    samples: tuple[SampleRef, ...]
    key: str

    def split(self, split: Split | str, limit: int | None = None) -> list[SampleRef]:
        """The pairs of one split in id order; with `limit`, a deterministic class-mixed subset of that size."""
        chosen = [s for s in self.samples if s.split == Split(split)]
        if limit is not None and len(chosen) > limit:
            # sha1 of the id only orders the pairs (a fixed pseudo-random pick); it is no integrity check.
            chosen = sorted(chosen, key=lambda s: hashlib.sha1(s.id.encode()).hexdigest())[:limit]
            chosen.sort(key=lambda s: s.id)
        return chosen


def open_dataset(root: Path, *, split_seed: int = 0) -> DatasetIndex:
    """Index the dataset at `root`: an export when it has metadata.csv, else the release layout.

    Args:
        root: an ``annotator export`` folder or the ADVANCE release (``vision/`` and ``sound/``).
        split_seed: seed of the computed 70/10/20 split of the release layout (an export carries its split).

    Returns:
        The index of every pair, sorted by id.

    Raises:
        DatasetError: no dataset there, an unknown class, a pair missing one of its files, a bad row.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist")
    if _is_shard_export(root):
        raise DatasetError(
            f"{root} holds WebDataset shards (export --format webdataset), not the folder layout; "
            "`annotator train` and `evaluate` read shards through model.shards"
        )
    if (root / METADATA_FILE).is_file():
        samples, layout = _read_export(root), DatasetLayout.EXPORT
    elif (root / VISION_DIR).is_dir() and (root / SOUND_DIR).is_dir():
        samples, layout = _read_release(root, split_seed), DatasetLayout.RELEASE
    else:
        raise DatasetError(
            f"no dataset at {root}: expected {METADATA_FILE} (an `annotator export` output) or the {VISION_DIR}/ "
            f"and {SOUND_DIR}/ folders of the ADVANCE release"
        )
    if not samples:
        raise DatasetError(f"the dataset at {root} holds no pairs")
    samples.sort(key=lambda s: s.id)
    return DatasetIndex(root=root, layout=layout, samples=tuple(samples), key=_dataset_key(root, layout, samples))


def _is_shard_export(root: Path) -> bool:
    """True when `root`'s manifest.json is a shard export's (read by :mod:`model.shards`, not here)."""
    try:
        document = json.loads((root / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(document, dict) and is_shard_manifest(document)


def _class_of(text: str, where: str) -> SceneClass:
    try:
        return SceneClass.parse(text)
    except ValueError as exc:
        raise DatasetError(f"{where}: {exc}") from None


# ------------------------------------------------------------------------------------------ export layout


def _export_pair_paths(root: Path, sample_id: str, label: SceneClass) -> tuple[Path, Path]:
    """The image and sound files of one id where the export layout puts them; error naming the id if absent."""
    paths = []
    for relpath, what in ((image_relpath(label, sample_id), "image"), (sound_relpath(label, sample_id), "sound")):
        if not (root / relpath).is_file():
            raise DatasetError(f"sample {sample_id} ({label.value}): its {what} file {relpath} is missing")
        paths.append(root / relpath)
    return paths[0], paths[1]


def _export_sample(root: Path, row: dict[str, str], where: str) -> SampleRef:
    """One metadata.csv row as a pair on disk (`where` names the row in errors)."""
    sample_id = (row["id"] or "").strip()
    label = _class_of(row["class"] or "", where)
    try:
        split = Split((row["split"] or "").strip())
    except ValueError:
        raise DatasetError(f"{where}: split must be train, val or test, not {row['split']!r}") from None
    image, audio = _export_pair_paths(root, sample_id, label)
    return SampleRef(sample_id, label, split, image, audio)


def _read_export(root: Path) -> list[SampleRef]:
    """The pairs listed in metadata.csv, read with :func:`dataset.layout.read_metadata`."""
    samples: list[SampleRef] = []
    seen: set[str] = set()
    for line, row in enumerate(read_metadata(root), start=2):  # line 1 is the header
        sample_id = (row["id"] or "").strip()
        where = f"{METADATA_FILE} line {line} (id {sample_id or '?'})"
        if not sample_id:
            raise DatasetError(f"{where}: empty id")
        if sample_id in seen:
            raise DatasetError(f"{where}: id {sample_id} appears twice")
        seen.add(sample_id)
        samples.append(_export_sample(root, row, where))
    return samples


# ------------------------------------------------------------------------------------------ release layout


def _scan_modality(root: Path, folder: str, suffixes: tuple[str, ...]) -> dict[str, tuple[SceneClass, Path]]:
    """Every file of one modality folder by id, with the class its folder names."""
    found: dict[str, tuple[SceneClass, Path]] = {}
    for class_dir in sorted((root / folder).iterdir()):
        if not class_dir.is_dir() or class_dir.name.startswith("."):
            continue
        label = _class_of(class_dir.name, f"unknown class folder {folder}/{class_dir.name}")
        for path in sorted(class_dir.iterdir()):
            if path.suffix.lower() not in suffixes or path.name.startswith("."):
                continue
            if path.stem in found:
                other = found[path.stem][1].relative_to(root)
                raise DatasetError(f"sample {path.stem} appears twice: {other} and {path.relative_to(root)}")
            found[path.stem] = (label, path)
    return found


def _check_release_pairs(
    images: dict[str, tuple[SceneClass, Path]], sounds: dict[str, tuple[SceneClass, Path]]
) -> None:
    """Every id has both files, under the same class; else an error naming the ids."""
    for ids, have, lack in (
        (images.keys() - sounds.keys(), "an image", SOUND_DIR),
        (sounds.keys() - images.keys(), "a sound", VISION_DIR),
    ):
        if ids:
            first = sorted(ids)[:5]
            raise DatasetError(
                f"sample {first[0]} has {have} file but none under {lack}/ ({len(ids)} such id(s): "
                f"{', '.join(first)}{'…' if len(ids) > 5 else ''}); every id needs both files"
            )
    for sample_id, (label, _) in images.items():
        if sounds[sample_id][0] != label:
            raise DatasetError(
                f"sample {sample_id} is {label.value} under {VISION_DIR}/ but {sounds[sample_id][0].value} "
                f"under {SOUND_DIR}/"
            )


def _read_release(root: Path, split_seed: int) -> list[SampleRef]:
    """The pairs of the release layout, paired by id, with the split computed by :mod:`dataset.split`."""
    images = _scan_modality(root, VISION_DIR, IMAGE_SUFFIXES)
    sounds = _scan_modality(root, SOUND_DIR, AUDIO_SUFFIXES)
    _check_release_pairs(images, sounds)
    splits = assign_splits(((i, label, recording_of(i)) for i, (label, _) in images.items()), split_seed)
    return [SampleRef(i, label, splits[i], path, sounds[i][1]) for i, (label, path) in images.items()]


def _dataset_key(root: Path, layout: DatasetLayout, samples: Sequence[SampleRef]) -> str:
    """The export's manifest hash when there is one, else a hash of every file's path, size and mtime."""
    digest = hashlib.sha256(layout.value.encode())
    manifest = root / MANIFEST_FILE
    if layout == DatasetLayout.EXPORT and manifest.is_file():
        digest.update(manifest.read_bytes())
        digest.update((root / METADATA_FILE).read_bytes())
        return digest.hexdigest()
    for sample in samples:
        for path in (sample.image_path, sample.audio_path):
            stat = path.stat()
            digest.update(f"{path.relative_to(root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        digest.update(f"{sample.split}\n".encode())
    return digest.hexdigest()


class FeatureSource(Protocol):
    """Decoded features by sample id (:class:`model.cache.FeatureCache` is one)."""

    def image(self, sample_id: str) -> np.ndarray:
        """uint8 (3, S, S)."""
        ...

    def log_mel(self, sample_id: str) -> np.ndarray:
        """float16 (64, 400)."""
        ...


class SceneDataset(Dataset):
    """Pairs as dicts ``{"image": uint8 (3,S,S), "audio": float16 (1,64,400), "label": int, "id": str}``.

    Only the modalities asked for are loaded. Features come from a :class:`model.cache.FeatureCache` when one
    is given (no decoding), else they are decoded from the files; `features` picks the log-mel definition
    decoded (``default`` or ``paper``, see :mod:`model.features`; a cache holds one of them).
    """

    def __init__(
        self,
        samples: Sequence[SampleRef],
        *,
        image_size: int,
        image: bool = True,
        audio: bool = True,
        cache: FeatureSource | None = None,
        features: str = "default",
    ) -> None:
        self.samples = list(samples)
        self.features = features
        self.image_size = image_size
        self.load_image, self.load_audio = image, audio
        self.cache = cache

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        ref = self.samples[index]
        item: dict[str, Any] = {"label": ref.label.index, "id": ref.id}
        if self.load_image:
            array = self.cache.image(ref.id) if self.cache is not None else self._decode_image(ref)
            item["image"] = torch.from_numpy(np.array(array, dtype=np.uint8))
        if self.load_audio:
            array = self.cache.log_mel(ref.id) if self.cache is not None else self._decode_audio(ref)
            item["audio"] = torch.from_numpy(np.array(array, dtype=np.float16))[None]
        return item

    def _decode_image(self, ref: SampleRef) -> np.ndarray:
        try:
            return read_image(ref.image_path, self.image_size)
        except OSError as exc:
            raise DatasetError(f"sample {ref.id}: cannot read image {ref.image_path}: {exc}") from exc

    def _decode_audio(self, ref: SampleRef) -> np.ndarray:
        try:
            return clip_features(ref.audio_path, self.features)
        except (OSError, RuntimeError, ValueError) as exc:
            raise DatasetError(f"sample {ref.id}: cannot read sound {ref.audio_path}: {exc}") from exc


def describe(index: DatasetIndex) -> dict[str, Any]:
    """Counts per split and class, for logs and the training-run record."""
    per_split = {s.value: len(index.split(s)) for s in Split}
    per_class = {c.value: sum(1 for s in index.samples if s.label == c) for c in SceneClass}
    return {"layout": index.layout.value, "key": index.key, "per_split": per_split, "per_class": per_class}
