"""`gpt plot DIR`: the train and validation loss curves of a run, from its metrics.jsonl, as a PNG
(the book's figure 5.12: losses against steps, with tokens seen on a second axis).

matplotlib is optional: `pip install "minigrad-gpt[plot]"` (or `pip install matplotlib`).
"""
from __future__ import annotations

from pathlib import Path

from .progress import read_metrics

INSTALL_HINT = 'pip install "minigrad-gpt[plot]"  (or: pip install matplotlib)'


class MatplotlibMissing(ImportError):
    """matplotlib is not installed; the message says how to install it."""


def loss_curves(records: list[dict]) -> dict:
    """{"log": (steps, losses), "train": (steps, losses), "val": (steps, losses)} from metrics records.

    "log" holds the running training loss of the progress lines (train mode); "train" and "val"
    the evaluated losses (eval mode, fixed batches).
    """
    curves = {"log": ([], []), "train": ([], []), "val": ([], [])}
    for record in records:
        step = record.get("step")
        if step is None:
            continue
        if "val_loss" in record:
            if isinstance(record.get("train_loss"), (int, float)):
                curves["train"][0].append(step)
                curves["train"][1].append(record["train_loss"])
            if isinstance(record["val_loss"], (int, float)):
                curves["val"][0].append(step)
                curves["val"][1].append(record["val_loss"])
        elif isinstance(record.get("train_loss"), (int, float)):
            curves["log"][0].append(step)
            curves["log"][1].append(record["train_loss"])
    return curves


def plot_run(run_dir, out=None) -> Path:
    """Draw `run_dir/metrics.jsonl` to `out` (default `run_dir/loss.png`); returns the path."""
    records = read_metrics(run_dir)  # FileNotFoundError when it is not a run folder
    try:
        import matplotlib  # optional (the plot extra): imported only by `gpt plot`

        matplotlib.use("Agg")  # files only, no display needed
        import matplotlib.pyplot as plt  # optional, as above
    except ImportError:
        raise MatplotlibMissing(f"plotting needs matplotlib, which is not installed: {INSTALL_HINT}") from None
    curves = loss_curves(records)
    if not any(curves[name][0] for name in curves):
        raise ValueError(f"{Path(run_dir) / 'metrics.jsonl'} holds no loss values to plot yet")
    out = Path(out) if out is not None else Path(run_dir) / "loss.png"
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if curves["log"][0]:
        ax.plot(*curves["log"], color="0.75", linewidth=1, label="training loss (running)")
    if curves["train"][0]:
        ax.plot(*curves["train"], marker="o", markersize=3, label="training loss (eval)")
    if curves["val"][0]:
        ax.plot(*curves["val"], marker="o", markersize=3, linestyle="--", label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (cross-entropy, nats/token)")
    ax.set_title(f"gpt train: {Path(run_dir).resolve().name}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
