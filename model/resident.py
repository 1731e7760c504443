"""One split's cached features held as tensors on the training device, batches gathered there by index.

ADVANCE cached at 256 px is about 1.0 GB of uint8 images and 0.26 GB of float16 log-mels: on a GPU with room
for it, loading the cache once and indexing on the device replaces DataLoader workers and the host→device copy
of every step (data wait ≈ 0), and augmentation (:mod:`model.augment`) runs there too. On CPU the same code
holds the tensors in RAM, which is how the tests exercise it. When it does not fit (:meth:`ResidentData.fits`),
the caller falls back to the DataLoader over the memory-mapped cache.

Batches are exactly what the DataLoader path yields for the same indices (the tests check it): ``"image"``
uint8 (B, 3, S, S), ``"audio"`` float16 (B, 1, 64, 400), ``"label"`` int64 (B,); the model converts and
normalises them on the device.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from annotator.errors import DatasetError, TrainingError
from model.cache import FeatureCache
from model.data import SampleRef
from model.features import N_FRAMES, N_MELS

#: Memory kept free on a CUDA device besides the data: the larger of this and CUDA_MARGIN_FRACTION of the card,
#: for the weights, optimiser state and activations of a training step (the paper nets at batch 64 in bf16
#: need a few GiB).
CUDA_MARGIN_BYTES = 8 * 2**30
CUDA_MARGIN_FRACTION = 0.25
#: Rows copied to the device per transfer while loading, so host memory holds one chunk, not the split.
LOAD_CHUNK = 512


class ResidentData:
    """The features of one split on one device; :meth:`batch` gathers rows by index without leaving it."""

    def __init__(self, labels: torch.Tensor, images: torch.Tensor | None, log_mels: torch.Tensor | None) -> None:
        """`labels` int64 (N,); `images` uint8 (N, 3, S, S) or None; `log_mels` float16 (N, 64, 400) or None."""
        self.labels, self.images, self.log_mels = labels, images, log_mels
        self.device = labels.device

    @classmethod
    def from_cache(
        cls,
        cache: FeatureCache,
        samples: Sequence[SampleRef],
        image_size: int,
        device: torch.device | str,
        *,
        image: bool = True,
        audio: bool = True,
    ) -> ResidentData:
        """Copy the cached features of `samples` (in that order) to `device`, chunk by chunk.

        `image` / `audio` pick the modalities loaded, like :class:`model.data.SceneDataset`'s flags.
        """
        if cache.image_size != image_size:
            raise TrainingError(f"the feature cache holds {cache.image_size} px images, not {image_size} px")
        missing = [s.id for s in samples if s.id not in cache.rows]
        if missing:
            raise DatasetError(f"sample {missing[0]} is not in the feature cache {cache.directory}; rebuild it")
        device = torch.device(device)
        rows = np.array([cache.rows[s.id] for s in samples], dtype=np.int64)
        labels = torch.tensor([s.label.index for s in samples], dtype=torch.int64, device=device)
        images = _to_device(cache.images_array(), rows, device) if image else None
        log_mels = _to_device(cache.log_mels_array(), rows, device) if audio else None
        return cls(labels, images, log_mels)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def size_bytes(self) -> int:
        """Bytes this split occupies on its device."""
        held = (t for t in (self.labels, self.images, self.log_mels) if t is not None)
        return sum(t.numel() * t.element_size() for t in held)

    @staticmethod
    def nbytes(n_samples: int, image_size: int, *, image: bool = True, audio: bool = True) -> int:
        """Bytes `n_samples` would occupy resident: uint8 images, float16 log-mels, int64 labels."""
        per_sample = 8 + (3 * image_size * image_size if image else 0) + (2 * N_MELS * N_FRAMES if audio else 0)
        return n_samples * per_sample

    @staticmethod
    def fits(n_bytes: int, device: torch.device | str) -> bool:
        """Whether `n_bytes` of data fit on `device` and leave room to train.

        CUDA: the free memory now (``torch.cuda.mem_get_info``) minus a margin (the larger of
        :data:`CUDA_MARGIN_BYTES` and :data:`CUDA_MARGIN_FRACTION` of the card); call it once the model is on
        the device so its weights are counted. CPU: at most half of the available RAM.
        """
        device = torch.device(device)
        if device.type == "cuda":
            free, total = torch.cuda.mem_get_info(device)
            return n_bytes + max(CUDA_MARGIN_BYTES, int(CUDA_MARGIN_FRACTION * total)) <= free
        return n_bytes <= available_host_memory() // 2

    def batch(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        """The samples at `indices` (positions in this split) as a DataLoader batch, gathered on the device."""
        index = indices.to(self.device, dtype=torch.int64)
        out = {"label": self.labels.index_select(0, index)}
        if self.images is not None:
            out["image"] = self.images.index_select(0, index)
        if self.log_mels is not None:
            out["audio"] = self.log_mels.index_select(0, index).unsqueeze(1)  # (B, 1, 64, 400) like the loader
        return out

    def batches(
        self, batch_size: int, generator: torch.Generator | None = None, shuffle: bool = True
    ) -> Iterator[dict[str, torch.Tensor]]:
        """One epoch in batches of `batch_size` (the last may be smaller); shuffled by `generator` if asked.

        The order is drawn on the generator's device and moved to the data once per epoch, not per step.
        """
        if batch_size < 1:
            raise TrainingError(f"batch_size must be at least 1, not {batch_size}")
        n = len(self)
        if shuffle:
            if generator is None:
                raise TrainingError("a shuffled epoch needs a generator (seeded, so runs repeat)")
            order = torch.randperm(n, generator=generator, device=generator.device)
        else:
            order = torch.arange(n)
        order = order.to(self.device)
        for start in range(0, n, batch_size):
            yield self.batch(order[start : start + batch_size])


def _to_device(array: np.ndarray, rows: np.ndarray, device: torch.device) -> torch.Tensor:
    """``array[rows]`` as one tensor on `device`, copied :data:`LOAD_CHUNK` rows at a time."""
    out = torch.empty(
        (len(rows), *array.shape[1:]), dtype=torch.from_numpy(np.empty(0, dtype=array.dtype)).dtype, device=device
    )
    for start in range(0, len(rows), LOAD_CHUNK):
        chunk = np.ascontiguousarray(array[rows[start : start + LOAD_CHUNK]])
        out[start : start + len(chunk)] = torch.from_numpy(chunk).to(device, non_blocking=False)
    return out


def available_host_memory() -> int:
    """Bytes of RAM available now (``MemAvailable`` on Linux), else the physical total."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
