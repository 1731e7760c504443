"""Metrics against a case computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from model.metrics import confusion_matrix, scores_from_confusion


def test_confusion_and_scores_match_a_hand_computed_case() -> None:
    # 3 classes. true: 0 0 0 1 1 2 ; pred: 0 0 1 1 2 2
    cm = confusion_matrix([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 2, 2], 3)
    assert cm.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    scores = scores_from_confusion(cm, ["a", "b", "c"])
    # class a: P 2/2, R 2/3, F1 0.8; b: P 1/2, R 1/2, F1 0.5; c: P 1/2, R 1, F1 2/3
    assert scores["accuracy"] == pytest.approx(4 / 6)
    assert scores["per_class"]["a"] == {
        "precision": 1.0,
        "recall": pytest.approx(2 / 3),
        "f1": pytest.approx(0.8),
        "support": 3,
    }
    assert scores["macro_precision"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert scores["macro_recall"] == pytest.approx((2 / 3 + 0.5 + 1) / 3)
    assert scores["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert scores["weighted_precision"] == pytest.approx((3 * 1 + 2 * 0.5 + 1 * 0.5) / 6)
    assert scores["weighted_recall"] == pytest.approx(4 / 6)
    assert scores["weighted_f1"] == pytest.approx((3 * 0.8 + 2 * 0.5 + 1 * 2 / 3) / 6)


def test_absent_classes_count_zero_and_stay_out_of_the_macro_average() -> None:
    cm = np.zeros((13, 13), dtype=np.int64)
    cm[0, 0], cm[1, 0] = 3, 1  # class 1 never predicted right; classes 2–12 absent
    scores = scores_from_confusion(cm)
    assert scores["per_class"]["beach"]["precision"] == 0.0
    assert scores["macro_recall"] == pytest.approx((1.0 + 0.0) / 2)
    assert scores["samples"] == 4 and len(scores["confusion_matrix"]) == 13


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError):
        confusion_matrix([0, 1], [0], 2)
