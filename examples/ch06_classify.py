"""Chapter 6: finetuning a GPT for classification, on data at hand.

The book finetunes GPT-2 to tell spam from ham SMS messages. Offline, we build a labelled set
ourselves: passages of Edith Wharton's "The Verdict" (../shared/data/the-verdict.txt) versus
passages of the Python documentation that ships with CPython (pydoc_data.topics). The task:
which text does a passage come from?

Steps, as in the book:
  1. a CSV-like list of (text, label), split 70/10/20 into train/validation/test (section 6.3)
  2. ClassificationDataset: token ids padded with <|endoftext|> to the longest passage (6.3)
  3. a GPT, with its 50,257-way output head replaced by a 2-way head (6.5)
  4. everything frozen except the last transformer block, the final LayerNorm and the head
  5. training with AdamW on the cross-entropy of the LAST token's logits (6.6-6.7)
  6. accuracy on the three splits (6.7), and classifying new text (6.8)

    python examples/ch06_classify.py                        # small model, pretrained here briefly
    python examples/ch06_classify.py --checkpoint gpt2/124M # OpenAI's GPT-2 (slow on a CPU)
    python examples/ch06_classify.py --csv my.csv           # your data: columns text,label
    python examples/ch06_classify.py --lora-rank 8          # appendix E: train LoRA matrices instead

Without --checkpoint a small GPT (4 layers, 128 wide) is pretrained for a few hundred steps on
the two texts (next-token prediction, no labels), so its features know the vocabulary of both;
the whole run takes a minute or two on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np

import minigrad
from minigrad.nn import functional as F
from minigrad.optim import AdamW

from gpt import GPTModel, create_dataloader, get_tokenizer
from gpt.finetune import (ClassificationDataset, add_classification_head, calc_accuracy, calc_loss,
                          classify_text, freeze_for_classification, label_names_of, random_split,
                          read_classification_file, replace_linear_with_lora, train_classifier)
from gpt.finetune.runs import load_base_model

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


# ------------------------------------------------------------------------------ 1. data
def passages(text: str, words_per_passage: int) -> list[str]:
    """Consecutive chunks of `words_per_passage` words (whitespace collapsed)."""
    words = text.split()
    return [" ".join(words[start:start + words_per_passage])
            for start in range(0, len(words) - words_per_passage + 1, words_per_passage)]


def build_dataset(words_per_passage: int, seed: int) -> tuple[list[dict], str]:
    """Balanced records {"text", "label"}: the-verdict passages vs Python-docs passages.
    Also returns the raw text of both (for the brief pretraining)."""
    verdict_text = (SHARED / "the-verdict.txt").read_text(encoding="utf-8")
    from pydoc_data.topics import topics

    docs_text = "\n".join(topics[name] for name in sorted(topics))
    docs_text = re.sub(r"\s+", " ", docs_text)
    verdict = passages(verdict_text, words_per_passage)
    docs = passages(docs_text, words_per_passage)
    rng = np.random.default_rng(seed)
    docs = [docs[i] for i in sorted(rng.choice(len(docs), size=len(verdict), replace=False))]
    records = [{"text": t, "label": "verdict"} for t in verdict] + [{"text": t, "label": "python-docs"} for t in docs]
    return records, verdict_text + "\n" + " ".join(docs)


# ------------------------------------------------------------------------------ 3. a base model
def pretrain_small_model(text: str, tokenizer, steps: int, seed: int, emb_dim: int = 64,
                         n_layers: int = 4, lr: float = 2e-3) -> GPTModel:
    """A small GPT trained briefly on `text` by next-token prediction (chapter 5 in miniature)."""
    cfg = {"vocab_size": tokenizer.n_vocab, "context_length": 128, "emb_dim": emb_dim, "n_heads": 4,
           "n_layers": n_layers, "drop_rate": 0.0, "qkv_bias": False}
    model = GPTModel(cfg, generator=np.random.default_rng(seed))
    if steps == 0:
        print("no pretraining (--pretrain-steps 0): finetuning a randomly initialized model")
        return model
    token_ids = np.asarray(tokenizer.encode(text), dtype=np.int64)
    loader = create_dataloader(token_ids, batch_size=8, max_length=64, stride=64, shuffle=True, seed=seed)
    optimizer = AdamW(list(model.parameters()), lr=lr, weight_decay=0.1)
    print(f"pretraining a {model.num_parameters():,}-parameter GPT for {steps} steps on "
          f"{len(token_ids):,} tokens (no labels)")
    started = time.time()
    model.train()
    for step in range(1, steps + 1):
        inputs, targets = loader.next_batch()  # (B, T) each
        optimizer.zero_grad()
        logits = model(inputs)  # (B, T, V)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        loss.backward()
        optimizer.step()
        if step % 50 == 0 or step == steps:
            print(f"  step {step:4d}  loss {loss.item():.3f}  ({time.time() - started:.0f} s)")
    return model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", help="your own CSV/TSV with columns text,label (default: build one)")
    parser.add_argument("--checkpoint", help="start from a `gpt train` run or a GPT-2 folder")
    parser.add_argument("--pretrain-steps", type=int, default=200, help="brief pretraining of the small model")
    parser.add_argument("--emb-dim", type=int, default=64, help="width of the small model")
    parser.add_argument("--n-layers", type=int, default=4, help="blocks of the small model")
    parser.add_argument("--words", type=int, default=20, help="words per passage of the built dataset")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=None,
                        help="AdamW learning rate (default 5e-5 for --checkpoint as the book, else 1e-3)")
    parser.add_argument("--trainable-blocks", type=int, default=1)
    parser.add_argument("--lora-rank", type=int, default=None, help="train LoRA matrices of this rank instead")
    parser.add_argument("--lora-alpha", type=float, default=16.0)
    parser.add_argument("--seed", type=int, default=123)
    args = parser.parse_args(argv)
    minigrad.manual_seed(args.seed)
    started = time.time()

    # 1. labelled records, split 70/10/20
    if args.csv:
        records, pretrain_text = read_classification_file(args.csv), None
    else:
        records, pretrain_text = build_dataset(args.words, args.seed)
        print(f"built {len(records)} passages of {args.words} words: the-verdict.txt vs Python docs")
    label_names = label_names_of(records)
    train_records, val_records, test_records = random_split(records, 0.7, 0.1, seed=args.seed)

    # 3. the base model and its tokenizer
    if args.checkpoint:
        model, tokenizer, description = load_base_model(args.checkpoint)
        print(f"base model: {description}")
    else:
        gpt2_files = SHARED / "gpt2"
        tokenizer = get_tokenizer("gpt2", gpt2_files) if gpt2_files.is_dir() else get_tokenizer("bytes")
        if pretrain_text is None:
            pretrain_text = " ".join(record["text"] for record in train_records)
        model = pretrain_small_model(pretrain_text, tokenizer, args.pretrain_steps, args.seed,
                                     args.emb_dim, args.n_layers)
    context_length = model.cfg["context_length"]

    # 2. datasets: pad to the longest training text (at most the context); val/test use that length
    train_ds = ClassificationDataset(train_records, tokenizer, label_names=label_names)
    max_length = min(train_ds.max_length, context_length)
    if max_length < train_ds.max_length:
        train_ds = ClassificationDataset(train_records, tokenizer, max_length, label_names=label_names)
    val_ds = ClassificationDataset(val_records, tokenizer, max_length, label_names=label_names)
    test_ds = ClassificationDataset(test_records, tokenizer, max_length, label_names=label_names)
    print(f"{len(train_ds)} train, {len(val_ds)} validation, {len(test_ds)} test examples of "
          f"{max_length} tokens; classes {label_names}")
    for record in train_records[:2]:
        print(f"  [{record['label']}] {record['text'][:90]}...")

    # 4. a new head, then freeze (or LoRA)
    add_classification_head(model, len(label_names), generator=np.random.default_rng(args.seed))
    if args.lora_rank:
        replace_linear_with_lora(model, args.lora_rank, args.lora_alpha, generator=np.random.default_rng(args.seed))
    else:
        freeze_for_classification(model, trainable_blocks=args.trainable_blocks)
    trainable = model.num_parameters(trainable_only=True)
    print(f"trainable parameters: {trainable:,} of {model.num_parameters():,}")
    print(f"before finetuning: train accuracy {calc_accuracy(train_ds, model) * 100:.1f}%, "
          f"validation {calc_accuracy(val_ds, model) * 100:.1f}%, loss {calc_loss(val_ds, model):.3f}")

    # 5. finetune
    lr = args.lr if args.lr is not None else (5e-5 if args.checkpoint else 1e-3)
    optimizer = AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.1)
    finetune_started = time.time()
    train_classifier(model, train_ds, val_ds, optimizer, args.epochs, batch_size=args.batch_size,
                     eval_freq=50, eval_iter=5, seed=args.seed)
    finetune_time = time.time() - finetune_started

    # 6. accuracy on all splits, and new text
    print(f"\nTraining accuracy:   {calc_accuracy(train_ds, model) * 100:.2f}%")
    print(f"Validation accuracy: {calc_accuracy(val_ds, model) * 100:.2f}%")
    print(f"Test accuracy:       {calc_accuracy(test_ds, model) * 100:.2f}%")
    print(f"finetuning took {finetune_time:.0f} s, the whole run {time.time() - started:.0f} s")
    if not args.csv:
        for text in ("The list of arguments is evaluated from left to right before the call.",
                     "She smiled at me across the drawing-room, and I thought of his pictures."):
            label, probs = classify_text(text, model, tokenizer, max_length, label_names=label_names)
            print(f"  {label:12s} p={probs.max():.2f}  {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
