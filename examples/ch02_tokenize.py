"""Chapter 2 of the book, "Working with text data", with this project's code.

Run:  python examples/ch02_tokenize.py        (a few seconds, no network)

1. a regex tokenizer over words (sections 2.2-2.3: the idea, and why it breaks on new words)
2. byte-level tokens: every text is a sequence of UTF-8 bytes (ids 0..255, <|endoftext|> = 256)
3. byte-pair encoding: GPT-2's (section 2.5) from ../shared/data/gpt2 when present, and one
   trained from scratch on the default corpus (the appendix's "BPE from scratch")
4. input-target windows with a sliding window (section 2.6): max_length 4, stride 1, then batches
5. token embeddings + absolute positional embeddings (sections 2.7-2.8)
"""
from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
import gpt  # noqa: E402
import minigrad  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def section(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)))


# --- the text ------------------------------------------------------------------------------
verdict_path = SHARED / "the-verdict.txt"
if verdict_path.exists():
    raw_text = gpt.load_text(verdict_path)
    print(f"the-verdict.txt: {len(raw_text):,} characters")
else:
    raw_text = gpt.default_corpus_text()[:20_000]
    print(f"{verdict_path} not found; using 20,000 characters of the default corpus instead")
print(repr(raw_text[:99]))

# --- 1. a regex tokenizer ------------------------------------------------------------------
section("1. a simple regex tokenizer (sections 2.2-2.3)")
words = [w for w in re.split(r'([,.:;?_!"()\']|--|\s)', raw_text) if w.strip()]
vocab = {word: i for i, word in enumerate(sorted(set(words)) + ["<|endoftext|>", "<|unk|>"])}
print(f"{len(words):,} word tokens, a vocabulary of {len(vocab):,} (plus <|endoftext|> and <|unk|>)")
sample = "Hello, do you like tea?"
ids = [vocab.get(w, vocab["<|unk|>"]) for w in re.split(r'([,.:;?_!"()\']|--|\s)', sample) if w.strip()]
print(f"{sample!r} -> {ids}: unknown words all become <|unk|>; byte-level BPE avoids this")

# --- 2. bytes -------------------------------------------------------------------------------
section("2. byte tokens")
byte_tokenizer = gpt.get_tokenizer("bytes")
text = "Akwirw ier, naïve café 😀"
ids = byte_tokenizer.encode(text)
print(f"{byte_tokenizer}: {text!r} -> {len(ids)} ids {ids[:12]}...")
assert byte_tokenizer.decode(ids) == text

# --- 3. BPE ---------------------------------------------------------------------------------
section("3. byte-pair encoding (section 2.5)")
try:
    gpt2 = gpt.get_tokenizer("gpt2", path=SHARED / "gpt2" if (SHARED / "gpt2").exists() else None)
except gpt.TokenizerNotFoundError as error:
    print(str(error).splitlines()[0])
    gpt2 = None
if gpt2 is not None:
    text = "Hello, do you like tea? <|endoftext|> In the sunlit terraces of someunknownPlace."
    ids = gpt2.encode(text)
    print(f"{gpt2}\n{text!r}\n -> {ids}")
    print(" pieces:", [gpt2.decode([i]) for i in ids])
    print(f"the-verdict.txt -> {len(gpt2.encode(raw_text)):,} GPT-2 tokens")

corpus = gpt.default_corpus_text()
start = time.perf_counter()
bpe = gpt.train_bpe(corpus, 1024)
seconds = time.perf_counter() - start
print(f"\ntrained {bpe.name} on the default corpus ({len(corpus):,} characters) in {seconds:.2f} s")
print(" its first merges:", [bpe.decode([i]) for i in range(256, 272)])
ids = bpe.encode(raw_text)
print(f"the-verdict.txt -> {len(ids):,} tokens of {bpe.name} "
      f"({len(raw_text.encode('utf-8')) / len(ids):.2f} bytes per token)")
assert bpe.decode(ids) == raw_text

# --- 4. sliding windows ---------------------------------------------------------------------
section("4. input-target pairs with a sliding window (section 2.6)")
tokenizer = gpt2 or bpe
token_ids = tokenizer.encode_array(raw_text)  # (T,) uint16
enc_sample = token_ids[50:]
dataset = gpt.SlidingWindowDataset(enc_sample, max_length=4, stride=1)
inputs, targets = dataset[0]
print(f"x: {inputs.tolist()}\ny:      {targets.tolist()}")
for i in range(1, 5):
    context, desired = inputs[:i], inputs[i] if i < 4 else targets[-1]
    print(f"{tokenizer.decode(context)!r:>32} ---> {tokenizer.decode([desired])!r}")

loader = gpt.create_dataloader(token_ids, batch_size=8, max_length=4, stride=4, shuffle=False)
x, y = next(iter(loader))
print(f"\nbatch_size 8, max_length 4, stride 4: {len(loader)} batches; inputs (8, 4):\n{x}\ntargets:\n{y}")

# --- 5. embeddings --------------------------------------------------------------------------
section("5. token and positional embeddings (sections 2.7-2.8)")
minigrad.random.manual_seed(123)
output_dim, context_length = 256, 4
rng = np.random.default_rng(123)
token_embedding = minigrad.Tensor(rng.standard_normal((tokenizer.n_vocab, output_dim), dtype=np.float32), requires_grad=True)
pos_embedding = minigrad.Tensor(rng.standard_normal((context_length, output_dim), dtype=np.float32), requires_grad=True)
try:
    from minigrad.nn.functional import embedding  # the fused lookup kernel, when present

    token_embeddings = embedding(x, token_embedding)          # (8, 4, 256)
    pos_embeddings = embedding(np.arange(context_length), pos_embedding)  # (4, 256)
except ImportError:
    token_embeddings = token_embedding[x]                      # (8, 4, 256): row lookup by indexing
    pos_embeddings = pos_embedding[np.arange(context_length)]  # (4, 256)
input_embeddings = token_embeddings + pos_embeddings           # (8, 4, 256), broadcast over the batch
print(f"token embeddings {token_embeddings.shape} + positional {pos_embeddings.shape} -> input embeddings {input_embeddings.shape}")
input_embeddings.sum().backward()
rows_used = np.flatnonzero(np.abs(token_embedding.grad).sum(axis=1))
print(f"a backward pass reaches only the {len(rows_used)} embedding rows of the batch's distinct tokens "
      f"({len(np.unique(x))} distinct ids in x)")
