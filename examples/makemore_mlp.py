"""A character-level MLP language model (Bengio et al. 2003, "A Neural Probabilistic Language
Model"), in the style of Karpathy's makemore part 2, on words of the embedded default corpus.

    words:    the distinct lowercase words (3-12 letters) of the Python Language Reference
              that ships with CPython (gpt.default_corpus_text()); split 80/10/10
    examples: every (previous 3 characters -> next character) of ".word." ('.' marks the
              start and the end)
    model:    embedding (27, 10) -> concat (30) -> Linear 200 -> tanh -> Linear 27 -> softmax
    training: minibatch SGD, lr 0.1 then 0.01 (StepLR), cross-entropy

Prints the train/validation loss during training, the final train/val/test losses, and
words sampled from the model.

    python examples/makemore_mlp.py                 # ~10-30 s on 2 cores
    python examples/makemore_mlp.py --steps 20000   # longer: lower validation loss
"""
from __future__ import annotations

import argparse
import re
import time

import numpy as np

import minigrad as mg
from minigrad import nn, optim
from minigrad.nn import functional as F
from minigrad.optim.lr_scheduler import StepLR

from gpt import default_corpus_text

BLOCK = 3  # characters of context
END = "."  # start and end of a word, id 0


def load_words(seed: int) -> list[str]:
    """The distinct lowercase words of 3-12 letters of the default corpus, shuffled."""
    words = sorted(set(re.findall(r"[a-z]{3,12}", default_corpus_text().lower())))
    np.random.default_rng(seed).shuffle(words)
    return words


def build_dataset(words, stoi):
    """Contexts (N, BLOCK) of character ids and the next character (N,)."""
    contexts, targets = [], []
    for word in words:
        context = [0] * BLOCK
        for ch in word + END:
            contexts.append(context)
            targets.append(stoi[ch])
            context = context[1:] + [stoi[ch]]
    return np.array(contexts, dtype=np.int64), np.array(targets, dtype=np.int64)


class MLPLanguageModel(nn.Module):
    """Bengio et al.'s model: look up each context character's embedding, concatenate, one
    tanh hidden layer, logits over the next character."""

    def __init__(self, vocab_size: int, embedding_dim: int = 10, hidden: int = 200, generator=None):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, generator=generator)
        self.hidden = nn.Linear(BLOCK * embedding_dim, hidden, generator=generator)
        self.out = nn.Linear(hidden, vocab_size, generator=generator)
        with mg.no_grad():  # a less confident start (makemore's "fixing the initial loss")
            self.out.weight.data *= 0.1
            self.out.bias.data *= 0.0

    def forward(self, contexts) -> mg.Tensor:
        emb = self.embedding(contexts)  # (B, BLOCK, E)
        flat = emb.reshape(emb.shape[0], -1)  # (B, BLOCK * E)
        return self.out(self.hidden(flat).tanh())  # (B, vocab)


def loss_on(model, contexts, targets) -> float:
    with mg.no_grad():
        return float(F.cross_entropy(model(contexts), targets).item())


def sample(model, itos, rng, count: int) -> list[str]:
    """Draw words one character at a time until the end token."""
    words = []
    with mg.no_grad():
        for _ in range(count):
            context, chars = [0] * BLOCK, []
            while len(chars) < 20:
                probs = F.softmax(model(np.array([context])), dim=-1).data[0].astype(np.float64)
                ix = int(rng.choice(len(probs), p=probs / probs.sum()))
                if ix == 0:
                    break
                chars.append(itos[ix])
                context = context[1:] + [ix]
            words.append("".join(chars))
    return words


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=8000, help="minibatch SGD steps")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    words = load_words(args.seed)
    chars = sorted(set("".join(words)))
    itos = [END] + chars
    stoi = {ch: i for i, ch in enumerate(itos)}
    n1, n2 = int(0.8 * len(words)), int(0.9 * len(words))
    splits = {name: build_dataset(part, stoi) for name, part in
              (("train", words[:n1]), ("val", words[n1:n2]), ("test", words[n2:]))}
    x_train, y_train = splits["train"]
    print(f"{len(words)} words, {len(itos)} characters, {len(x_train)} training examples")

    generator = np.random.default_rng(args.seed)
    model = MLPLanguageModel(len(itos), generator=generator)
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    scheduler = StepLR(optimizer, step_size=int(args.steps * 0.75), gamma=0.1)
    print(f"model: {model.num_parameters()} parameters")

    start = time.perf_counter()
    for step in range(args.steps):
        batch = generator.integers(0, len(x_train), args.batch_size)
        loss = F.cross_entropy(model(x_train[batch]), y_train[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        if step % (args.steps // 8) == 0 or step == args.steps - 1:
            print(f"step {step:5d}  batch loss {loss.item():.3f}  val loss "
                  f"{loss_on(model, *splits['val']):.3f}  lr {scheduler.get_last_lr()[0]:g}")
    elapsed = time.perf_counter() - start

    losses = {name: loss_on(model, *data) for name, data in splits.items()}
    print(f"trained in {elapsed:.1f} s; loss train {losses['train']:.3f}, val {losses['val']:.3f}, "
          f"test {losses['test']:.3f} (uniform guessing: {np.log(len(itos)):.3f})")
    samples = sample(model, itos, np.random.default_rng(args.seed), 12)
    print("samples:", " ".join(samples))
    return {**losses, "samples": samples, "seconds": elapsed}


if __name__ == "__main__":
    main()
