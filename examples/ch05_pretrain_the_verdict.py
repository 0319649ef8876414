"""Chapter 5 of the book, "Pretraining on unlabeled data": the run of section 5.2, with minigrad.

    python examples/ch05_pretrain_the_verdict.py [--epochs 10] [--eval-freq 5] [--threads N]

The book's setting: GPT_CONFIG_124M with a context of 256 tokens (162M parameters, untied head),
AdamW (lr 4e-4, weight decay 0.1), batch size 2, 10 epochs over Edith Wharton's short story
"The Verdict" (../shared/data/the-verdict.txt, 5,145 GPT-2 tokens), split 90/10 by characters
into training and validation text, windows of 256 tokens with stride 256 (9 training batches
per epoch), seed 123. The loop is the book's `train_model_simple` written out with minigrad:
zero the gradients, loss of the batch, backward, optimizer step. After each epoch the losses
on the whole training and validation loaders are printed with a sample continuing "Every
effort moves you", and at the end the table of losses per epoch and the wall time.

What to expect (the book's run): the training loss falls from about 10 to under 1 while the
validation loss stays near 6.4: 5,000 tokens are far too few for 162M parameters, so the
model memorizes the story (section 5.2's discussion of overfitting).

The book's `eval_freq=5, eval_iter=5` evaluation every 5 steps is available with --eval-freq 5
(costs as much again as the training itself on this model); by default only the per-epoch
evaluation runs.
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

import minigrad
from minigrad import no_grad, optim
from minigrad.nn import functional as F
from gpt import GPT_CONFIG_124M, GPTModel, create_dataloader, generate, get_tokenizer
from gpt import text_to_token_ids, token_ids_to_text

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def calc_loss_batch(input_batch, target_batch, model):
    """Cross-entropy of one batch: logits (B, T, V) against the next tokens (B, T)."""
    logits = model(input_batch)  # (B, T, V)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target_batch.reshape(-1))  # (B*T, V), as the book


def calc_loss_loader(data_loader, model, num_batches=None):
    """Mean loss over the first `num_batches` batches of a loader (all of them by default)."""
    if len(data_loader) == 0:
        return float("nan")
    num_batches = len(data_loader) if num_batches is None else min(num_batches, len(data_loader))
    total_loss = 0.0
    data_loader.load_state_dict({"epoch": 0, "position": 0})  # from the start, in order
    for i, (input_batch, target_batch) in enumerate(data_loader):
        if i >= num_batches:
            break
        with no_grad():
            total_loss += calc_loss_batch(input_batch, target_batch, model).item()
    return total_loss / num_batches


def evaluate_model(model, train_eval_loader, val_loader, eval_iter=None):
    model.eval()
    train_loss = calc_loss_loader(train_eval_loader, model, num_batches=eval_iter)
    val_loss = calc_loss_loader(val_loader, model, num_batches=eval_iter)
    model.train()
    return train_loss, val_loss


def generate_and_print_sample(model, tokenizer, start_context, max_new_tokens=50):
    """Greedy continuation of start_context (the book's generate_text_simple), on one line."""
    encoded = text_to_token_ids(start_context, tokenizer)  # (1, T)
    token_ids = generate(model, encoded, max_new_tokens=max_new_tokens,
                         context_size=model.cfg["context_length"])
    print("   " + token_ids_to_text(token_ids, tokenizer).replace("\n", " "))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--eval-freq", type=int, default=0,
                        help="also evaluate every N steps on eval-iter batches, as the book's run (0: off)")
    parser.add_argument("--eval-iter", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads (default: all cores)")
    parser.add_argument("--data-dir", default=str(SHARED), help="folder with the-verdict.txt and gpt2/")
    args = parser.parse_args(argv)
    minigrad.runtime.configure(threads=args.threads)  # threads, BLAS, memory reuse

    data_dir = Path(args.data_dir)
    text_data = (data_dir / "the-verdict.txt").read_text(encoding="utf-8")
    tokenizer = get_tokenizer("gpt2", path=data_dir / "gpt2")
    print(f"the-verdict.txt: {len(text_data):,} characters, {len(tokenizer.encode(text_data)):,} tokens")

    config = {**GPT_CONFIG_124M, "context_length": 256}  # the book shortens the context to 256
    minigrad.manual_seed(123)
    model = GPTModel(config)
    model.train()
    print(f"model: {sum(p.numel() for p in model.parameters()):,} parameters")

    # 5.1.3: split the text 90/10 by characters, windows of 256 tokens, stride 256
    split_idx = int(0.90 * len(text_data))
    train_ids = tokenizer.encode_array(text_data[:split_idx])
    val_ids = tokenizer.encode_array(text_data[split_idx:])
    context = config["context_length"]
    train_loader = create_dataloader(train_ids, batch_size=2, max_length=context, stride=context,
                                     shuffle=True, drop_last=True, seed=123)
    train_eval_loader = create_dataloader(train_ids, batch_size=2, max_length=context, stride=context,
                                          shuffle=False, drop_last=True)
    val_loader = create_dataloader(val_ids, batch_size=2, max_length=context, stride=context,
                                   shuffle=False, drop_last=False)
    print(f"train: {len(train_ids):,} tokens, {len(train_loader)} batches; "
          f"validation: {len(val_ids):,} tokens, {len(val_loader)} batch(es)")

    optimizer = optim.AdamW(model.parameters(), lr=0.0004, weight_decay=0.1)

    # 5.2: train_model_simple
    start = time.perf_counter()
    table = []
    train_loss, val_loss = evaluate_model(model, train_eval_loader, val_loader)
    print(f"before training: train loss {train_loss:.3f}, val loss {val_loss:.3f}")
    tokens_seen, global_step = 0, -1
    for epoch in range(args.epochs):
        epoch_start = time.perf_counter()
        for input_batch, target_batch in train_loader:
            optimizer.zero_grad()
            loss = calc_loss_batch(input_batch, target_batch, model)
            loss.backward()
            optimizer.step()
            tokens_seen += input_batch.size
            global_step += 1
            if not args.eval_freq:  # a line per step: progress inside each epoch
                print(f"  Ep {epoch + 1} (Step {global_step:06d}): batch loss {loss.item():.3f}, "
                      f"{tokens_seen:,} tokens seen, {time.perf_counter() - start:.0f} s", flush=True)
            if args.eval_freq and global_step % args.eval_freq == 0:
                train_loss, val_loss = evaluate_model(model, train_eval_loader, val_loader, args.eval_iter)
                print(f"Ep {epoch + 1} (Step {global_step:06d}): "
                      f"Train loss {train_loss:.3f}, Val loss {val_loss:.3f}", flush=True)
        train_loss, val_loss = evaluate_model(model, train_eval_loader, val_loader)
        elapsed = time.perf_counter() - start
        table.append((epoch + 1, global_step, tokens_seen, train_loss, val_loss, elapsed))
        print(f"Ep {epoch + 1} (Step {global_step:06d}): Train loss {train_loss:.3f}, "
              f"Val loss {val_loss:.3f}  [{time.perf_counter() - epoch_start:.0f} s]", flush=True)
        generate_and_print_sample(model, tokenizer, "Every effort moves you")

    total = time.perf_counter() - start
    print("\n| epoch | step | tokens seen | train loss | val loss | val perplexity | elapsed |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for epoch, step, seen, train_loss, val_loss, elapsed in table:
        print(f"| {epoch} | {step} | {seen:,} | {train_loss:.3f} | {val_loss:.3f} | "
              f"{math.exp(val_loss):.1f} | {elapsed / 60:.1f} min |")
    print(f"\nTraining completed in {total / 60:.2f} minutes.")
    return table


if __name__ == "__main__":
    main()
