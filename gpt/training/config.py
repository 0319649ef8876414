"""`TrainConfig`: every setting of a training run, with model presets.

One dataclass, one comment per field; the command line (`gpt train --help`) sets the same
fields. A run's config is stored in its checkpoint, so `--resume` continues with it.
"""
from __future__ import annotations

import math

import dataclasses
from dataclasses import dataclass

from ..model.config import GPT2_CONFIGS, GPT_CONFIG_124M

# Model presets: width, depth, heads and context (the vocabulary comes from the tokenizer).
# "default" is the main job's model: trained by `gpt train` with no options in a few minutes
# on 2 CPU cores. A preset may also set the batch size, the dropout and `max_steps` (the step
# budget when neither --max-steps nor --epochs is given); explicit flags override all of these.
# The default's numbers were chosen by validation loss on the default corpus (116k training
# tokens of bpe:2048), measured here with 4 layers, context 128, batch 16: at lr 1e-3 a
# 128-wide model reached 4.95 in 800 steps, 192 wide 4.83 (without dropout its validation
# loss rose again after ~500 steps: the model memorizes the small corpus); at lr 2e-3 and
# dropout 0.1 the 192-wide model reaches 4.83 in 400 steps and 4.81 in 500 (lr 3e-3 or
# dropout 0.2 no better), 6 layers of 192 with dropout 0.2 4.79, and 256 wide with dropout
# 0.2 4.76 in 400 steps (about 3 minutes on 2 idle cores): the default.
PRESETS = {
    "tiny": {"emb_dim": 32, "n_layers": 2, "n_heads": 2, "context_length": 16},  # tests, seconds
    "default": {"emb_dim": 256, "n_layers": 4, "n_heads": 4, "context_length": 128,
                "max_steps": 400, "batch_size": 16, "dropout": 0.2, "lr": 2e-3},
    "small": {"emb_dim": 256, "n_layers": 4, "n_heads": 4, "context_length": 256},  # the benchmarks' "small"
    "124M": {key: GPT_CONFIG_124M[key] for key in ("emb_dim", "n_layers", "n_heads")}
    | {"context_length": 256, "lr": 4e-4},  # the book's chapter-5 setting (GPT_CONFIG_124M, context 256)
}
# OpenAI's four sizes, trained from scratch: "gpt2-small", "gpt2-medium", ... with the peak
# learning rates the GPT-3 paper (table 2.1) used for models of these sizes.
_GPT2_LR = {"gpt2-small": 6e-4, "gpt2-medium": 3e-4, "gpt2-large": 2.5e-4, "gpt2-xl": 2e-4}
for _name, _cfg in GPT2_CONFIGS.items():
    _short = _name.split(" ")[0]
    PRESETS[_short] = {key: _cfg[key] for key in ("emb_dim", "n_layers", "n_heads", "context_length")}
    PRESETS[_short]["lr"] = _GPT2_LR[_short]
del _name, _cfg, _short

SCHEDULES = ("cosine", "book", "constant")  # learning-rate schedules (gpt.training.loop.learning_rate)

MODEL_FIELDS = ("emb_dim", "n_layers", "n_heads", "context_length", "dropout", "qkv_bias")

# Fields that may differ when a run is resumed: they steer the run, not what it computes
# (changing max_steps or epochs changes the schedule from there on; that is allowed).
RUN_CONTROL_FIELDS = ("out", "resume", "overwrite", "max_steps", "epochs", "stop_at", "log_every",
                      "eval_every", "eval_batches", "save_every", "sample_prompt", "sample_tokens",
                      "sample_temperature", "sample_top_k", "threads", "quiet", "diagnostics",
                      "cache_beside_data", "zero_stage")


@dataclass
class TrainConfig:
    # ---- data
    data: list[str] | None = None        # text files or folders to train on; None: the embedded default corpus
    tokenizer: str = "bpe:2048"          # "bytes", "gpt2" or "bpe:N" (a BPE of N tokens trained on the data)
    tokenizer_path: str | None = None    # gpt2: folder with GPT-2's tokenizer files; bpe:N: a saved BPE (not trained then)
    val_fraction: float = 0.1            # share of the text held out for validation (the book: 0.1)
    stride: int | None = None            # step between training windows; None: the context length (no overlap)
    cache_beside_data: bool = False      # keep the token cache beside the text, not in $GPT_CACHE_DIR

    # ---- model (None: from the preset)
    preset: str = "default"              # a name in PRESETS; the fields below override it
    emb_dim: int | None = None           # embedding width
    n_layers: int | None = None          # transformer blocks
    n_heads: int | None = None           # attention heads (must divide emb_dim)
    context_length: int | None = None    # tokens per window and positions of the model
    dropout: float | None = None         # drop_rate of the model; None: the preset's, else 0 (the book: 0.1)
    qkv_bias: bool = False               # biases on the query/key/value projections

    # ---- optimization
    batch_size: int | None = None        # windows per step (global batch; the preset's, else 8)
    grad_accum_steps: int = 1            # micro-batches summed into one optimizer step
    lr: float | None = None              # peak learning rate of AdamW; None: the preset's, else 1e-3
    min_lr: float | None = None          # floor of the cosine decay; None: lr / 10
    warmup_steps: int = 100              # linear warmup to lr (cosine: capped at a tenth of the run)
    schedule: str = "cosine"             # "cosine" (nanoGPT's warmup, then cosine to min_lr), "book"
                                         # (appendix D: warmup from initial_lr, then cosine), "constant"
    initial_lr: float | None = None      # "book": the lr of the first warmup step; None: lr / 10
    weight_decay: float = 0.1            # AdamW decoupled weight decay, on matrices only (not biases/norms)
    beta1: float = 0.9                   # AdamW first-moment decay
    beta2: float = 0.95                  # AdamW second-moment decay (nanoGPT; the book uses 0.999)
    grad_clip: float | None = 1.0        # clip the global gradient norm to this; None or 0: no clipping
    max_steps: int | None = None         # optimizer steps; None: from epochs, else the preset's budget
    epochs: float | None = None          # passes over the training windows (stops at whichever comes first)
    seed: int = 123                      # seeds init, dropout and shuffling: same seed, same run

    # ---- evaluation, logging, checkpoints
    eval_every: int = 100                # evaluate train/val loss (and print a sample) every N steps
    eval_batches: int = 20               # batches per loss estimate (val: at most the whole split)
    log_every: int = 10                  # one progress line every N steps
    diagnostics: int = 0                 # activation/gradient statistics into metrics.jsonl every N steps; 0: off
    save_every: int = 500                # write a checkpoint every N steps (and at the end, and on Ctrl-C)
    sample_prompt: str = "The"           # prompt of the samples printed at each evaluation
    sample_tokens: int = 60              # new tokens per sample
    sample_temperature: float = 0.8      # sampling temperature (0: greedy)
    sample_top_k: int | None = 40        # top-k filtering of samples

    # ---- the run
    out: str | None = None               # run folder (checkpoint/, metrics.jsonl); None: write nothing
    resume: bool = False                 # continue the run in `out` from its checkpoint
    overwrite: bool = False              # replace a run already in `out`
    stop_at: int | None = None           # stop (and save) after this step, keeping max_steps' schedule
    threads: int | None = None           # BLAS threads; None: the library's default
    zero_stage: int = 1                  # under mpiexec: 1 = ZeRO-1 (each rank keeps and updates 1/N of
                                         # AdamW), 0 = every rank runs all of AdamW; no effect in one process
    quiet: bool = False                  # print nothing (metrics.jsonl is still written)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """Build from a stored dict, ignoring keys this version does not know."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})

    def resolved_model_dims(self) -> dict:
        """emb_dim, n_layers, n_heads and context_length from the preset and the overrides."""
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        preset = PRESETS[self.preset]
        dims = {}
        for key in ("emb_dim", "n_layers", "n_heads", "context_length"):
            value = getattr(self, key)
            dims[key] = preset[key] if value is None else value
        return dims

    def resolved_batch_size(self) -> int:
        if self.batch_size is not None:
            return self.batch_size
        return PRESETS.get(self.preset, {}).get("batch_size", 8)

    def resolved_lr(self) -> float:
        if self.lr is not None:
            return float(self.lr)
        return float(PRESETS.get(self.preset, {}).get("lr", 1e-3))

    def resolved_initial_lr(self) -> float:
        """The book schedule's starting lr (initial_lr, else a tenth of the peak as in appendix D)."""
        return self.resolved_lr() / 10 if self.initial_lr is None else float(self.initial_lr)

    def resolved_dropout(self) -> float:
        if self.dropout is not None:
            return float(self.dropout)
        return float(PRESETS.get(self.preset, {}).get("dropout", 0.0))

    def model_config(self, vocab_size: int) -> dict:
        """The GPTModel config dict (the book's seven keys)."""
        dims = self.resolved_model_dims()
        return {"vocab_size": int(vocab_size), "context_length": dims["context_length"],
                "emb_dim": dims["emb_dim"], "n_heads": dims["n_heads"], "n_layers": dims["n_layers"],
                "drop_rate": self.resolved_dropout(), "qkv_bias": bool(self.qkv_bias)}

    def validate(self) -> None:
        """Clear errors for values that cannot work (before anything is loaded)."""
        self.resolved_model_dims()
        for key, value in self.to_dict().items():  # NaN passes every comparison below
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{key} must be a finite number, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2 ** 32:
            raise ValueError(f"seed must be an integer between 0 and 2**32 - 1, got {self.seed!r}")
        positive = ["grad_accum_steps", "eval_every", "eval_batches", "log_every", "save_every"]
        positive += [key for key in ("emb_dim", "n_layers", "n_heads", "context_length", "batch_size",
                                     "max_steps", "stride", "threads", "stop_at")
                     if getattr(self, key) is not None]
        for key in positive:
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive integer, got {value!r}")
        if isinstance(self.diagnostics, bool) or not isinstance(self.diagnostics, int) or self.diagnostics < 0:
            raise ValueError(f"diagnostics must be a number of steps >= 0 (0: off), got {self.diagnostics!r}")
        if self.epochs is not None and not self.epochs > 0:
            raise ValueError(f"epochs must be positive, got {self.epochs!r}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be between 0 and 1, got {self.val_fraction!r}")
        if not 0.0 <= self.resolved_dropout() < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        lr = self.resolved_lr()
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr!r}")
        if self.min_lr is not None and not 0 <= self.min_lr <= lr:
            raise ValueError(f"min_lr must be between 0 and lr={lr}, got {self.min_lr!r}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps!r}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.grad_clip is not None and self.grad_clip < 0:
            raise ValueError(f"grad_clip must be >= 0, got {self.grad_clip!r}")
        if self.zero_stage not in (0, 1):
            raise ValueError(f"zero_stage must be 0 (off) or 1 (ZeRO-1: optimizer state sharded over the "
                             f"MPI ranks), got {self.zero_stage!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.initial_lr is not None and not 0 <= self.initial_lr <= lr:
            raise ValueError(f"initial_lr must be between 0 and lr={lr}, got {self.initial_lr!r}")
        if self.sample_tokens < 0:
            raise ValueError(f"sample_tokens must be >= 0, got {self.sample_tokens!r}")
        if self.sample_temperature < 0:
            raise ValueError(f"sample_temperature must be >= 0, got {self.sample_temperature!r}")
        if self.resume and self.overwrite:
            raise ValueError("resume and overwrite exclude each other: resume continues the run in "
                             "the folder, overwrite replaces it")
        dims = self.resolved_model_dims()
        if dims["emb_dim"] % dims["n_heads"]:
            raise ValueError(f"emb_dim {dims['emb_dim']} is not divisible by n_heads {dims['n_heads']}")


def config_differences(saved: TrainConfig, given: TrainConfig, explicit: set | None = None) -> list:
    """Fields (outside RUN_CONTROL_FIELDS) where `given` differs from `saved`.

    explicit: when given, only these field names are compared (what the user actually set).
    """
    differences = []
    for f in dataclasses.fields(TrainConfig):
        if f.name in RUN_CONTROL_FIELDS or (explicit is not None and f.name not in explicit):
            continue
        if getattr(saved, f.name) != getattr(given, f.name):
            differences.append((f.name, getattr(saved, f.name), getattr(given, f.name)))
    return differences


__all__ = ["TrainConfig", "PRESETS", "config_differences"]
