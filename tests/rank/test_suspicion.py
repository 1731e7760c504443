"""The suspicion formula, OSM's staleness prior, the queue order and the training configuration (no training)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from annotator.errors import TrainingError
from annotator.rank import (
    RankCandidate,
    RankOptions,
    combine_suspicion,
    label_suspicion,
    osm_staleness,
    queue_ranks,
    score_pairs,
    training_config,
)
from annotator.rank.selection import OsmSignals
from annotator.vocabulary import CLASS_ORDER, LabelSource, PairOrigin, SceneClass
from model.oof import CPU_RANK_SETTINGS


def test_suspicion_is_one_minus_the_probability_of_the_current_label():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6], [0.5, 0.3, 0.2]])
    suspicion = label_suspicion([0, 0, 2, None], probs)
    # cleanlab's self-confidence is p(given label): a pair labelled 0 that the model puts at 0.1 is 90 % suspect.
    assert suspicion[:3] == pytest.approx([0.3, 0.9, 0.4])
    # No label: the probability that the model's own suggestion is wrong.
    assert suspicion[3] == pytest.approx(0.5)
    assert ((suspicion >= 0) & (suspicion <= 1)).all()


@pytest.mark.parametrize("method", ["normalized_margin", "confidence_weighted_entropy"])
def test_other_cleanlab_methods_stay_in_the_unit_interval(method):
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(13), size=40)
    labels = [int(x) for x in rng.integers(0, 13, size=40)]
    suspicion = label_suspicion(labels, probs, method=method)
    assert suspicion.shape == (40,) and ((suspicion >= 0) & (suspicion <= 1)).all()


def test_unknown_method_and_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="self_confidence"):
        label_suspicion([0], np.array([[1.0, 0.0]]), method="guess")
    with pytest.raises(ValueError, match="shape"):
        label_suspicion([0, 1], np.array([[1.0, 0.0]]))


def test_queue_ranks_put_the_most_suspicious_first_and_break_ties_by_pair_id():
    assert queue_ranks([0.2, 0.9, 0.9, 0.5], [10, 12, 11, 13]) == [4, 2, 1, 3]
    assert queue_ranks([], []) == []


def test_osm_staleness_rises_with_edit_age_and_falls_with_coverage_and_confidence():
    queried = datetime(2025, 1, 1, tzinfo=UTC)
    fresh = OsmSignals(confidence=0.9, coverage=0.9, last_edit_at=datetime(2024, 1, 1, tzinfo=UTC), queried_at=queried)
    old = OsmSignals(confidence=0.9, coverage=0.9, last_edit_at=datetime(2010, 1, 1, tzinfo=UTC), queried_at=queried)
    weak = OsmSignals(confidence=0.2, coverage=0.1, last_edit_at=datetime(2024, 1, 1, tzinfo=UTC), queried_at=queried)
    unknown = OsmSignals(confidence=0.9, coverage=0.9, last_edit_at=None, queried_at=queried)
    assert 0 <= osm_staleness(fresh) < osm_staleness(unknown) < osm_staleness(old) <= 1
    assert osm_staleness(fresh) < osm_staleness(weak) <= 1


def test_combination_with_osm_evidence_is_off_by_default_and_leaves_other_labels_alone():
    model = np.array([0.1, 0.8, 0.4])
    prior = np.array([0.9, np.nan, 0.0])  # NaN: a human label (or none), OSM's evidence does not apply
    assert combine_suspicion(model, prior, 0.0) == pytest.approx(model)
    mixed = combine_suspicion(model, prior, 0.5)
    assert mixed == pytest.approx([0.5, 0.8, 0.2])


def test_training_config_uses_the_cpu_rank_settings_and_lets_options_win():
    cpu = training_config(RankOptions(), "cpu")
    for name, value in CPU_RANK_SETTINGS.items():
        assert getattr(cpu, name) == value
    given = training_config(RankOptions(epochs=2, image_size=32, audio_width=4, seed=7, modality="image"), "cpu")
    assert (given.epochs, given.image_size, given.audio_width, given.seed, given.modality) == (2, 32, 4, 7, "image")
    gpu = training_config(RankOptions(), "cuda")
    assert (gpu.image_size, gpu.audio_width, gpu.epochs) == (256, 32, 6)
    paper = training_config(RankOptions(preset="paper"), "cpu")
    assert (paper.image_arch, paper.audio_arch, paper.epochs) == ("resnet101", "resnet50", 100)


def test_bad_options_are_refused_with_the_flag_named():
    with pytest.raises(TrainingError, match="--folds"):
        RankOptions(folds=1)
    with pytest.raises(TrainingError, match="--osm-weight"):
        RankOptions(osm_weight=1.5)
    with pytest.raises(TrainingError, match="preset"):
        training_config(RankOptions(preset="huge"), "cpu")


def _candidate(pair_id: int, label: SceneClass | None, origin: LabelSource | None, osm: OsmSignals | None = None):
    return RankCandidate(
        pair_id=pair_id,
        recording_id=pair_id,
        recording_source_id=f"rec-{pair_id}",
        origin=PairOrigin.ORIGINAL,
        osm_label=label.value if origin == LabelSource.OSM and label else None,
        current_label=label,
        label_origin=origin,
        image_path=f"images/{pair_id}.jpg",
        clip_path=f"clips/{pair_id}.wav",
        osm=osm,
    )


def test_score_pairs_suggests_the_argmax_and_mixes_osm_evidence_only_when_asked():
    queried = datetime(2025, 1, 1, tzinfo=UTC)
    stale_looking = OsmSignals(0.2, 0.1, datetime(2008, 1, 1, tzinfo=UTC), queried)
    forest, lake = SceneClass.FOREST, SceneClass.LAKE
    candidates = [
        _candidate(1, forest, LabelSource.OSM),
        _candidate(2, forest, LabelSource.OSM, stale_looking),
        _candidate(3, lake, LabelSource.HUMAN),
        _candidate(4, None, None),
    ]
    probs = np.zeros((4, len(CLASS_ORDER)))
    probs[0, forest.index], probs[0, lake.index] = 0.4, 0.6
    probs[1, forest.index], probs[1, lake.index] = 0.8, 0.2
    probs[2, forest.index], probs[2, lake.index] = 0.1, 0.9
    probs[3, forest.index], probs[3, lake.index] = 0.7, 0.3
    fold = np.array([0, 1, 0, 1])
    ranked = score_pairs(candidates, probs, fold)
    assert [p.pair_id for p in ranked] == [1, 4, 2, 3]  # suspicion 0.6, 0.3, 0.2, 0.1
    assert [p.rank for p in ranked] == [1, 2, 3, 4]
    first = ranked[0]
    assert (first.suggested_label, first.suggested_p, first.suspicion) == ("lake", pytest.approx(0.6), 0.6)
    assert first.flagged and not ranked[1].flagged
    assert ranked[1].current_label is None and ranked[1].suggested_label == "forest"
    # With OSM's evidence weighted in, the OSM label with weak, old evidence moves up; the human label does not.
    mixed = score_pairs(candidates, probs, fold, osm_weight=0.5)
    by_id = {p.pair_id: p for p in mixed}
    assert by_id[2].suspicion > 0.2 and by_id[2].rank < 3
    assert by_id[3].suspicion == pytest.approx(0.1)
