"""Training-curve plots."""

from __future__ import annotations

from pathlib import Path

from .io import atomic_write


def plot_training_curve(history: list[dict], path: Path, title: str = "") -> None:
    """Loss (log scale) and PSNR against step; evaluation points marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [h for h in history if "loss" in h]
    evals = [h for h in history if "eval" in h and "psnr" in h["eval"]]
    if not evals and not any("psnr" in h for h in train):  # SDF fits log no PSNR
        fig, ax_loss = plt.subplots(figsize=(6, 3.6))
        ax_loss.semilogy([h["step"] for h in train], [h["loss"] for h in train])
        ax_loss.set(xlabel="step", ylabel="training loss")
        ax_loss.grid(alpha=0.3)
        fig.suptitle(title)
        save_figure(fig, path)
        return
    fig, (ax_loss, ax_psnr) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax_loss.semilogy([h["step"] for h in train], [h["loss"] for h in train])
    ax_loss.set(xlabel="step", ylabel="training loss")
    if any("psnr" in h for h in train):
        ax_psnr.plot([h["step"] for h in train], [h.get("psnr") for h in train],
                     label="batch PSNR", alpha=0.7)
    if evals:
        ax_psnr.plot([h["step"] for h in evals], [h["eval"]["psnr"] for h in evals], "o-",
                     label="eval PSNR")
    ax_psnr.set(xlabel="step", ylabel="PSNR (dB)")
    ax_psnr.legend(loc="lower right")
    for ax in (ax_loss, ax_psnr):
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    save_figure(fig, path)


def save_figure(fig, path: Path) -> None:
    """Lay out ``fig``, write it atomically as a PNG at ``path`` and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    atomic_write(Path(path), lambda p: fig.savefig(p, dpi=100, format="png"))
    plt.close(fig)
