"""Chapter 4 of the book, "Implementing a GPT model from scratch to generate text", with minigrad.

    python examples/ch04_gpt.py [--tokenizer gpt2|bytes] [--seed 123]

4.1 the configuration and a batch of token ids
4.2 layer normalization            4.3 GELU and the feed-forward network
4.4 shortcut connections (the gradients of a deep network with and without them)
4.5 the transformer block          4.6 the GPT model, its parameters and memory
4.7 generating text (from an untrained model: gibberish, as in the book), with and without
    the key/value cache

The GPT-2 tokenizer is read from ../shared/data/gpt2 when present; otherwise the byte-level
tokenizer (257 ids) is used and the model's vocabulary shrinks to match.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import minigrad as mg
from minigrad import Tensor, nn
import gpt
from gpt import (GPT_CONFIG_124M, GELU, FeedForward, GPTModel, LayerNorm, TransformerBlock, generate,
                 print_model_summary, text_to_token_ids, token_ids_to_text)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
np.set_printoptions(precision=4, suppress=True)


def get_tokenizer(name: str):
    if name == "gpt2":
        try:
            return gpt.get_tokenizer("gpt2", path=SHARED / "gpt2" if (SHARED / "gpt2").exists() else None)
        except gpt.TokenizerNotFoundError as error:
            print(f"(GPT-2 tokenizer unavailable: {str(error).splitlines()[0]}; using bytes)")
    return gpt.get_tokenizer("bytes")


class ExampleDeepNeuralNetwork(nn.Module):
    """Five Linear+GELU layers, optionally with shortcuts (the book's section 4.4)."""

    def __init__(self, layer_sizes, use_shortcut):
        super().__init__()
        self.use_shortcut = use_shortcut
        self.layers = nn.ModuleList([
            nn.Sequential(nn.Linear(layer_sizes[i], layer_sizes[i + 1]), GELU())
            for i in range(len(layer_sizes) - 1)
        ])

    def forward(self, x):
        for layer in self.layers:
            layer_output = layer(x)
            if self.use_shortcut and x.shape == layer_output.shape:
                x = x + layer_output  # the shortcut: the gradient flows through the sum unchanged
            else:
                x = layer_output
        return x


def print_gradients(model, x):
    output = model(x)
    target = Tensor([[0.0]])
    loss = ((output - target) * (output - target)).mean()  # mean squared error
    loss.backward()
    for name, param in model.named_parameters():
        if name.endswith("weight"):
            print(f"  {name} has gradient mean of {np.abs(param.grad).mean():.8f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", choices=["gpt2", "bytes"], default="gpt2")
    parser.add_argument("--seed", type=int, default=123)
    args = parser.parse_args(argv)

    tokenizer = get_tokenizer(args.tokenizer)
    cfg = dict(GPT_CONFIG_124M)
    if tokenizer.n_vocab != cfg["vocab_size"]:
        cfg["vocab_size"] = tokenizer.n_vocab
    print("4.1 Configuration:", cfg)
    batch = np.concatenate([text_to_token_ids(text, tokenizer) for text in ("Every effort moves you",
                                                                          "Every day holds a")])
    if tokenizer.name == "bytes":
        batch = batch[:, :4]  # equal lengths for a batch
    print("batch of token ids:\n", batch)

    print("\n4.2 Layer normalization")
    mg.manual_seed(args.seed)
    batch_example = Tensor(mg.random.default_generator().standard_normal((2, 5), dtype=np.float32))
    layer = nn.Sequential(nn.Linear(5, 6), nn.ReLU())
    out = layer(batch_example)
    print("mean:", out.mean(axis=-1).numpy(), " variance:", out.var(dim=-1, correction=0).numpy())
    out_ln = LayerNorm(emb_dim=6)(out)
    print("after LayerNorm: mean:", out_ln.mean(axis=-1).numpy(), " variance:", out_ln.var(dim=-1, correction=0).numpy())

    print("\n4.3 GELU and the feed-forward network")
    x = Tensor(np.linspace(-3, 3, 7, dtype=np.float32))
    print("x:   ", x.numpy())
    print("GELU:", GELU()(x).numpy())
    print("ReLU:", x.relu().numpy())
    ffn = FeedForward(cfg)
    print("FeedForward (2, 3, 768) ->", ffn(Tensor(np.ones((2, 3, 768), dtype=np.float32))).shape)

    print("\n4.4 Shortcut connections")
    layer_sizes = [3, 3, 3, 3, 3, 1]
    sample_input = Tensor([[1.0, 0.0, -1.0]])
    for use_shortcut in (False, True):
        mg.manual_seed(args.seed)
        print(f" use_shortcut={use_shortcut}: (without shortcuts the gradient vanishes toward the first layers)"
              if not use_shortcut else f" use_shortcut={use_shortcut}:")
        print_gradients(ExampleDeepNeuralNetwork(layer_sizes, use_shortcut), sample_input)

    print("\n4.5 The transformer block")
    mg.manual_seed(args.seed)
    x = Tensor(mg.random.default_generator().random((2, 4, 768), dtype=np.float32))
    block = TransformerBlock(cfg)
    print("input shape:", x.shape, " output shape:", block(x).shape)

    print("\n4.6 The GPT model")
    mg.manual_seed(args.seed)
    start = time.perf_counter()
    model = GPTModel(cfg)
    print(f"(initialized in {time.perf_counter() - start:.1f} s)")
    print("Input batch:\n", batch)
    out = model(batch)
    print("Output shape:", out.shape)
    print(out.numpy()[0, :, :6], "...")
    print_model_summary(model)
    print(f"parameters of the transformer blocks alone: "
          f"{sum(p.numel() for p in model.trf_blocks.parameters()):,}")

    print("\n4.7 Generating text")
    start_context = "Hello, I am"
    encoded = text_to_token_ids(start_context, tokenizer)
    print("encoded:", encoded.tolist()[0], " shape:", encoded.shape)
    model.eval()  # disable dropout
    out = generate(model, encoded, max_new_tokens=6, context_size=cfg["context_length"])
    print("Output:", out.tolist()[0], " length:", out.shape[1])
    print("Decoded:", repr(token_ids_to_text(out, tokenizer)))

    for use_cache in (True, False):
        start = time.perf_counter()
        out = generate(model, encoded, max_new_tokens=10, use_cache=use_cache)
        elapsed = time.perf_counter() - start
        print(f"10 new tokens {'with' if use_cache else 'without'} the KV cache: {elapsed:.2f} s "
              f"({10 / elapsed:.1f} tokens/s)")
    sampled = generate(model, encoded, max_new_tokens=10, temperature=1.4, top_k=25, seed=args.seed)
    print("Sampled (temperature 1.4, top-k 25):", repr(token_ids_to_text(sampled, tokenizer)))


if __name__ == "__main__":
    main()
