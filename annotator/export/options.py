"""The parameters of an export (the flags of ``annotator export``) and its progress callback."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from annotator.errors import ExportError
from dataset.audio import CLIP_S
from dataset.split import SplitBy

Progress = Callable[[str, int, int | None], None]
"""A progress callback: (stage description, items just done, stage total or None to start a stage)."""


def default_workers() -> int:
    """Processes that write samples by default: min(2, CPUs)."""
    return max(1, min(2, os.cpu_count() or 1))


class ExportFormat(StrEnum):
    """What an export writes at OUT (``export --format``)."""

    FOLDER = "folder"  # the ADVANCE layout: vision/, sound/, metadata.csv, …
    WEBDATASET = "webdataset"  # tar shards of the same samples (:func:`dataset.shards.pack_export`)


#: Samples per tar shard by default (``--shard-size``).
DEFAULT_SHARD_SIZE = 1000


@dataclass(frozen=True)
class ExportOptions:
    """The parameters of an export (flags of `annotator export`)."""

    min_per_class: int = 10
    augment_below: int = 100
    offset_m: float = 64.0
    sample_rate: int = 22050
    seed: int = 0
    include_unreviewed: bool = False
    imagery: str | None = None
    force: bool = False
    workers: int = field(default_factory=default_workers)
    audio_root: Path | None = None
    split_by: SplitBy = SplitBy.RECORDING
    block_m: float | None = None  # None: the images' footprint side (256 m at 512 px × 0.5 m/px)
    format: ExportFormat = ExportFormat.FOLDER
    shard_size: int = DEFAULT_SHARD_SIZE

    def manifest_parameters(self, block_m: float | None = None) -> dict[str, object]:
        """The parameters that decide the dataset's bytes (not workers, force or where the originals live).

        Args:
            block_m: the block size the split used (``self.block_m`` resolved), recorded instead of None.
        """
        shards = {"shard_size": self.shard_size} if self.format is ExportFormat.WEBDATASET else {}
        return {
            "split_by": self.split_by.value,
            "block_m": self.block_m if block_m is None else block_m,
            "format": self.format.value,
            **shards,
            "min_per_class": self.min_per_class,
            "augment_below": self.augment_below,
            "offset_m": self.offset_m,
            "sample_rate": self.sample_rate,
            "seed": self.seed,
            "include_unreviewed": self.include_unreviewed,
            "imagery": self.imagery,
            "clip_s": CLIP_S,
        }

    def record_parameters(self, block_m: float | None = None) -> dict[str, object]:
        """The parameters kept in the store's ``exports`` row: the manifest's, plus workers and force."""
        return {**self.manifest_parameters(block_m), "workers": self.workers, "force": self.force}

    def validate(self) -> None:
        """Raise ExportError naming every parameter out of range."""
        problems = []
        if self.min_per_class < 0:
            problems.append("--min-per-class must be 0 or more")
        if self.augment_below < 0:
            problems.append("--augment-below must be 0 or more")
        if not self.offset_m > 0:
            problems.append("--offset-m must be a positive number of metres")
        if not 1000 <= self.sample_rate <= 384_000:
            problems.append("--sample-rate must be between 1000 and 384000 Hz")
        if self.workers < 1:
            problems.append("--workers must be 1 or more")
        if self.block_m is not None and not self.block_m >= 0:
            problems.append("--block-m must be 0 or more metres")
        if self.shard_size < 1:
            problems.append("--shard-size must be 1 or more")
        if problems:
            raise ExportError("; ".join(problems))
