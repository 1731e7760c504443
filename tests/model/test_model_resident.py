"""The resident path: a split's cached features as device tensors (CPU here), batches equal to the loader's."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from annotator.errors import TrainingError
from model.cache import FeatureCache, open_or_build_cache
from model.data import SampleRef, SceneDataset, open_dataset
from model.resident import ResidentData


@pytest.fixture(scope="module")
def small_cache(planted_export: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[FeatureCache, list[SampleRef]]:
    full = open_dataset(planted_export)
    index = replace(full, samples=full.samples[:14])
    cache = open_or_build_cache(index, 32, tmp_path_factory.mktemp("resident-cache"))
    return cache, list(reversed(index.samples[2:]))  # a split whose order differs from the cache rows


def _loader_batch(dataset: SceneDataset, indices: list[int]) -> dict[str, torch.Tensor]:
    batch = next(iter(DataLoader(dataset, batch_size=len(indices), sampler=indices)))
    return {k: v for k, v in batch.items() if k != "id"}


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


def test_batches_equal_the_dataloaders_for_the_same_indices(small_cache: tuple[FeatureCache, list[SampleRef]]) -> None:
    cache, samples = small_cache
    resident = ResidentData.from_cache(cache, samples, 32, "cpu")
    dataset = SceneDataset(samples, image_size=32, cache=cache)
    indices = [5, 0, 11, 3]
    got = resident.batch(torch.tensor(indices))
    assert _equal(got, _loader_batch(dataset, indices))
    assert (got["image"].dtype, got["audio"].shape[1:], got["label"].dtype) == (torch.uint8, (1, 64, 400), torch.int64)
    assert resident.size_bytes == ResidentData.nbytes(len(samples), 32)


def test_only_the_modalities_asked_for_are_resident(small_cache: tuple[FeatureCache, list[SampleRef]]) -> None:
    cache, samples = small_cache
    audio_only = ResidentData.from_cache(cache, samples, 32, "cpu", image=False)
    dataset = SceneDataset(samples, image_size=32, cache=cache, image=False)
    assert _equal(audio_only.batch(torch.tensor([1, 2])), _loader_batch(dataset, [1, 2]))
    assert audio_only.size_bytes == ResidentData.nbytes(len(samples), 32, image=False)


def test_an_epoch_of_batches_is_seeded_and_covers_every_sample_once(
    small_cache: tuple[FeatureCache, list[SampleRef]],
) -> None:
    cache, samples = small_cache
    resident = ResidentData.from_cache(cache, samples, 32, "cpu", image=False)
    labels = [s.label.index for s in samples]

    def epoch(seed: int) -> list[list[int]]:
        batches = resident.batches(5, torch.Generator().manual_seed(seed), shuffle=True)
        return [b["label"].tolist() for b in batches]

    first = epoch(1)
    assert [len(b) for b in first] == [5, 5, 2]
    assert sorted(sum(first, [])) == sorted(labels)
    assert first == epoch(1)
    order = torch.randperm(len(samples), generator=torch.Generator().manual_seed(1)).tolist()
    assert sum(first, []) == [labels[i] for i in order]
    in_order = [b["label"].tolist() for b in resident.batches(5, None, shuffle=False)]
    assert sum(in_order, []) == labels


def test_wrong_image_size_and_unshuffled_generator_rules(small_cache: tuple[FeatureCache, list[SampleRef]]) -> None:
    cache, samples = small_cache
    with pytest.raises(TrainingError, match="32 px images, not 64 px"):
        ResidentData.from_cache(cache, samples, 64, "cpu")
    with pytest.raises(TrainingError, match="generator"):
        next(ResidentData.from_cache(cache, samples, 32, "cpu", image=False).batches(4, None, shuffle=True))


def test_fits_on_cpu_means_under_half_the_available_ram() -> None:
    assert ResidentData.fits(ResidentData.nbytes(1_000, 256), "cpu")
    assert not ResidentData.fits(2**60, "cpu")
