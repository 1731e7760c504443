"""Out-of-fold probabilities (model.oof): grouped and stratified folds, the out-of-fold guarantee, determinism, and
a planted corpus whose flipped labels come out with a low out-of-fold probability for the label they were given.

The corpus: 4 classes × 12 recordings, a quarter of them with an offset copy (same recording, so same group), the
class planted in the image colour and stripes and in the sound's tone (tests/model/advance_generator.py). A fifth
of the recordings carry another class's label (a stale label); two pairs carry none (scored, never trained on).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "model"))

from advance_generator import make_image, make_sound  # noqa: E402

from annotator.errors import TrainingError  # noqa: E402
from annotator.vocabulary import CLASS_ORDER, NUM_CLASSES, SceneClass  # noqa: E402
from dataset.layout import image_relpath, sound_relpath  # noqa: E402
from dataset.split import Split, recording_of  # noqa: E402
from model.config import TrainConfig  # noqa: E402
from model.data import SampleRef  # noqa: E402
from model.oof import CPU_RANK_SETTINGS, OutOfFold, grouped_stratified_folds, out_of_fold_probabilities  # noqa: E402

CLASSES = (CLASS_ORDER[0], CLASS_ORDER[3], CLASS_ORDER[6], CLASS_ORDER[9])  # far-apart hues and tones
RECORDINGS_PER_CLASS = 12
FOLDS = 4


@dataclass
class Corpus:
    samples: list[SampleRef]
    labels: list[int | None]  # the given labels (some flipped, two missing)
    truth: list[int]
    groups: list[str]

    @property
    def flipped(self) -> np.ndarray:
        return np.array([g is not None and g != t for g, t in zip(self.labels, self.truth, strict=True)])


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Train with one intra-op thread: on the 2 shared, busy cores the tests run on, two OpenMP threads spin-wait
    for each other (measured on the planted run: 65 s with two threads, 10 s with one, at load 6)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    root = tmp_path_factory.mktemp("planted")
    rng = np.random.default_rng(13)
    classes = [cls for cls in CLASSES for _ in range(RECORDINGS_PER_CLASS)]
    recordings = [(f"{30_000 + n:05d}", cls) for n, cls in enumerate(classes)]
    stale = set(rng.choice(len(recordings), size=len(recordings) // 5, replace=False).tolist())
    corpus = Corpus([], [], [], [])
    for n, (recording, cls) in enumerate(recordings):
        given: SceneClass | None = cls
        if n in stale:
            given = CLASSES[(CLASSES.index(cls) + 1 + int(rng.integers(3))) % len(CLASSES)]
        elif n in (5, 29):
            given = None
        ids = [recording] + ([f"{recording}_1"] if n % 4 == 0 else [])
        for sample_id in ids:
            image, sound = root / image_relpath(cls, sample_id), root / sound_relpath(cls, sample_id)
            make_image(image, cls, rng, 64)
            make_sound(sound, cls, rng, 2.0, 16_000)
            placeholder = given or SceneClass.AIRPORT
            corpus.samples.append(SampleRef(sample_id, placeholder, Split.TRAIN, image, sound))
            corpus.labels.append(given.index if given is not None else None)
            corpus.truth.append(cls.index)
            corpus.groups.append(recording_of(sample_id))
    return corpus


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("feature-cache")


def rank_config(**changes: object) -> TrainConfig:
    """`rank`'s CPU settings (model.oof.CPU_RANK_SETTINGS: 64 px, audio width 8, 6 epochs) on the CPU."""
    settings = {**CPU_RANK_SETTINGS, "device": "cpu", "seed": 0, "workers": 0}
    return TrainConfig(**{**settings, **changes})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def planted_run(corpus: Corpus, cache_dir: Path) -> OutOfFold:
    return out_of_fold_probabilities(
        corpus.samples, corpus.labels, corpus.groups, rank_config(), folds=FOLDS, cache_dir=cache_dir
    )


# ----------------------------------------------------------------------------------------------------- folds


def _random_groups(seed: int, n_groups: int = 60) -> tuple[list[int | None], list[str]]:
    """Groups of 1–4 samples of one class (13 classes, uneven), a tenth of the samples unlabelled."""
    rng = np.random.default_rng(seed)
    labels: list[int | None] = []
    groups: list[str] = []
    for g in range(n_groups):
        label = int(min(rng.geometric(0.25) - 1, NUM_CLASSES - 1))
        for _ in range(int(rng.integers(1, 5))):
            labels.append(None if rng.random() < 0.1 else label)
            groups.append(f"r{g}")
    return labels, groups


def test_a_group_never_straddles_folds_and_unlabelled_pairs_follow_their_group() -> None:
    labels, groups = _random_groups(1)
    labels += [None, None, None]  # a recording with no label at all still gets a fold
    groups += ["unlabelled"] * 3
    folds = grouped_stratified_folds(labels, groups, 5, seed=0)
    assert len(folds) == len(labels) and set(folds) == set(range(5))
    per_group: dict[str, set[int]] = {}
    for group, fold in zip(groups, folds, strict=True):
        per_group.setdefault(group, set()).add(fold)
    assert all(len(f) == 1 for f in per_group.values()), per_group


def test_classes_of_single_pair_recordings_are_spread_within_one_per_fold() -> None:
    labels: list[int | None] = [c for c in range(NUM_CLASSES) for _ in range(3 + 2 * c)]  # 3 … 27 per class
    folds = grouped_stratified_folds(labels, [f"r{i}" for i in range(len(labels))], 5, seed=7)
    for cls in range(NUM_CLASSES):
        counts = Counter(f for f, label in zip(folds, labels, strict=True) if label == cls)
        per_fold = [counts.get(f, 0) for f in range(5)]
        assert max(per_fold) - min(per_fold) <= 1, (cls, per_fold)
    sizes = Counter(folds)
    assert max(sizes.values()) - min(sizes.values()) <= 1


def test_with_larger_groups_each_class_is_spread_as_evenly_as_its_groups_allow() -> None:
    labels, groups = _random_groups(2, n_groups=120)
    folds = grouped_stratified_folds(labels, groups, 4, seed=0)
    for cls in set(labels) - {None}:
        counts = Counter(f for f, label in zip(folds, labels, strict=True) if label == cls)
        per_fold = [counts.get(f, 0) for f in range(4)]
        biggest = max(Counter(g for g, label in zip(groups, labels, strict=True) if label == cls).values())
        assert max(per_fold) - min(per_fold) <= biggest, (cls, per_fold, biggest)


def test_a_class_with_fewer_recordings_than_folds_is_no_error() -> None:
    labels: list[int | None] = [0] * 20 + [1, 1]  # class 1: two recordings for five folds
    folds = grouped_stratified_folds(labels, [f"r{i}" for i in range(22)], 5, seed=0)
    assert folds[20] != folds[21]


def test_folds_are_seeded() -> None:
    labels, groups = _random_groups(3)
    assert grouped_stratified_folds(labels, groups, 5, seed=4) == grouped_stratified_folds(labels, groups, 5, seed=4)
    assert grouped_stratified_folds(labels, groups, 5, seed=4) != grouped_stratified_folds(labels, groups, 5, seed=5)


def test_more_folds_than_recordings_is_refused_in_a_sentence() -> None:
    with pytest.raises(TrainingError, match=r"5 folds need at least 5 recordings.*only 3; use at most 3 folds"):
        grouped_stratified_folds([0, 1, 2, 0], ["a", "b", "c", "a"], 5, seed=0)
    with pytest.raises(TrainingError, match="at least 2 folds"):
        grouped_stratified_folds([0, 1], ["a", "b"], 1, seed=0)


# --------------------------------------------------------------------------------------------- out of fold


@pytest.mark.slow
def test_no_pair_is_scored_by_a_model_that_trained_on_it_or_on_its_recording(
    planted_run: OutOfFold, corpus: Corpus
) -> None:
    assert planted_run.fold.tolist() == grouped_stratified_folds(corpus.labels, corpus.groups, FOLDS, seed=0)
    assert len(planted_run.trained_on) == FOLDS == len(planted_run.seconds_per_fold)
    labelled = {i for i, label in enumerate(corpus.labels) if label is not None}
    for f, trained in enumerate(planted_run.trained_on):
        scored = {i for i in range(len(corpus.samples)) if planted_run.fold[i] == f}
        assert scored and trained and trained <= labelled
        assert trained == labelled - scored  # every labelled pair of the other folds, nothing else
        assert not {corpus.groups[i] for i in trained} & {corpus.groups[i] for i in scored}


@pytest.mark.slow
def test_probabilities_are_float64_rows_summing_to_one_for_every_pair(planted_run: OutOfFold, corpus: Corpus) -> None:
    probs = planted_run.probs
    assert probs.shape == (len(corpus.samples), NUM_CLASSES) and probs.dtype == np.float64
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-12) and (probs >= 0).all()
    unlabelled = [i for i, label in enumerate(corpus.labels) if label is None]
    truth = np.array(corpus.truth)
    assert (probs[unlabelled].argmax(axis=1) == truth[unlabelled]).all()  # scored though never trained on
    assert planted_run.config.image_size == 64 and planted_run.config.epochs == 6


@pytest.mark.slow
def test_flipped_labels_get_a_low_out_of_fold_probability(planted_run: OutOfFold, corpus: Corpus) -> None:
    given = np.array([-1 if label is None else label for label in corpus.labels])
    labelled = given >= 0
    self_confidence = planted_run.probs[np.arange(len(given)), np.maximum(given, 0)]
    flipped, clean = corpus.flipped, labelled & ~corpus.flipped
    assert self_confidence[flipped].mean() < 0.5 * self_confidence[clean].mean(), (
        self_confidence[flipped],
        self_confidence[clean].mean(),
    )
    # Ranked by self-confidence, a flipped pair comes before a clean one (nearly) always: ROC AUC ≥ 0.95.
    before = self_confidence[flipped][:, None] < self_confidence[clean][None, :]
    assert before.mean() >= 0.95, before.mean()


@pytest.mark.slow
def test_same_seed_same_probabilities_other_seed_other_folds(corpus: Corpus, cache_dir: Path) -> None:
    quick = rank_config(epochs=1, image_size=32, audio_width=4)
    some = [i for i, group in enumerate(corpus.groups) if int(group) % 3 == 0]  # 16 recordings, to keep it quick
    samples = [corpus.samples[i] for i in some]
    labels, groups = [corpus.labels[i] for i in some], [corpus.groups[i] for i in some]
    first = out_of_fold_probabilities(samples, labels, groups, quick, folds=2, cache_dir=cache_dir)
    again = out_of_fold_probabilities(samples, labels, groups, quick, folds=2, cache_dir=cache_dir)
    assert np.array_equal(first.probs, again.probs) and np.array_equal(first.fold, again.fold)
    assert not np.allclose(first.probs, 1 / NUM_CLASSES)  # it did learn something to compare
    assert grouped_stratified_folds(labels, groups, 2, seed=1) != first.fold.tolist()  # the seed picks the folds


@pytest.mark.slow
def test_one_feature_cache_serves_every_fold(planted_run: OutOfFold, corpus: Corpus, cache_dir: Path) -> None:
    whole = {s.id for s in corpus.samples}
    caches = [d for d in cache_dir.iterdir() if set(json.loads((d / "meta.json").read_text())["ids"]) == whole]
    assert len(caches) == 1
