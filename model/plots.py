"""RUN_DIR/confusion.png and RUN_DIR/curves.png (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np


def _pyplot() -> ModuleType:
    """matplotlib.pyplot on the Agg backend (imported late: only training writes plots)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(metrics: dict[str, Any], path: Path, title: str = "Test confusion matrix") -> None:
    """Confusion matrix normalised per true class (each row sums to 1), a colour bar, the counts in the cells."""
    plt = _pyplot()
    cm = np.asarray(metrics["confusion_matrix"], dtype=float)
    names = metrics["classes"]
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    fig, ax = plt.subplots(figsize=(9, 8))
    shown = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", color="white" if share[i, j] > 0.5 else "black")
    ax.set_title(f"{title} (accuracy {metrics['accuracy']:.3f}, weighted F1 {metrics['weighted_f1']:.3f})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_curves(history: list[dict[str, Any]], path: Path, best_epoch: int | None = None) -> None:
    """Training and validation loss, and validation weighted F1, per (integer) epoch; the best epoch marked."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    epochs = [h["epoch"] for h in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, [h["train_loss"] for h in history], marker="o", label="training")
    if all("val_loss" in h for h in history):
        left.plot(epochs, [h["val_loss"] for h in history], marker="o", label="validation")
    left.set_ylabel("cross-entropy loss")
    left.legend()
    right.plot(epochs, [h["val_weighted_f1"] for h in history], marker="o", color="tab:green")
    right.set_ylabel("validation weighted F1")
    right.set_ylim(0, 1)
    for ax in (left, right):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if best_epoch is not None:
            ax.axvline(best_epoch, color="tab:red", linestyle="--", linewidth=1, label=f"best epoch ({best_epoch})")
    if best_epoch is not None:
        right.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
