"""`gpt plot DIR`: the train and validation loss curves of a run, from its metrics.jsonl, as a PNG
(the book's figure 5.12: losses against steps, with tokens seen on a second axis); for a run
trained with `--diagnostics N`, also `diagnostics.png` (see gpt.training.diagnostics): the
log10 update-to-data ratio of each weight matrix over the steps with the 1e-3 guide line, GELU
saturation per layer over the steps, and the GELU-input and gradient histograms of the last
diagnostics record.

matplotlib is optional: `pip install "minigrad-gpt[plot]"` (or `pip install matplotlib`).
"""
from __future__ import annotations

from pathlib import Path

from .diagnostics import diagnostics_records
from .progress import read_metrics

INSTALL_HINT = 'pip install "minigrad-gpt[plot]"  (or: pip install matplotlib)'


class MatplotlibMissing(ImportError):
    """matplotlib is not installed; the message says how to install it."""


X_AXES = {"step": ("step", "step"), "tokens": ("tokens_seen", "tokens seen"),  # --x: record key, axis label
          "examples": ("examples_seen", "examples seen")}


def default_x(records: list[dict]) -> str:
    """Finetuning runs (whose records count examples seen, as the book's chapters 6-7 plot) draw
    against examples seen; `gpt train` runs against steps."""
    return "examples" if any("examples_seen" in r for r in records) else "step"


def accuracy_curves(records: list[dict], x: str) -> dict:
    """{"train": (xs, accuracies), "val": (xs, accuracies)} of a classification run's epoch records."""
    key = X_AXES[x][0]
    curves = {"train": ([], []), "val": ([], [])}
    for record in records:
        for name in curves:
            value = record.get(f"{name}_acc")
            if isinstance(value, (int, float)) and record.get(key) is not None:
                curves[name][0].append(record[key])
                curves[name][1].append(value)
    return curves


def loss_curves(records: list[dict], x: str = "step") -> dict:
    """{"log": (xs, losses), "train": (xs, losses), "val": (xs, losses)} from metrics records, xs
    the steps (x="step") or the tokens seen (x="tokens", as the book's figure 5.12 also shows).

    "log" holds the running training loss of the progress lines (train mode); "train" and "val"
    the evaluated losses (eval mode, fixed batches).
    """
    key = X_AXES[x][0]
    curves = {"log": ([], []), "train": ([], []), "val": ([], [])}
    for record in records:
        step = record.get(key)
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


def _pyplot():
    try:
        import matplotlib  # optional (the plot extra): imported only by `gpt plot`

        matplotlib.use("Agg")  # files only, no display needed
        import matplotlib.pyplot as plt  # optional, as above
    except ImportError:
        raise MatplotlibMissing(f"plotting needs matplotlib, which is not installed: {INSTALL_HINT}") from None
    return plt


def plot_run(run_dir, out=None, x: str | None = None) -> Path:
    """Draw `run_dir/metrics.jsonl` to `out` (default `run_dir/loss.png`) against `x` ("step",
    "tokens" or "examples"; default: default_x), with the accuracy of a classification run
    beside the loss; returns the path."""
    records = read_metrics(run_dir)  # FileNotFoundError when it is not a run folder
    x = x or default_x(records)
    plt = _pyplot()
    curves = loss_curves(records, x)
    if not any(curves[name][0] for name in curves):
        if x != "step" and any(curve[0] for curve in loss_curves(records).values()):
            raise ValueError(f"{Path(run_dir) / 'metrics.jsonl'} records no {X_AXES[x][0]} (written by an "
                             f"older version): plot it against steps")
        raise ValueError(f"{Path(run_dir) / 'metrics.jsonl'} holds no loss values to plot yet")
    out = Path(out) if out is not None else Path(run_dir) / "loss.png"
    accuracy = accuracy_curves(records, x)
    if any(accuracy[name][0] for name in accuracy):
        fig, (ax, acc_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
        for name, style in (("train", "-"), ("val", "--")):
            acc_ax.plot(*accuracy[name], marker="o", markersize=3, linestyle=style,
                        label=f"{'training' if name == 'train' else 'validation'} accuracy")
        acc_ax.set(xlabel=X_AXES[x][1], ylabel="accuracy", title="accuracy after each epoch")
        acc_ax.grid(alpha=0.3)
        acc_ax.legend()
    else:
        fig, ax = plt.subplots(figsize=(7, 4.5))
    if curves["log"][0]:
        ax.plot(*curves["log"], color="0.75", linewidth=1, label="training loss (running)")
    if curves["train"][0]:
        ax.plot(*curves["train"], marker="o", markersize=3, label="training loss (eval)")
    if curves["val"][0]:
        ax.plot(*curves["val"], marker="o", markersize=3, linestyle="--", label="validation loss")
    ax.set_xlabel(X_AXES[x][1])
    ax.set_ylabel("loss (cross-entropy, nats/token)")
    ax.set_title(f"{'finetuning' if x == 'examples' else 'gpt train'}: {Path(run_dir).resolve().name}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def _histogram_line(ax, histogram: dict, label: str) -> None:
    lo, hi = histogram["range"]
    counts = histogram["counts"]
    width = (hi - lo) / len(counts)
    centers = [lo + (i + 0.5) * width for i in range(len(counts))]
    ax.plot(centers, counts, label=label)


def plot_diagnostics(run_dir, out=None) -> Path | None:
    """Draw the `--diagnostics` records of `run_dir/metrics.jsonl` to `out` (default
    `run_dir/diagnostics.png`); returns the path, or None when the run has no such records."""
    records = diagnostics_records(read_metrics(run_dir))
    if not records:
        return None
    plt = _pyplot()
    out = Path(out) if out is not None else Path(run_dir) / "diagnostics.png"
    last = records[-1]["diagnostics"]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    ratio_ax, saturation_ax, activation_ax, grad_ax = axes.ravel()
    steps = [r["step"] for r in records]
    weights = [name for name, h in last.get("histograms", {}).get("grad", {}).items()]
    for name in weights:
        ratios = [r["diagnostics"]["params"].get(name, {}).get("log10_update_to_data") for r in records]
        ratio_ax.plot(steps, [float("nan") if v is None else v for v in ratios], linewidth=1)
    ratio_ax.axhline(-3.0, color="black", linestyle="--", linewidth=1, label="1e-3 (guide)")
    ratio_ax.set(title="log10 update-to-data ratio, per weight matrix", xlabel="step",
                 ylabel="log10(|update| / |weight|)")
    ratio_ax.legend(loc="upper right")
    for name in last.get("layers", {}):
        values = [r["diagnostics"]["layers"].get(name, {}).get("gelu_saturation") for r in records]
        saturation_ax.plot(steps, [float("nan") if v is None else 100 * v for v in values], label=name)
    saturation_ax.set(title="GELU inputs beyond +-3 (%), per layer", xlabel="step", ylabel="%")
    saturation_ax.legend(fontsize=8)
    for name, histogram in last.get("histograms", {}).get("gelu_input", {}).items():
        stats = last["layers"].get(name, {})
        _histogram_line(activation_ax, histogram, f"{name} (std {stats.get('gelu_input_std') or 0:.2f})")
    activation_ax.set(title=f"GELU input histograms (step {records[-1]['step']})", xlabel="value",
                      ylabel="count")
    activation_ax.legend(fontsize=8)
    for name in weights:
        _histogram_line(grad_ax, last["histograms"]["grad"][name], name)
    grad_ax.set(title=f"gradient histograms of the weight matrices (step {records[-1]['step']})",
                xlabel="gradient", ylabel="count", yscale="symlog")
    if len(weights) <= 12:
        grad_ax.legend(fontsize=6)
    fig.suptitle(f"gpt train --diagnostics: {Path(run_dir).resolve().name}")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
