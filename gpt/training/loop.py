"""Pretraining a GPT (the book's chapter 5, section 5.2) with what nanoGPT users expect.

    from gpt import train, TrainConfig
    result = train(TrainConfig(out="runs/default"))        # the main job: `gpt train --out runs/default`
    result.model, result.tokenizer, result.val_loss

One optimizer step (`Trainer.train_step`):

    for each of grad_accum_steps micro-batches:        inputs, targets (B, T) from the loader
        loss = model(inputs, targets=targets)            cross_entropy(out_head(x), targets), fused
        loss = loss / grad_accum_steps;  loss.backward()  (the (B, T, V) logits never whole)
    world.average_gradients(params)                      one hook for data-parallel training (MPI)
    norm = world.grad_norm(params); lr from the schedule (minigrad.optim: warmup, then cosine)
    AdamW step with the gradients times clip_factor(norm) (clipping folded into the update;
    decoupled weight decay on matrices only); zero the gradients

Every `eval_every` steps the train and validation losses are estimated in eval mode (no
dropout) on fixed batches, with the perplexity exp(val_loss), and a sample is printed.
Checkpoints (gpt.training.checkpoint) hold everything the next step depends on: weights, AdamW
moments, the step, the loader's position and shuffling state, and the RNG state of dropout,
so `--resume` continues bit for bit as if never stopped. Ctrl-C (or SIGTERM) finishes the
current step, saves, and returns with `interrupted=True` (the command line exits with 130).

Data-parallel hooks: `world` (default `SingleProcess`) shards each global batch, averages
gradients and losses, and tells whether this process is rank 0, which alone logs and writes.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import minigrad
from minigrad import nn, optim, runtime

from ..model.generate import generate
from ..model.gpt_model import GPTModel
from . import checkpoint as ckpt, diagnostics
from .checkpoint_checks import check_same_data
from .config import PRESETS, TrainConfig
from .data import build_data, model_config_for
from .distributed import world_from_env
from .errors import TrainingError
from .evaluate import mean_loss
from .flops import estimate_mfu, peak_flops
from .interrupt import StopFlag
from .optimizer import learning_rate, parameter_groups
from .progress import MetricsLog, Progress, format_step_line
from .run_dir import RunFolder, held_run_folder, prepare_run_dir, resumed_config
from .world import SingleProcess


@dataclass
class TrainResult:
    """What `train` returns."""

    model: object                      # the GPTModel (train mode left off: eval())
    tokenizer: object
    step: int                          # optimizer steps done in total
    train_loss: float | None           # the last evaluated (eval-mode) train loss
    val_loss: float | None             # the last evaluated validation loss
    metrics: list = field(default_factory=list)  # every metrics.jsonl record
    interrupted: bool = False          # stopped by Ctrl-C (a checkpoint was saved when `out` is set)
    checkpoint: Path | None = None     # the checkpoint folder written last
    elapsed: float = 0.0               # training seconds (over all resumed sessions)
    sample: str | None = None          # the last sample text


# ------------------------------------------------------------------------------ the trainer
class Trainer:
    """Holds one run's model, optimizer, data and counters; `run()` trains to the end."""

    def __init__(self, config: TrainConfig, world=None, progress: Progress | None = None,
                 explicit: set | None = None, folder: RunFolder | None = None):
        self.world = world or SingleProcess()
        self.progress = progress or Progress(enabled=self.world.is_main and not config.quiet)
        config.validate()
        self.config = config
        self.run_dir = Path(config.out) if config.out else None
        self.folder = folder if folder is not None else RunFolder(self.run_dir, lock=False)
        checkpoint, self._replace_old_run = prepare_run_dir(config, self.run_dir, self.progress.line)
        if checkpoint is not None:  # resume: the stored config, with run-control fields from the caller
            config = resumed_config(checkpoint, config, explicit)
            self.config = config

        runtime.configure(threads=config.threads)  # threads, BLAS, memory reuse (minigrad.runtime)
        minigrad.random.manual_seed(config.seed)  # init and dropout draw from this generator

        # text -> tokenizer -> token ids -> windows -> loaders
        self.tokenizer = (ckpt.build_tokenizer(checkpoint, config.tokenizer_path)
                          if checkpoint is not None else None)
        self.data = build_data(config, self.tokenizer, self.progress)
        self.tokenizer = self.data.tokenizer
        self.model_config = model_config_for(config, self.tokenizer)
        if checkpoint is not None and checkpoint.model_config != self.model_config:
            raise ckpt.CheckpointError(
                f"checkpoint {checkpoint.path} holds a model with config {checkpoint.model_config}, "
                f"the run asks for {self.model_config}")

        self.model = GPTModel(self.model_config)
        self.model.train()
        self.parameters = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = optim.AdamW(
            parameter_groups(self.model, config.weight_decay), lr=config.resolved_lr(),
            betas=(config.beta1, config.beta2), weight_decay=config.weight_decay)

        # counters (restored on resume)
        self.step = 0
        self.elapsed_before = 0.0  # training seconds of earlier sessions of this run
        self.metrics = MetricsLog(self.run_dir, enabled=self.world.is_main)
        self.last_train_loss = self.last_val_loss = None
        self.last_sample = None
        if checkpoint is not None:
            self._restore(checkpoint)
        self.max_steps = self._max_steps()
        self.tokens_per_step = self.data.batch_size * config.grad_accum_steps * self.model_config["context_length"]
        self.peak = peak_flops()
        self._peak_refreshed = False
        self.world.setup(self)  # [mpi hook] ranks agree on config/data/weights; gradient buffer;
        # ZeRO-1 (the default under mpiexec) replaces self.optimizer with its sharded form

    # ---------------------------------------------------------------- run folder
    def _restore(self, checkpoint) -> None:
        ckpt.check_model_state(self.model, checkpoint.model_state, f"checkpoint {checkpoint.path}")
        check_same_data(checkpoint, self.data)  # a data file changed in place is an error
        self.model.load_state_dict(checkpoint.model_state)
        self.optimizer.load_state_dict(checkpoint.optimizer_state)
        state = checkpoint.state
        self.step = int(state["step"])  # step, loader, rng: checked by check_resumable
        self.elapsed_before = float(state.get("elapsed", 0.0))
        self.data.train_loader.load_state_dict(state["loader"])
        minigrad.random.set_state(state["rng"])
        self.metrics.records = [r for r in (state.get("metrics") or []) if r.get("step", 0) <= self.step]
        self.metrics.rewrite()  # drop lines logged after this checkpoint
        evals = [r for r in self.metrics.records if "val_loss" in r]
        if evals:
            self.last_train_loss = evals[-1].get("train_loss")
            self.last_val_loss = evals[-1]["val_loss"]

    def _max_steps(self) -> int:
        """Steps of the whole run: --max-steps, or --epochs worth, whichever is smaller."""
        config = self.config
        steps_per_epoch = max(self.data.batches_per_epoch // config.grad_accum_steps, 1)
        candidates = []
        if config.max_steps is not None:
            candidates.append(config.max_steps)
        if config.epochs is not None:
            candidates.append(max(int(math.ceil(config.epochs * steps_per_epoch)), 1))
        if not candidates:
            preset_steps = PRESETS.get(config.preset, {}).get("max_steps")
            candidates.append(preset_steps if preset_steps else steps_per_epoch)
        return min(candidates)

    # ---------------------------------------------------------------- one step
    def train_step(self) -> float:
        """One optimizer step on grad_accum_steps micro-batches; returns the mean loss."""
        config = self.config
        lr = learning_rate(self.step, config, self.max_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        watch = diagnostics.start(self.model, self.step + 1, config.diagnostics)  # None unless due
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging run is caught below
            total_loss = self._accumulate_gradients()
            # the data-parallel hook (MPI); diagnostics read the whole averaged gradient
            self.world.average_gradients(self.parameters, whole=watch is not None)
            if watch is not None:
                watch.gradients(self.model.named_parameters())
            norm = self.world.grad_norm(self.parameters)  # global (ZeRO-1: over every rank's block)
        if not math.isfinite(norm):
            self._diverged(f"the gradient norm is {norm}")
        # clip_grad_norm's scaling, applied inside the update (one pass over the gradients fewer)
        factor = nn.utils.clip_factor(norm, config.grad_clip) if config.grad_clip else 1.0
        self.optimizer.step(grad_factor=factor)
        self.optimizer.zero_grad()
        self.step += 1
        if watch is not None:
            self.metrics.write(step=self.step, diagnostics=watch.finish())
        return self.world.average(total_loss)

    def _accumulate_gradients(self) -> float:
        """Forward and backward of grad_accum_steps micro-batches; returns their mean loss."""
        accum = self.config.grad_accum_steps
        total_loss = 0.0
        for _ in range(accum):
            inputs, targets = self.world.shard(*self.data.next_train_batch())  # (B, T) each
            # the mean cross-entropy through the fused head (the (B, T, V) logits never whole)
            loss = self.model(inputs, targets=targets)
            value = float(loss.item())
            if not math.isfinite(value):
                self._diverged(f"the loss is {value}")
            if accum > 1:
                loss = loss / accum  # the step's gradient is the mean over the micro-batches
            loss.backward()
            total_loss += value / accum
        return total_loss

    def _diverged(self, what: str):
        self.optimizer.zero_grad()
        saved = (f"the last good checkpoint (step {self._saved_step}) is kept in "
                 f"{self.run_dir / ckpt.CHECKPOINT_DIR}" if self._saved_step is not None
                 else "no checkpoint had been written yet")
        raise TrainingError(f"training diverged at step {self.step + 1}: {what}; stopped, {saved}. "
                            f"Try a lower --lr (now {self.config.resolved_lr():g}) or --grad-clip.")

    # ---------------------------------------------------------------- evaluation
    def evaluate(self) -> tuple[float, float]:
        """(train loss, val loss) in eval mode on fixed batches (no dropout, no RNG used)."""
        self.model.eval()
        try:
            train_loss = mean_loss(self.model, self.data.eval_train_batches(self.config.eval_batches))
            val_loss = mean_loss(self.model, self.data.eval_val_batches(self.config.eval_batches))
        finally:
            self.model.train()
        return self.world.average(train_loss), self.world.average(val_loss)

    def sample(self) -> str | None:
        """A continuation of sample_prompt (seeded: the same at the same step, no RNG disturbed)."""
        config = self.config
        if not config.sample_tokens or not self.world.is_main:
            return None
        prompt_ids = self.tokenizer.encode(config.sample_prompt) or [self.tokenizer.eot_id]
        prompt_ids = prompt_ids[-self.model_config["context_length"]:]
        ids = generate(self.model, np.asarray([prompt_ids], dtype=np.int64), config.sample_tokens,
                       temperature=config.sample_temperature, top_k=config.sample_top_k,
                       seed=config.seed + self.step)
        return self.tokenizer.decode(ids[0].tolist())

    # ---------------------------------------------------------------- checkpoint
    _saved_step = None

    def save(self) -> Path | None:
        if self.run_dir is None:
            return None
        optimizer_state = self.optimizer.state_dict()  # [mpi hook] ZeRO-1: every rank sends its shard
        if not self.world.is_main:
            return None
        state = {
            "step": self.step,
            "epoch": self.data.epoch,
            "loader": self.data.train_loader.state_dict(),
            "rng": minigrad.random.get_state(),
            "data_sha256": self.data.content_sha256,  # what a resume must train on
            "elapsed": self.elapsed(),
            "metrics": self.metrics.records,
        }
        path = self.folder.save_checkpoint(self.model, self.tokenizer, self._saved_step, optimizer_state=optimizer_state,
                                           model_config=self.model_config, train_config=self.config.to_dict(),
                                           state=state)  # a full disk: one line naming the intact step
        self._saved_step = self.step
        return path

    def elapsed(self) -> float:
        return self.elapsed_before + (time.perf_counter() - self._session_start)

    # ---------------------------------------------------------------- the loop
    def run(self) -> TrainResult:
        config, progress = self.config, self.progress
        self._session_start = time.perf_counter()
        self._saved_step = self.step if config.resume else None
        start_step = self.step
        stop_at = min(self.max_steps, config.stop_at) if config.stop_at else self.max_steps
        if self._replace_old_run and self.world.is_main:  # --overwrite: the old run waits in
            self.folder.set_aside_old_run()  # .replaced-run/ until this run's first checkpoint
        self._announce(start_step)
        if self.step >= stop_at:
            progress.line(f"nothing to do: the run is at step {self.step} of {self.max_steps} "
                          f"(give a larger --max-steps or --epochs to train further)")
        interrupted = False
        checkpoint_path = None
        with StopFlag(progress) as stop:
            if start_step == 0 and not config.resume:
                self._evaluate_and_log(with_sample=False)
            interval_seconds, interval_steps, interval_loss = 0.0, 0, 0.0
            while self.step < stop_at:
                step_start = time.perf_counter()
                loss = self.train_step()
                stop.requested = self.world.any(stop.requested)  # [mpi hook] every rank stops at the same step
                interval_seconds += time.perf_counter() - step_start  # step time only: no eval/save
                interval_steps += 1
                interval_loss += loss
                done = self.step
                if done % config.log_every == 0 or done == stop_at or stop.requested:
                    self._log_progress(done, stop_at, start_step, interval_loss / interval_steps,
                                       interval_steps * self.tokens_per_step / max(interval_seconds, 1e-9))
                    interval_seconds, interval_steps, interval_loss = 0.0, 0, 0.0
                if stop.requested:
                    interrupted = True
                    break
                if done % config.eval_every == 0 or done == self.max_steps:
                    self._evaluate_and_log(with_sample=done < self.max_steps)  # the end has its own
                if done % config.save_every == 0 or done == stop_at:
                    checkpoint_path = self.save() or checkpoint_path
            if interrupted:
                checkpoint_path = self.save() or checkpoint_path
                where = f"; checkpoint saved in {checkpoint_path}" if checkpoint_path else ""
                progress.line(f"interrupted at step {self.step}{where}")
        if self.step >= self.max_steps and not interrupted:
            final = self.sample()
            if final is not None:
                self.last_sample = final
                progress.line(f"final sample (step {self.step}):\n{final}")
        progress.close()
        self.model.eval()
        return TrainResult(self.model, self.tokenizer, self.step, self.last_train_loss,
                           self.last_val_loss, self.metrics.records, interrupted, checkpoint_path,
                           self.elapsed(), self.last_sample)

    def _log_progress(self, done: int, stop_at: int, start_step: int, mean_loss: float,
                      tokens_per_s: float) -> None:
        """One progress line and one metrics.jsonl record."""
        config = self.config
        mfu = estimate_mfu(self.model_config, tokens_per_s, self.peak)
        if mfu > 1.0 and not self._peak_refreshed and self.world.is_main:  # peak measured on a busy machine
            self._peak_refreshed = True
            self.peak = max(self.peak, peak_flops(refresh=True))
            mfu = estimate_mfu(self.model_config, tokens_per_s, self.peak)
        session = time.perf_counter() - self._session_start
        eta = session / max(done - start_step, 1) * (stop_at - done)
        lr = learning_rate(done - 1, config, self.max_steps)  # the lr the last step used
        self.progress.step(format_step_line(done, self.max_steps, self.data.epoch, mean_loss, lr,
                                            tokens_per_s, mfu, self.elapsed(), eta))
        self.metrics.write(step=done, tokens_seen=done * self.tokens_per_step, epoch=self.data.epoch,
                           train_loss=mean_loss, lr=lr, tokens_per_s=tokens_per_s, mfu=mfu, elapsed=self.elapsed())

    def _announce(self, start_step: int) -> None:
        config, data, progress = self.config, self.data, self.progress
        n_params = sum(p.numel() for p in self.model.parameters())
        cfg = self.model_config
        verb = f"resuming at step {start_step}" if config.resume else "training"
        progress.line(f"{verb}: {n_params:,} parameters (emb {cfg['emb_dim']}, {cfg['n_layers']} layers, "
                      f"{cfg['n_heads']} heads, context {cfg['context_length']}, vocab {cfg['vocab_size']:,})")
        progress.line(f"data: {data.description}; {data.n_train_tokens:,} train / {data.n_val_tokens:,} val "
                      f"tokens, {data.batches_per_epoch:,} batches of {data.batch_size} per epoch; "
                      f"{self.max_steps:,} steps of {self.tokens_per_step:,} tokens")
        progress.line(f"peak matmul {self.peak / 1e9:.0f} GFLOP/s (measured); out: "
                      f"{self.run_dir if self.run_dir else '(nothing written)'}")

    def _evaluate_and_log(self, with_sample: bool) -> None:
        train_loss, val_loss = self.evaluate()
        self.last_train_loss, self.last_val_loss = train_loss, val_loss
        perplexity = math.exp(min(val_loss, 700.0))
        self.metrics.write(step=self.step, tokens_seen=self.step * self.tokens_per_step, epoch=self.data.epoch,
                           train_loss=train_loss, val_loss=val_loss, val_ppl=perplexity, elapsed=self.elapsed())
        self.progress.line(f"step {self.step}: train loss {train_loss:.4f}, val loss {val_loss:.4f}, "
                           f"val perplexity {perplexity:.2f}")
        if with_sample:
            text = self.sample()
            if text is not None:
                self.last_sample = text
                self.progress.line("sample: " + text.replace("\n", " "))  # on one line, as the book prints it


def train(config: TrainConfig | None = None, *, world=None, progress: Progress | None = None,
          explicit: set | None = None, **overrides) -> TrainResult:
    """Train a GPT as `config` says (keyword overrides change fields: `train(max_steps=100)`).

    world: data-parallel hooks (default: one process). explicit: the field names the user set
    (the command line passes them, so a resume compares only those with the checkpoint).
    """
    config = TrainConfig() if config is None else config
    if overrides:
        config = TrainConfig.from_dict({**config.to_dict(), **overrides})
    if world is None:  # [mpi hook] under `mpiexec -n N` (N > 1) an MPI world, else SingleProcess
        world = world_from_env()
    with world.guard():  # [mpi hook] an exception on any rank ends every rank (no hang)
        with held_run_folder(Path(config.out) if config.out else None, lock=world.is_main) as folder:
            return Trainer(config, world=world, progress=progress, explicit=explicit, folder=folder).run()
