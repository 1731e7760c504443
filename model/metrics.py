"""Classification metrics from a confusion matrix: accuracy, weighted and macro P/R/F1, per-class scores.

Written here (numpy only) instead of depending on scikit-learn; conventions follow scikit-learn's
``precision_recall_fscore_support``: a score whose denominator is zero counts as 0, weighted averages weight each
class by its support, and macro averages run over the classes that occur in the labels or the predictions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from annotator.vocabulary import CLASS_ORDER


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> np.ndarray:
    """Counts (num_classes, num_classes): rows are true classes, columns predicted ones."""
    true = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(y_pred, dtype=np.int64)
    if true.shape != pred.shape:
        raise ValueError(f"{true.size} labels but {pred.size} predictions")
    flat = np.bincount(true * num_classes + pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros_like(num, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def scores_from_confusion(cm: np.ndarray, class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """All the numbers of SPEC §9 from a confusion matrix, as plain JSON-ready types."""
    cm = np.asarray(cm, dtype=np.int64)
    names = list(class_names) if class_names is not None else [c.value for c in CLASS_ORDER]
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    precision = _safe_divide(tp, predicted)
    recall = _safe_divide(tp, support)
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    total = support.sum()
    present = (support > 0) | (predicted > 0)
    weights = support / total if total > 0 else np.zeros_like(support)

    def macro(values: np.ndarray) -> float:
        return float(values[present].mean()) if present.any() else 0.0

    return {
        "samples": int(total),
        "accuracy": float(tp.sum() / total) if total > 0 else 0.0,
        "weighted_precision": float((precision * weights).sum()),
        "weighted_recall": float((recall * weights).sum()),
        "weighted_f1": float((f1 * weights).sum()),
        "macro_precision": macro(precision),
        "macro_recall": macro(recall),
        "macro_f1": macro(f1),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(names, precision, recall, f1, support, strict=True)
        },
        "classes": names,
        "confusion_matrix": cm.tolist(),
    }


SUMMARY_KEYS = (
    "accuracy",
    "weighted_precision",
    "weighted_recall",
    "weighted_f1",
    "macro_precision",
    "macro_recall",
    "macro_f1",
)

#: The authors' reporting window: the best epoch (on validation) and the five after it.
REPORT_WINDOW = 6


def windowed_summary(
    history: Sequence[Mapping[str, Any]], best_epoch: int, prefix: str = "test_", window: int = REPORT_WINDOW
) -> dict[str, Any]:
    """Mean and standard deviation of each summary score over the best epoch and the `window` - 1 after it.

    The authors report test metrics this way (mean ± std over epochs best … best + 5) rather than at the single
    best epoch. `history` rows carry the per-epoch scores under ``prefix + key``; epochs the run did not reach
    (it stopped early or ran out of epochs) are left out, and ``epochs`` lists those used. The standard
    deviation is the population one (numpy's default, ddof 0).
    """
    rows = [h for h in history if best_epoch <= h["epoch"] < best_epoch + window and prefix + "accuracy" in h]
    summary: dict[str, Any] = {"epochs": [int(h["epoch"]) for h in rows]}
    for key in SUMMARY_KEYS:
        values = np.array([float(h[prefix + key]) for h in rows], dtype=np.float64)
        summary[key] = {
            "mean": float(values.mean()) if values.size else 0.0,
            "std": float(values.std()) if values.size else 0.0,
        }
    return summary
