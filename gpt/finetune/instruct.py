"""Instruction data for finetuning (the book's chapter 7, sections 7.2-7.3).

Alpaca-style prompts, the instruction dataset, the book's 85/10/5 split and its custom collate
function, which pads each batch to its longest entry with the end-of-text token and replaces
all but the first padding token of the targets by the ignore index -100 so the loss skips them.

    prompt   = format_input(entry)                  # instruction (+ input)
    full     = prompt + format_response(entry)      # ... + "\\n\\n### Response:\\n" + output
    inputs, targets = custom_collate_fn([ids_a, ids_b])      # (B, T) int64 arrays each
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from minigrad import Tensor, no_grad
from minigrad.nn import functional as F
from minigrad.nn.utils import clip_grad_norm
from minigrad.untrusted import read_json_file, shorten

from ..model.generate import generate
from ..training.data import DataError
from .batches import batch_indices
from .guards import check_finite_weights, check_loss

PROMPT_HEADER = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request."
)
RESPONSE_HEADER = "\n\n### Response:\n"


def format_input(entry: dict) -> str:
    """The book's Alpaca prompt: header, instruction and (when non-empty) the input."""
    instruction_text = f"{PROMPT_HEADER}\n\n### Instruction:\n{entry['instruction']}"
    input_text = f"\n\n### Input:\n{entry['input']}" if entry.get("input") else ""
    return instruction_text + input_text


def format_response(entry: dict) -> str:
    """The response part that follows the prompt during training: '\\n\\n### Response:\\n{output}'."""
    return f"{RESPONSE_HEADER}{entry['output']}"


def validate_records(data, require_output: bool = True) -> list[dict]:
    """Check a list of instruction records; errors name the record's index and the field.

    Each record is a dict with a string 'instruction', an optional string 'input' and (when
    `require_output`) a string 'output'.
    """
    if not isinstance(data, (list, tuple)):
        raise TypeError(f"instruction data must be a list of records, got a {type(data).__name__}"
                        + (f" (with the keys {shorten(sorted(map(str, data)))})" if isinstance(data, dict) else ""))
    required = ("instruction", "output") if require_output else ("instruction",)
    for index, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise TypeError(f"instruction record {index} is a {type(entry).__name__}, expected a dict "
                            f"with keys {list(required)} (and optionally 'input')")
        missing = [key for key in required if key not in entry]
        if missing:
            raise ValueError(f"instruction record {index} lacks the field(s) {missing} "
                             f"(it has {shorten(sorted(map(str, entry)))})")
        for key in (*required, "input"):
            if key in entry and entry[key] is not None and not isinstance(entry[key], str):
                raise TypeError(f"instruction record {index}: field {key!r} must be a string, "
                                f"got {type(entry[key]).__name__}")
        if not entry["instruction"].strip():
            raise ValueError(f"instruction record {index} has an empty 'instruction'")
    return list(data)


def load_instruction_data(path) -> list[dict]:
    """Read a JSON list of instruction records (the book's instruction-data.json) and validate it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"instruction data file not found: {path}")
    data = read_json_file(path, DataError)  # not UTF-8, too deeply nested, not JSON: DataError
    try:
        return validate_records(data)
    except (TypeError, ValueError) as error:
        raise DataError(f"{path}: {error}") from None


def split_instruction_data(data, train_frac: float = 0.85, test_frac: float = 0.10):
    """The book's split, in order and without shuffling: the first 85% train, the next 10% test,
    the remaining 5% validation. Returns (train, val, test)."""
    if not (0 < train_frac < 1 and 0 <= test_frac < 1 and train_frac + test_frac <= 1):
        raise ValueError(f"split fractions train={train_frac}, test={test_frac} must be in (0, 1) "
                         f"and add up to at most 1")
    train_portion = int(len(data) * train_frac)
    test_portion = int(len(data) * test_frac)
    train_data = data[:train_portion]
    test_data = data[train_portion:train_portion + test_portion]
    val_data = data[train_portion + test_portion:]
    return train_data, val_data, test_data


class InstructionDataset:
    """Pre-tokenized prompt + response texts (the book's InstructionDataset).

    `dataset[i]` is the list of token ids of record i; `dataset.prompt_lengths[i]` is the number
    of tokens of its prompt (format_input), used to mask the prompt out of the targets.
    With `allowed_max_length`, a prompt that does not leave room for one response token is an
    error naming the record (training on it would teach nothing).
    """

    def __init__(self, data, tokenizer, allowed_max_length: int | None = None):
        self.data = validate_records(data)
        self.encoded_texts: list[list[int]] = []
        self.prompt_lengths: list[int] = []
        for index, entry in enumerate(self.data):
            prompt = format_input(entry)
            prompt_ids = tokenizer.encode(prompt)
            full_ids = tokenizer.encode(prompt + format_response(entry))
            if allowed_max_length is not None and len(prompt_ids) >= allowed_max_length:
                raise ValueError(
                    f"instruction record {index}: the prompt has {len(prompt_ids)} tokens, "
                    f"not shorter than the allowed maximum length {allowed_max_length}"
                )
            self.encoded_texts.append(list(full_ids))
            self.prompt_lengths.append(len(prompt_ids))

    def __getitem__(self, index: int) -> list[int]:
        return self.encoded_texts[index]

    def __len__(self) -> int:
        return len(self.data)


def custom_collate_fn(batch, pad_token_id: int = 50256, ignore_index: int = -100,
                      allowed_max_length: int | None = None, mask_prompt: bool = False,
                      prompt_lengths=None):
    """The book's collate function (section 7.3) as NumPy.

    batch: a list of token-id lists. Each is extended by one `pad_token_id` (the end-of-text
    token) and padded with it to the batch's longest entry + 1; inputs = padded[:-1] and
    targets = padded[1:] (the next token at each position). In each row of targets every pad
    token after the first is replaced by `ignore_index`, so the model learns to emit one
    end-of-text and the loss ignores the rest. With `mask_prompt`, the targets that predict
    prompt tokens, targets[:prompt_length - 1], are also `ignore_index` (the book's exercise
    7.2; `prompt_lengths` gives each row's prompt length). Rows are then truncated to
    `allowed_max_length`.
    Returns (inputs, targets): int64 arrays of shape (B, T).
    """
    if len(batch) == 0:
        raise ValueError("custom_collate_fn: the batch is empty")
    if mask_prompt and prompt_lengths is None:
        raise ValueError("custom_collate_fn: mask_prompt=True needs prompt_lengths (one per row)")
    if prompt_lengths is not None and len(prompt_lengths) != len(batch):
        raise ValueError(f"custom_collate_fn: {len(prompt_lengths)} prompt lengths for a batch "
                         f"of {len(batch)} rows")
    if allowed_max_length is not None and allowed_max_length < 1:
        raise ValueError(f"custom_collate_fn: allowed_max_length must be >= 1, got {allowed_max_length}")
    batch_max_length = max(len(item) + 1 for item in batch)
    inputs_list, targets_list = [], []
    for row, item in enumerate(batch):
        padded = np.full(batch_max_length, pad_token_id, dtype=np.int64)  # (T + 1,)
        padded[:len(item)] = item
        inputs = padded[:-1].copy()   # (T,)
        targets = padded[1:].copy()   # (T,) shifted by one
        pad_positions = np.flatnonzero(targets == pad_token_id)
        if pad_positions.size > 1:
            targets[pad_positions[1:]] = ignore_index
        if prompt_lengths is not None:
            prompt_length = int(prompt_lengths[row])
            if allowed_max_length is not None and prompt_length >= allowed_max_length:
                raise ValueError(
                    f"custom_collate_fn: row {row}'s prompt has {prompt_length} tokens, not "
                    f"shorter than allowed_max_length {allowed_max_length}"
                )
            if mask_prompt:  # targets[i] predicts token i + 1: prompt tokens 1..L-1
                targets[:max(prompt_length - 1, 0)] = ignore_index
        if allowed_max_length is not None:
            inputs = inputs[:allowed_max_length]
            targets = targets[:allowed_max_length]
        inputs_list.append(inputs)
        targets_list.append(targets)
    return np.stack(inputs_list), np.stack(targets_list)  # (B, T), (B, T)


# ------------------------------------------------------------------------------ training
def collate_indices(dataset: InstructionDataset, index, pad_token_id: int = 50256,
                    ignore_index: int = -100, allowed_max_length: int | None = None,
                    mask_prompt: bool = False):
    """`custom_collate_fn` on the examples `index` of `dataset` (with their prompt lengths)."""
    return custom_collate_fn([dataset[i] for i in index], pad_token_id=pad_token_id,
                             ignore_index=ignore_index, allowed_max_length=allowed_max_length,
                             mask_prompt=mask_prompt,
                             prompt_lengths=[dataset.prompt_lengths[i] for i in index])


def calc_loss_batch(input_batch, target_batch, model, ignore_index: int = -100) -> Tensor:
    """Mean next-token cross-entropy over the targets that are not `ignore_index`:
    ids (B, T), targets (B, T) -> scalar Tensor."""
    logits = model(input_batch)  # (B, T, V)
    batch_size, num_tokens, vocab_size = logits.shape
    return F.cross_entropy(logits.reshape(batch_size * num_tokens, vocab_size),  # (B*T, V)
                           np.asarray(target_batch, dtype=np.int64).reshape(-1),  # (B*T,)
                           ignore_index=ignore_index)


def calc_loss(dataset, model, batch_size: int = 8, num_batches: int | None = None,
              **collate_options) -> float:
    """Mean loss over the first `num_batches` batches (all by default) of an InstructionDataset;
    NaN when it is empty. Builds no graph. Sequences are truncated to the model's context
    length unless `allowed_max_length` is shorter."""
    if len(dataset) == 0:
        return float("nan")
    context_length = model.cfg["context_length"]
    allowed = collate_options.get("allowed_max_length")
    collate_options = {**collate_options,
                       "allowed_max_length": context_length if allowed is None else min(allowed, context_length)}
    batches = list(batch_indices(len(dataset), batch_size))
    if num_batches is not None:
        batches = batches[:max(1, num_batches)]
    total = 0.0
    with no_grad():
        for index in batches:
            inputs, targets = collate_indices(dataset, index, **collate_options)
            total += calc_loss_batch(inputs, targets, model, collate_options.get("ignore_index", -100)).item()
    return total / len(batches)


def train_instruct(model, train_dataset, val_dataset, optimizer, num_epochs: int,
                   batch_size: int = 8, eval_freq: int = 5, eval_iter: int = 5,
                   pad_token_id: int = 50256, allowed_max_length: int | None = None,
                   mask_prompt: bool = False, grad_clip: float | None = None, seed: int = 123,
                   tokenizer=None, start_context: str | None = None, log=print) -> dict:
    """The book's `train_model_simple` on instruction batches: shuffled batches (the last
    incomplete one dropped) collated by `custom_collate_fn`, train/val loss on `eval_iter`
    batches every `eval_freq` steps, and (with a tokenizer and `start_context`) a greedy sample
    after each epoch. Returns {"train_losses", "val_losses", "tokens_seen", "steps"} and "records"
    for metrics.jsonl (step, examples_seen, tokens_seen, train_loss, val_loss per evaluation)."""
    rng = np.random.default_rng(seed)
    parameters = [param for param in model.parameters() if param.requires_grad]
    if not parameters:
        raise ValueError("train_instruct: no parameter requires grad (everything is frozen)")
    if len(train_dataset) < batch_size:
        raise ValueError(f"train_instruct: {len(train_dataset)} training records, fewer than one "
                         f"batch of {batch_size} (lower the batch size)")
    context_length = model.cfg["context_length"]
    if allowed_max_length is None or allowed_max_length > context_length:
        allowed_max_length = context_length  # the model cannot see more
    collate_options = {"pad_token_id": pad_token_id, "allowed_max_length": allowed_max_length,
                       "mask_prompt": mask_prompt}
    history = {"train_losses": [], "val_losses": [], "tokens_seen": [], "steps": 0, "records": []}
    tokens_seen, examples_seen, global_step = 0, 0, -1
    for epoch in range(num_epochs):
        model.train()
        for index in batch_indices(len(train_dataset), batch_size, shuffle=True, drop_last=True, rng=rng):
            inputs, targets = collate_indices(train_dataset, index, **collate_options)  # (B, T) each
            optimizer.zero_grad()
            loss = calc_loss_batch(inputs, targets, model)
            check_loss(loss.item(), global_step + 1, epoch)  # NaN: stop, save nothing
            loss.backward()
            if grad_clip:
                clip_grad_norm(parameters, grad_clip)
            optimizer.step()
            tokens_seen += inputs.size
            examples_seen += len(index)
            global_step += 1
            if eval_freq and global_step % eval_freq == 0:
                model.eval()
                train_loss = calc_loss(train_dataset, model, batch_size, eval_iter, **collate_options)
                val_loss = calc_loss(val_dataset, model, batch_size, eval_iter, **collate_options)
                model.train()
                history["train_losses"].append(train_loss)
                history["val_losses"].append(val_loss)
                history["tokens_seen"].append(tokens_seen)
                history["records"].append({"step": global_step + 1, "examples_seen": examples_seen,
                                           "tokens_seen": tokens_seen, "train_loss": train_loss, "val_loss": val_loss})
                if log:
                    log(f"Ep {epoch + 1} (Step {global_step:06d}): "
                        f"Train loss {train_loss:.3f}, Val loss {val_loss:.3f}")
        if log and tokenizer is not None and start_context:
            sample = generate_text(model, tokenizer, start_context, max_new_tokens=50,
                                   eos_id=pad_token_id)
            log(sample.replace("\n", " "))
    history["steps"] = global_step + 1
    model.eval()
    check_finite_weights(model.state_dict(), "train_instruct: after the last step")
    return history


# ------------------------------------------------------------------------------ responses
def generate_text(model, tokenizer, prompt: str, max_new_tokens: int = 256,
                  eos_id: int | None = None, temperature: float = 0.0, top_k: int | None = None,
                  seed: int | None = None) -> str:
    """The continuation of `prompt` (greedy by default), stopped at `eos_id` (not included)."""
    prompt_ids = np.asarray([tokenizer.encode(prompt)], dtype=np.int64)  # (1, T)
    context_length = model.cfg["context_length"]
    if prompt_ids.shape[1] >= context_length:
        raise ValueError(f"the prompt has {prompt_ids.shape[1]} tokens, the model's context length "
                         f"is {context_length}: no room for a response")
    max_new_tokens = min(max_new_tokens, context_length - prompt_ids.shape[1])
    token_ids = generate(model, prompt_ids, max_new_tokens=max_new_tokens, context_size=context_length,
                         temperature=temperature, top_k=top_k, eos_id=eos_id, seed=seed)
    new_ids = [int(i) for i in token_ids[0, prompt_ids.shape[1]:]]
    if eos_id is not None and eos_id in new_ids:
        new_ids = new_ids[:new_ids.index(eos_id)]
    return tokenizer.decode(new_ids)


def generate_response(model, tokenizer, entry: dict, max_new_tokens: int = 256,
                      eos_id: int | None = None) -> str:
    """The model's answer to one record, as the book extracts it: the text generated after the
    prompt, with '### Response:' removed and whitespace stripped."""
    if eos_id is None:
        eos_id = getattr(tokenizer, "eot_id", 50256)
    text = generate_text(model, tokenizer, format_input(entry), max_new_tokens, eos_id=eos_id)
    return text.replace("### Response:", "").strip()


def generate_test_responses(model, tokenizer, test_data, path=None, max_new_tokens: int = 256,
                            eos_id: int | None = None, log=None) -> list[dict]:
    """Each test record with its generated answer under "model_response" (the book's
    instruction-data-with-response.json); written as indented JSON to `path` when given."""
    results = []
    for number, entry in enumerate(validate_records(test_data, require_output=False)):
        record = dict(entry)
        record["model_response"] = generate_response(model, tokenizer, entry, max_new_tokens, eos_id)
        results.append(record)
        if log:
            log(f"[{number + 1}/{len(test_data)}] {record['model_response'][:70]!r}")
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as file:
            json.dump(results, file, indent=4)
    return results
