"""Chapter 7: instruction finetuning on the book's 1,100 Alpaca-style records.

Steps, as in the book:
  1. load ../shared/data/instruction-data.json and split it 85% train / 10% test / 5% validation
     (in file order, as the book does: 935 / 110 / 55 records) (section 7.2)
  2. format each record with the Alpaca prompt and tokenize it (7.2-7.3)
  3. batch with the custom collate function: pad with <|endoftext|>, targets shifted by one,
     padding after the first <|endoftext|> ignored (-100) (7.3-7.4)
  4. finetune with AdamW on the next-token loss (7.6)
  5. generate answers for the test records and save them with the records (7.7), here with a
     simple word-overlap score (the book asks a larger LLM, Llama 3 via Ollama, to score them;
     that needs a local server this project does not assume) (7.8)

    python examples/ch07_instruct.py                         # a small GPT, a few minutes on 2 cores
    python examples/ch07_instruct.py --checkpoint gpt2/355M  # the book's run (GPT-2 medium):
                                                             #   hours on a CPU
    python examples/ch07_instruct.py --lora-rank 16          # appendix E: LoRA instead

What to expect: the book finetunes GPT-2 medium (355M parameters, pretrained on 40 GB of
text) and gets sensible answers. Without --checkpoint this script trains a small GPT from
scratch on the 935 training records only. It learns the prompt format quickly and emits the
"### Response:" header, short answers and the end-of-text token, but it cannot learn much
English from 50,000 tokens: most answers are fluent-looking guesses, right only for
formulaic records. That is the lesson of chapter 7: instruction finetuning teaches a
pretrained model to follow a format; the knowledge comes from pretraining. Flags
--train-limit, --epochs and --test-limit set the cost.
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np

import minigrad
from minigrad.optim import AdamW

from gpt import GPTModel, get_tokenizer
from gpt.finetune import (InstructionDataset, format_input, generate_test_responses,
                          load_instruction_data, replace_linear_with_lora, split_instruction_data,
                          train_instruct)
from gpt.finetune.instruct import calc_loss
from gpt.finetune.runs import load_base_model

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def word_f1(prediction: str, reference: str) -> float:
    """Overlap of the lower-cased words of two texts (harmonic mean of precision and recall)."""
    predicted = re.findall(r"\w+", prediction.lower())
    expected = re.findall(r"\w+", reference.lower())
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum(min(predicted.count(w), expected.count(w)) for w in set(predicted))
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(SHARED / "instruction-data.json"))
    parser.add_argument("--checkpoint", help="start from a `gpt train` run or a GPT-2 folder")
    parser.add_argument("--train-limit", type=int, default=None,
                        help="train on the first N training records only (default: all 935)")
    parser.add_argument("--test-limit", type=int, default=10, help="answer N test records (default 10)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="default 2 with --checkpoint (the book), 3 for the small model")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=None, help="default 5e-5 with --checkpoint (the book), else 1e-3")
    parser.add_argument("--emb-dim", type=int, default=128, help="width of the small model")
    parser.add_argument("--n-layers", type=int, default=4, help="blocks of the small model")
    parser.add_argument("--mask-prompt", action="store_true", help="leave the prompt out of the loss (exercise 7.2)")
    parser.add_argument("--lora-rank", type=int, default=None)
    parser.add_argument("--lora-alpha", type=float, default=16.0)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--out", default="runs/ch07/instruction-data-with-response.json",
                        help="where the test answers go (default: runs/ch07/instruction-data-with-response.json)")
    parser.add_argument("--seed", type=int, default=123)
    args = parser.parse_args(argv)
    minigrad.manual_seed(args.seed)
    started = time.time()

    # 1. data and the book's split
    data = load_instruction_data(args.data)
    train_data, val_data, test_data = split_instruction_data(data)
    print(f"{len(data)} records: {len(train_data)} train, {len(val_data)} validation, {len(test_data)} test")
    if args.train_limit:
        train_data = train_data[:args.train_limit]
        print(f"using the first {len(train_data)} training records (--train-limit)")
    test_data = test_data[:args.test_limit]
    print("\nA formatted record:\n" + format_input(data[50]) + f"\n\n### Response:\n{data[50]['output']}\n")

    # the model
    if args.checkpoint:
        model, tokenizer, description = load_base_model(args.checkpoint)
        print(f"base model: {description}")
        epochs, lr = args.epochs or 2, args.lr or 5e-5
    else:
        gpt2_files = SHARED / "gpt2"
        tokenizer = get_tokenizer("gpt2", gpt2_files) if gpt2_files.is_dir() else get_tokenizer("bytes")
        cfg = {"vocab_size": tokenizer.n_vocab, "context_length": 256, "emb_dim": args.emb_dim,
               "n_heads": 4, "n_layers": args.n_layers, "drop_rate": 0.0, "qkv_bias": False}
        model = GPTModel(cfg, generator=np.random.default_rng(args.seed))
        print(f"a small GPT from scratch ({model.num_parameters():,} parameters, tokenizer {tokenizer.name}): "
              f"expect the format to be learned, not the content (see the module docstring)")
        epochs, lr = args.epochs or 3, args.lr or 1e-3
    if args.lora_rank:
        replace_linear_with_lora(model, args.lora_rank, args.lora_alpha, generator=np.random.default_rng(args.seed))
    print(f"trainable parameters: {model.num_parameters(trainable_only=True):,} of {model.num_parameters():,}")

    # 2-3. datasets; batches are collated inside train_instruct
    allowed = min(1024, model.cfg["context_length"])
    train_ds = InstructionDataset(train_data, tokenizer, allowed)
    val_ds = InstructionDataset(val_data, tokenizer, allowed)
    options = {"pad_token_id": tokenizer.eot_id, "allowed_max_length": allowed, "mask_prompt": args.mask_prompt}
    print(f"Training loss: {calc_loss(train_ds, model, args.batch_size, 5, **options):.3f}  "
          f"Validation loss: {calc_loss(val_ds, model, args.batch_size, 5, **options):.3f}")

    # 4. finetune
    optimizer = AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.1)
    train_started = time.time()
    train_instruct(model, train_ds, val_ds, optimizer, epochs, batch_size=args.batch_size, eval_freq=25,
                   eval_iter=5, seed=args.seed, tokenizer=tokenizer, start_context=format_input(val_data[0]),
                   **options)
    print(f"Training completed in {(time.time() - train_started) / 60:.2f} minutes.")
    print(f"Validation loss: {calc_loss(val_ds, model, args.batch_size, None, **options):.3f}")

    # 5. answers for the test records
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    results = generate_test_responses(model, tokenizer, test_data, args.out, args.max_new_tokens,
                                      eos_id=tokenizer.eot_id)
    for entry in results[:3]:
        print("\n" + format_input(entry))
        print(f"\nCorrect response:\n>> {entry['output']}")
        print(f"\nModel response:\n>> {entry['model_response']}")
        print("-" * 40)
    scores = [word_f1(entry["model_response"], entry["output"]) for entry in results]
    exact = sum(entry["model_response"].strip() == entry["output"].strip() for entry in results)
    print(f"\n{len(results)} test answers written to {args.out}; word-overlap F1 {np.mean(scores):.2f}, "
          f"exact matches {exact}/{len(results)}; the whole run took {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
