"""PNG plots of training curves and confusion matrices (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from jess_geo.io.atomic import atomic_output


def _plt():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Loss, accuracy/mIoU and (when logged) energies against epoch."""
    plt = _plt()
    keys = [("train_loss",), ("val_accuracy", "val_miou", "target_accuracy", "target_miou"), ("source_energy", "target_energy", "energy_gap")]
    panels = [k for k in keys if any(r.get(c) is not None for r in rows for c in k)]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, cols in zip(axes[0], panels):
        for c in cols:
            pts = [(r["epoch"], r[c]) for r in rows if r.get(c) is not None]
            if pts:
                ax.plot(*zip(*pts), marker=".", label=c)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def plot_confusion(cm: Sequence[Sequence[int]], names: Sequence[str], path: Path, title: str = "") -> None:
    """Row-normalised confusion matrix with counts' percentages."""
    plt = _plt()
    m = np.asarray(cm, dtype=float)
    norm = m / np.maximum(m.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(names), 0.8 + 0.6 * len(names)))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(names)):
        for j in range(len(names)):
            if m[i].sum() > 0:
                ax.text(j, i, f"{100 * norm[i, j]:.0f}", ha="center", va="center", fontsize=7, color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(title or "confusion matrix (% of true class)", fontsize=9)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
