"""Finetuning a GPT for classification (the book's chapter 6).

The output head (emb_dim -> vocab_size) is replaced by a small one (emb_dim -> num_classes),
everything but the last transformer block, the final norm and the new head is frozen, and the
class is read from the logits of the LAST token: with causal attention it is the only position
that has seen the whole text (section 6.6). Texts are padded on the right with the
end-of-text token (50256 for GPT-2) to one length, so the last position may be a pad token, as
in the book.

    records = read_classification_file("spam.csv")            # columns text,label
    train, val, test = random_split(records, 0.7, 0.1)
    train_ds = ClassificationDataset(train, tokenizer, label_names=label_names_of(records))
    add_classification_head(model, train_ds.num_classes)
    freeze_for_classification(model, trainable_blocks=1)
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from minigrad import Tensor, nn, no_grad
from minigrad.nn import functional as F
from minigrad.nn.utils import clip_grad_norm
from minigrad.untrusted import short_repr, shorten

from ..training.data import DataError
from .batches import batch_indices
from .guards import check_finite_weights, check_loss

DEFAULT_PAD_TOKEN_ID = 50256  # GPT-2's <|endoftext|>
MAX_CLASSES = 10_000  # integer labels 0..K-1 make K classes: a label of 10**9 is an error


# ------------------------------------------------------------------------------ data
def read_classification_file(path) -> list[dict]:
    """Read a CSV (comma) or TSV (tab; `.tsv`/`.tab`) file with a header naming the columns
    `text` and `label` (any case, any order, other columns ignored).
    Returns records {"text", "label", "where"} where `where` names the file and line.
    A file that is not UTF-8, a field over the csv module's limit (131,072 characters) or a
    NUL byte is a DataError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"classification data file not found: {path}")
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    records = []
    with open(path, encoding="utf-8", newline="") as file:
        reader = csv.reader(file, delimiter=delimiter)
        try:
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path} is empty; expected a header with the columns text and label")
            columns = [name.strip().lower() for name in header]
            if "text" not in columns or "label" not in columns:
                raise DataError(f"{path}: the header {short_repr(header)} must name the columns 'text' "
                                f"and 'label' (separated by {'a tab' if delimiter == chr(9) else 'commas'})")
            text_col, label_col = columns.index("text"), columns.index("label")
            for row in reader:
                where = f"{path.name} line {reader.line_num}"
                if not row or all(not cell.strip() for cell in row):
                    continue  # blank line
                if len(row) <= max(text_col, label_col):
                    raise DataError(f"{where}: expected at least {max(text_col, label_col) + 1} "
                                    f"columns, got {len(row)}: {short_repr(row)}")
                records.append({"text": row[text_col], "label": row[label_col].strip(), "where": where})
        except csv.Error as error:  # a field over csv.field_size_limit(), a NUL byte, ...
            raise DataError(f"{path} line {reader.line_num}: not readable as "
                            f"{'TSV' if delimiter == chr(9) else 'CSV'}: {shorten(error)}") from None
        except UnicodeDecodeError as error:
            raise DataError(f"{path}: not UTF-8 text ({shorten(error)}), near line "
                            f"{reader.line_num + 1}") from None
    if not records:
        raise DataError(f"{path} has a header but no rows")
    return records


def write_classification_file(records, path) -> None:
    """Write records {"text", "label"} as a CSV (or TSV for a .tsv path) with a header."""
    path = Path(path)
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    with open(path, "w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file, delimiter=delimiter)
        writer.writerow(["text", "label"])
        for record in records:
            writer.writerow([record["text"], record["label"]])


def _as_record(item, index: int) -> dict:
    if isinstance(item, dict):
        if "text" not in item or "label" not in item:
            raise ValueError(f"record {index} needs the keys 'text' and 'label', it has {sorted(item)}")
        return {"text": item["text"], "label": item["label"], "where": item.get("where", f"record {index}")}
    if isinstance(item, (tuple, list)) and len(item) == 2:
        return {"text": item[0], "label": item[1], "where": f"record {index}"}
    raise TypeError(f"record {index}: expected a dict {{'text', 'label'}} or a (text, label) pair, "
                    f"got {type(item).__name__}")


def _is_int_label(label) -> bool:
    if isinstance(label, (bool, np.bool_)):
        return False
    if isinstance(label, (int, np.integer)):
        return True
    return isinstance(label, str) and label.strip().lstrip("-").isdigit()


def _label_value(label) -> int:
    """An integer label's value; over 18 digits it is only compared with MAX_CLASSES anyway."""
    text = str(label).strip()
    return int(text) if len(text) <= 18 else (10 ** 18 if not text.startswith("-") else -1)


def label_names_of(records) -> list[str]:
    """The class names of a set of records: for integer labels 0..K-1 the strings '0'..'K-1'
    (K = largest label + 1, at most MAX_CLASSES); for names, the sorted distinct names."""
    records = [_as_record(item, i) for i, item in enumerate(records)]
    if not records:
        raise DataError("no records to take class labels from")
    if all(_is_int_label(record["label"]) for record in records):
        values = [_label_value(record["label"]) for record in records]
        low, high = min(values), max(values)
        if low < 0:
            where = records[values.index(low)]["where"]
            raise DataError(f"{where}: integer class labels must be >= 0, got {short_repr(records[values.index(low)]['label'])}")
        if high >= MAX_CLASSES:
            where = records[values.index(high)]["where"]
            raise DataError(f"{where}: integer label {shorten(records[values.index(high)]['label'], 30)} "
                            f"is not below the limit of {MAX_CLASSES:,} classes (integer labels are "
                            f"class ids 0..K-1); use class names or smaller ids")
        return [str(i) for i in range(high + 1)]
    names = sorted({str(record["label"]).strip() for record in records})
    if len(names) > MAX_CLASSES:
        raise DataError(f"{len(names):,} distinct class names, more than the limit of {MAX_CLASSES:,}")
    return names


class ClassificationDataset:
    """Texts and class ids, tokenized and padded to one length (the book's SpamDataset).

    source:       a CSV/TSV path (see `read_classification_file`) or a list of records
                  ({"text", "label"} dicts or (text, label) pairs).
    tokenizer:    anything with `encode(str) -> list[int]`.
    max_length:   pad or truncate every text to this many tokens; None pads to the longest.
    pad_token_id: the padding token; default the tokenizer's `eot_id`, else 50256.
    label_names:  the classes (index = class id); default `label_names_of(source)`. Give the
                  training set's names to the validation and test sets. A label may be a class
                  name or an integer id; one outside the classes is an error naming the row.

    `dataset[i]` is (token_ids (max_length,) int64, label int); `dataset.input_ids` is the
    whole (N, max_length) array and `dataset.labels` the (N,) class ids.
    """

    def __init__(self, source, tokenizer, max_length: int | None = None,
                 pad_token_id: int | None = None, label_names=None):
        if isinstance(source, (str, Path)):
            records = read_classification_file(source)
        else:
            records = [_as_record(item, i) for i, item in enumerate(source)]
        if not records:
            raise ValueError("ClassificationDataset: no records")
        if pad_token_id is None:
            pad_token_id = getattr(tokenizer, "eot_id", None)
            pad_token_id = DEFAULT_PAD_TOKEN_ID if pad_token_id is None else pad_token_id
        self.pad_token_id = int(pad_token_id)
        self.label_names = list(label_names) if label_names is not None else label_names_of(records)
        self.num_classes = len(self.label_names)
        label_ids = {name: index for index, name in enumerate(self.label_names)}

        labels, encoded = [], []
        for record in records:
            text, label, where = record["text"], record["label"], record["where"]
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"{where}: the text is empty")
            key = str(_label_value(label)) if _is_int_label(label) else str(label).strip()
            if key not in label_ids:
                raise DataError(f"{where}: label {short_repr(label)} is not one of the {self.num_classes} "
                                f"classes {shorten(self.label_names)}")
            labels.append(label_ids[key])
            encoded.append(list(tokenizer.encode(text)))
        self.texts = [record["text"] for record in records]
        self.labels = np.asarray(labels, dtype=np.int64)  # (N,)

        if max_length is None:
            max_length = max(len(ids) for ids in encoded)
        if max_length < 1:
            raise ValueError(f"ClassificationDataset: max_length must be >= 1, got {max_length}")
        self.max_length = int(max_length)
        self.input_ids = np.full((len(encoded), self.max_length), self.pad_token_id, dtype=np.int64)
        for row, ids in enumerate(encoded):
            ids = ids[:self.max_length]  # truncate
            self.input_ids[row, :len(ids)] = ids  # (N, max_length), right-padded

    def __getitem__(self, index: int):
        return self.input_ids[index], int(self.labels[index])

    def __len__(self) -> int:
        return len(self.labels)


def random_split(records, train_frac: float = 0.7, val_frac: float = 0.1, seed: int = 123):
    """Shuffle with `seed` and split into (train, val, test) as the book does (70/10/20)."""
    if not (0 < train_frac < 1 and 0 <= val_frac < 1 and train_frac + val_frac <= 1):
        raise ValueError(f"split fractions train={train_frac}, val={val_frac} must be in (0, 1) "
                         f"and add up to at most 1")
    records = list(records)
    order = np.random.default_rng(seed).permutation(len(records))
    shuffled = [records[i] for i in order]
    train_end = int(len(records) * train_frac)
    val_end = train_end + int(len(records) * val_frac)
    return shuffled[:train_end], shuffled[train_end:val_end], shuffled[val_end:]


# ------------------------------------------------------------------------------ model
def add_classification_head(model, num_classes: int, generator=None):
    """Replace `model.out_head` (emb_dim -> vocab_size) by Linear(emb_dim, num_classes) with a
    bias (the book's `torch.nn.Linear(768, 2)`), initialized like PyTorch from `generator`
    (default: minigrad.random's). A head tied to the token embedding is untied by this.
    Returns the model (changed in place)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ValueError(f"add_classification_head: num_classes must be an integer >= 2, got {num_classes!r}")
    emb_dim = model.cfg["emb_dim"]
    dtype = model.tok_emb.weight.dtype
    model.out_head = nn.Linear(emb_dim, int(num_classes), bias=True, dtype=dtype, generator=generator)
    return model


def freeze_for_classification(model, trainable_blocks: int = 1, train_final_norm: bool = True,
                              train_head: bool = True) -> list[str]:
    """Freeze every parameter, then unfreeze the last `trainable_blocks` transformer blocks
    (0 .. n_layers), the final LayerNorm and the output head, as the book's section 6.5 does
    (one block). Returns the names of the trainable parameters."""
    n_layers = len(model.trf_blocks)
    if isinstance(trainable_blocks, bool) or not isinstance(trainable_blocks, (int, np.integer)) \
            or not 0 <= trainable_blocks <= n_layers:
        raise ValueError(f"freeze_for_classification: trainable_blocks must be between 0 and the "
                         f"model's {n_layers} blocks, got {trainable_blocks!r}")
    model.requires_grad_(False)
    for index in range(n_layers - int(trainable_blocks), n_layers):
        model.trf_blocks[index].requires_grad_(True)
    if train_final_norm:
        model.final_norm.requires_grad_(True)
    if train_head:
        model.out_head.requires_grad_(True)
    return [name for name, param in model.named_parameters() if param.requires_grad]


def classification_logits(model, input_ids) -> Tensor:
    """Class logits (B, num_classes) from the output at the LAST position of (B, T) ids."""
    return model(input_ids)[:, -1, :]  # (B, T, K) -> (B, K)


def calc_loss_batch(input_batch, target_batch, model) -> Tensor:
    """Mean cross-entropy of a batch: ids (B, T), class ids (B,) -> scalar Tensor."""
    logits = classification_logits(model, input_batch)  # (B, K)
    return F.cross_entropy(logits, np.asarray(target_batch, dtype=np.int64))


def _eval_batches(dataset, batch_size: int, num_batches: int | None):
    if len(dataset) == 0:
        return []
    batches = list(batch_indices(len(dataset), batch_size))
    return batches if num_batches is None else batches[:max(1, num_batches)]


def calc_loss(dataset, model, batch_size: int = 8, num_batches: int | None = None) -> float:
    """Mean loss over the first `num_batches` batches of `dataset` (all by default); NaN for an
    empty dataset. Builds no graph."""
    batches = _eval_batches(dataset, batch_size, num_batches)
    if not batches:
        return float("nan")
    total = 0.0
    with no_grad():
        for index in batches:
            total += calc_loss_batch(dataset.input_ids[index], dataset.labels[index], model).item()
    return total / len(batches)


def predict(model, input_ids, batch_size: int = 8) -> np.ndarray:
    """Class probabilities (N, K) for ids (N, T), in eval mode and without a graph."""
    input_ids = np.asarray(input_ids)
    was_training = model.training
    model.eval()
    try:
        parts = []
        with no_grad():
            for index in batch_indices(len(input_ids), batch_size):
                logits = classification_logits(model, input_ids[index]).data  # (B, K)
                logits = logits - logits.max(axis=-1, keepdims=True)
                probs = np.exp(logits)
                parts.append(probs / probs.sum(axis=-1, keepdims=True))
    finally:
        model.train(was_training)
    return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)


def calc_accuracy(dataset, model, batch_size: int = 8, num_batches: int | None = None) -> float:
    """Fraction of correctly classified examples in the first `num_batches` batches (all by
    default), in eval mode; NaN for an empty dataset."""
    batches = _eval_batches(dataset, batch_size, num_batches)
    if not batches:
        return float("nan")
    index = np.concatenate(batches)
    predicted = predict(model, dataset.input_ids[index], batch_size).argmax(axis=-1)  # (N,)
    return float((predicted == dataset.labels[index]).mean())


# ------------------------------------------------------------------------------ training
def train_classifier(model, train_dataset, val_dataset, optimizer, num_epochs: int,
                     batch_size: int = 8, eval_freq: int = 50, eval_iter: int = 5,
                     grad_clip: float | None = None, seed: int = 123, log=print) -> dict:
    """The book's `train_classifier_simple`: epochs over shuffled batches (the last incomplete
    batch dropped), the train/val loss on `eval_iter` batches every `eval_freq` steps, and the
    train/val accuracy after each epoch.
    Returns {"train_losses", "val_losses", "train_accs", "val_accs", "examples_seen", "steps"}, and
    for metrics.jsonl "records": one per evaluation (step, examples_seen, train_loss, val_loss) and
    one per epoch (epoch, examples_seen, train_acc, val_acc)."""
    rng = np.random.default_rng(seed)
    parameters = [param for param in model.parameters() if param.requires_grad]
    if not parameters:
        raise ValueError("train_classifier: no parameter requires grad (everything is frozen)")
    if len(train_dataset) < batch_size:
        raise ValueError(f"train_classifier: {len(train_dataset)} training examples, fewer than one "
                         f"batch of {batch_size} (lower --batch-size)")
    history = {"train_losses": [], "val_losses": [], "train_accs": [], "val_accs": [],
               "examples_seen": 0, "steps": 0, "records": []}
    global_step = -1
    for epoch in range(num_epochs):
        model.train()
        for index in batch_indices(len(train_dataset), batch_size, shuffle=True, drop_last=True, rng=rng):
            optimizer.zero_grad()
            loss = calc_loss_batch(train_dataset.input_ids[index], train_dataset.labels[index], model)
            check_loss(loss.item(), global_step + 1, epoch)  # NaN: stop, save nothing
            loss.backward()
            if grad_clip:
                clip_grad_norm(parameters, grad_clip)
            optimizer.step()
            history["examples_seen"] += len(index)
            global_step += 1
            if eval_freq and global_step % eval_freq == 0:
                model.eval()
                train_loss = calc_loss(train_dataset, model, batch_size, eval_iter)
                val_loss = calc_loss(val_dataset, model, batch_size, eval_iter)
                model.train()
                history["train_losses"].append(train_loss)
                history["val_losses"].append(val_loss)
                history["records"].append({"step": global_step + 1, "examples_seen": history["examples_seen"],
                                           "train_loss": train_loss, "val_loss": val_loss})
                if log:
                    log(f"Ep {epoch + 1} (Step {global_step:06d}): "
                        f"Train loss {train_loss:.3f}, Val loss {val_loss:.3f}")
        train_accuracy = calc_accuracy(train_dataset, model, batch_size, eval_iter)
        val_accuracy = calc_accuracy(val_dataset, model, batch_size, eval_iter)
        history["train_accs"].append(train_accuracy)
        history["val_accs"].append(val_accuracy)
        history["records"].append({"epoch": epoch + 1, "examples_seen": history["examples_seen"],
                                   "train_acc": train_accuracy, "val_acc": val_accuracy})
        if log:
            log(f"Training accuracy: {train_accuracy * 100:.2f}% | "
                f"Validation accuracy: {val_accuracy * 100:.2f}%")
    history["steps"] = global_step + 1
    model.eval()
    check_finite_weights(model.state_dict(), "train_classifier: after the last step")
    return history


def classify_text(text: str, model, tokenizer, max_length: int | None = None,
                  pad_token_id: int | None = None, label_names=None):
    """Classify one text (the book's `classify_review`): tokenize, truncate to `max_length`
    (and the model's context), pad to `max_length`, read the last position.
    Returns (label name (or class id when no names are given), probabilities (K,))."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("classify_text: the text is empty")
    if pad_token_id is None:
        pad_token_id = getattr(tokenizer, "eot_id", None)
        pad_token_id = DEFAULT_PAD_TOKEN_ID if pad_token_id is None else pad_token_id
    context_length = model.cfg["context_length"]
    ids = list(tokenizer.encode(text))
    length = context_length if max_length is None else min(max_length, context_length)
    ids = ids[:length]
    if max_length is not None:
        ids = ids + [pad_token_id] * (length - len(ids))
    probs = predict(model, np.asarray([ids], dtype=np.int64))[0]  # (K,)
    class_id = int(np.argmax(probs))
    label = label_names[class_id] if label_names is not None else class_id
    return label, probs
