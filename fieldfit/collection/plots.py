"""Classifier plots: the confusion matrix and the training curve."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..plots import save_figure


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(confusion: np.ndarray, classes: list[str], path: Path, title: str) -> None:
    """(k, k) counts, rows = true class, columns = predicted, each cell annotated."""
    plt = _pyplot()
    k = len(classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * k, 0.8 + 0.5 * k))
    ax.imshow(confusion, cmap="Blues")
    for (i, j), count in np.ndenumerate(confusion):
        if count:
            ax.text(j, i, str(count), ha="center", va="center", fontsize=8,
                    color="white" if count > confusion.max() / 2 else "black")
    ax.set_xticks(range(k), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(k), classes, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    save_figure(fig, path)


def plot_classifier_curve(history: list[dict], path: Path, title: str) -> None:
    """Training loss (log scale) and test accuracy against epoch."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax_loss.semilogy(epochs, [h["loss"] for h in history])
    ax_loss.set(xlabel="epoch", ylabel="training loss (cross-entropy)")
    ax_acc.plot(epochs, [h["test_accuracy"] for h in history])
    ax_acc.set(xlabel="epoch", ylabel="test accuracy", ylim=(0, 1.02))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    save_figure(fig, path)
