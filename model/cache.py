"""The feature cache: decoded images (uint8) and log-mels (float16) in memory-mapped .npy files.

Built once per (dataset key, image size, log-mel definition, feature version) — the key is the export's
manifest hash, or a hash of the release's file list, sizes and mtimes — so epochs (and later runs) read
features instead of decoding JPEGs and resampling audio. Built in a temporary folder and renamed into place,
so a crash never leaves a half cache.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from annotator.files import sha256_bytes
from model.data import DatasetIndex, SampleRef, SceneDataset
from model.features import N_FRAMES, N_MELS

FEATURE_VERSION = 1
ENV_CACHE = "ANNOTATOR_CACHE"


def default_cache_dir() -> Path:
    """``$ANNOTATOR_CACHE``, else ``$XDG_CACHE_HOME/annotator/features`` (``~/.cache/annotator/features``)."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "annotator" / "features"


def cache_key(index: DatasetIndex, image_size: int, features: str = "default") -> str:
    """The cache folder's name: changes with the dataset, the image size and the feature definitions.

    ``features`` (``default`` or ``paper``) is part of the key, so caches of the two log-mels never mix; the
    default's key text is unchanged, so caches built before the choice existed stay valid.
    """
    text = f"v{FEATURE_VERSION}:{index.key}:{image_size}:{N_MELS}x{N_FRAMES}"
    if features != "default":
        text += f":{features}"
    return sha256_bytes(text.encode())[:24]


class FeatureCache:
    """Read side of a built cache; memory maps are opened lazily, once per (worker) process."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        meta = json.loads((directory / "meta.json").read_text())
        self.image_size: int = meta["image_size"]
        self.features: str = meta.get("features", "default")
        self.rows: dict[str, int] = {sample_id: row for row, sample_id in enumerate(meta["ids"])}
        self._images: np.ndarray | None = None
        self._mels: np.ndarray | None = None

    def __getstate__(self) -> dict[str, Any]:  # workers reopen the maps instead of pickling arrays
        return {**self.__dict__, "_images": None, "_mels": None}

    def images_array(self) -> np.ndarray:
        """Every cached image, memory-mapped: uint8 (rows, 3, S, S) in the order of :attr:`rows`."""
        if self._images is None:
            self._images = np.load(self.directory / "images.npy", mmap_mode="r")
        return self._images

    def log_mels_array(self) -> np.ndarray:
        """Every cached log-mel, memory-mapped: float16 (rows, 64, 400) in the order of :attr:`rows`."""
        if self._mels is None:
            self._mels = np.load(self.directory / "logmels.npy", mmap_mode="r")
        return self._mels

    def image(self, sample_id: str) -> np.ndarray:
        return self.images_array()[self.rows[sample_id]]

    def log_mel(self, sample_id: str) -> np.ndarray:
        return self.log_mels_array()[self.rows[sample_id]]


class _Rows(Dataset):
    """Decodes sample i of the index with its row number (for building the cache in worker processes)."""

    def __init__(self, samples: list[SampleRef], image_size: int, features: str) -> None:
        self.inner = SceneDataset(samples, image_size=image_size, features=features)

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, row: int) -> tuple[int, torch.Tensor, torch.Tensor]:
        item = self.inner[row]
        return row, item["image"], item["audio"][0]


def open_or_build_cache(
    index: DatasetIndex,
    image_size: int,
    cache_root: Path,
    *,
    workers: int = 0,
    build: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
    features: str = "default",
) -> FeatureCache:
    """The cache for `index` at `image_size`, building it first if it does not exist.

    Args:
        index: the dataset whose every pair is cached.
        image_size: side of the square images stored.
        cache_root: the folder holding one sub-folder per cache key.
        workers: DataLoader worker processes decoding while building.
        build: False on non-zero ranks, which only open what rank 0 built (after a barrier).
        on_progress: called with (done, total) while building.
        features: the log-mel definition (``default`` or ``paper``); part of the cache key.

    Returns:
        The opened cache.
    """
    final = Path(cache_root) / cache_key(index, image_size, features)
    if (final / "meta.json").is_file() or not build:
        return FeatureCache(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    # A folder, so annotator.files.atomic_path (one file) does not fit: the same temp-then-rename by hand.
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        _write_cache(tmp, index, image_size, workers, on_progress, features)
        try:
            os.replace(tmp, final)
        except OSError:  # another process finished the same cache first; theirs is identical
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return FeatureCache(final)


def _write_cache(
    folder: Path,
    index: DatasetIndex,
    image_size: int,
    workers: int,
    on_progress: Callable[[int, int], None] | None,
    features: str = "default",
) -> None:
    """Decode every pair of `index` into ``images.npy``, ``logmels.npy`` and ``meta.json`` in `folder`."""
    samples = list(index.samples)
    n = len(samples)
    images = np.lib.format.open_memmap(folder / "images.npy", "w+", np.uint8, (n, 3, image_size, image_size))
    mels = np.lib.format.open_memmap(folder / "logmels.npy", "w+", np.float16, (n, N_MELS, N_FRAMES))
    loader = DataLoader(_Rows(samples, image_size, features), batch_size=8, num_workers=workers)
    done = 0
    for rows, image_batch, mel_batch in loader:
        images[rows.numpy()] = image_batch.numpy()
        mels[rows.numpy()] = mel_batch.numpy()
        done += len(rows)
        if on_progress:
            on_progress(done, n)
    images.flush()
    mels.flush()
    del images, mels  # close the memory maps before the folder is renamed
    meta = {
        "version": FEATURE_VERSION,
        "dataset_key": index.key,
        "image_size": image_size,
        "features": features,
        "ids": [s.id for s in samples],
    }
    (folder / "meta.json").write_text(json.dumps(meta))
