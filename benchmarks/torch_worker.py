"""The same benchmark in PyTorch, eager or with `torch.compile` (`--compile`), for the
side-by-side rows: run by `python -m benchmarks` with a Python that has torch
(`--torch-python`), never imported by the package or its tests.

With --compile the model is wrapped in `torch.compile` (inductor, which generates C++ for
the CPU) as nanoGPT does: forward and backward run compiled code, the optimizer step stays
eager. Compilation happens in the warm-up steps, which are not timed. Generation is not
timed compiled (each new sequence length would recompile).

The model is the book's chapter-4 `GPTModel` (separate W_query/W_key/W_value, causal mask
buffer, dropout on the attention weights and shortcuts, GELU with the tanh formula written as
the book does), with a small key/value cache added for the cached generation run. The
training step is the one benchmarks.worker times: forward, cross-entropy, backward,
clip_grad_norm_(1.0), AdamW(lr 4e-4, weight decay 0.1) step, zero_grad. Prints one line
`RESULT {json}` with the same keys as benchmarks.worker.
"""
from __future__ import annotations

import json
import sys
import time

import torch
import torch.nn as nn

from benchmarks.configs import CONFIGS, DROP_RATE, GENERATION_TOKENS, PROMPT_TOKENS, model_config
from benchmarks.worker import parse_args, peak_rss_bytes, summary, timed_steps


class MultiHeadAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        self.d_out, self.num_heads, self.head_dim = d_out, num_heads, d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x, cache=None):
        b, num_tokens, _ = x.shape
        keys = self.W_key(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        queries = self.W_query(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        values = self.W_value(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        start = 0
        if cache is not None:  # (keys, values, length) lists, preallocated
            start = cache[2]
            cache[0][:, :, start:start + num_tokens] = keys
            cache[1][:, :, start:start + num_tokens] = values
            cache[2] = start + num_tokens
            keys, values = cache[0][:, :, :cache[2]], cache[1][:, :, :cache[2]]
        attn_scores = queries @ keys.transpose(2, 3)
        mask_bool = self.mask.bool()[start:start + num_tokens, :keys.shape[2]]
        attn_scores.masked_fill_(mask_bool, -torch.inf)
        attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
        attn_weights = self.dropout(attn_weights)
        context_vec = (attn_weights @ values).transpose(1, 2)
        context_vec = context_vec.contiguous().view(b, num_tokens, self.d_out)
        return self.out_proj(context_vec)


class LayerNorm(nn.Module):
    def __init__(self, emb_dim):
        super().__init__()
        self.eps = 1e-5
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, keepdim=True, unbiased=False)
        return self.scale * (x - mean) / torch.sqrt(var + self.eps) + self.shift


class GELU(nn.Module):
    def forward(self, x):
        return 0.5 * x * (1 + torch.tanh(torch.sqrt(torch.tensor(2.0 / torch.pi)) * (x + 0.044715 * torch.pow(x, 3))))


class FeedForward(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(cfg["emb_dim"], 4 * cfg["emb_dim"]), GELU(),
                                    nn.Linear(4 * cfg["emb_dim"], cfg["emb_dim"]))

    def forward(self, x):
        return self.layers(x)


class TransformerBlock(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.att = MultiHeadAttention(cfg["emb_dim"], cfg["emb_dim"], cfg["context_length"],
                                      cfg["drop_rate"], cfg["n_heads"], cfg["qkv_bias"])
        self.ff = FeedForward(cfg)
        self.norm1 = LayerNorm(cfg["emb_dim"])
        self.norm2 = LayerNorm(cfg["emb_dim"])
        self.drop_shortcut = nn.Dropout(cfg["drop_rate"])

    def forward(self, x, cache=None):
        shortcut = x
        x = self.drop_shortcut(self.att(self.norm1(x), cache)) + shortcut
        shortcut = x
        return self.drop_shortcut(self.ff(self.norm2(x))) + shortcut


class GPTModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = nn.Dropout(cfg["drop_rate"])
        self.trf_blocks = nn.ModuleList([TransformerBlock(cfg) for _ in range(cfg["n_layers"])])
        self.final_norm = LayerNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)

    def forward(self, in_idx, caches=None, last_only=False):
        start = 0 if caches is None else caches[0][2]
        seq_len = in_idx.shape[1]
        x = self.tok_emb(in_idx) + self.pos_emb(torch.arange(start, start + seq_len))
        x = self.drop_emb(x)
        for i, block in enumerate(self.trf_blocks):
            x = block(x, None if caches is None else caches[i])
        x = self.final_norm(x)
        if last_only:
            x = x[:, -1:]
        return self.out_head(x)


def generate(model, prompt, new_tokens, use_cache):
    cfg = model.cfg
    ids = prompt
    caches, cache_start = None, 0
    if use_cache:
        shape = (1, cfg["n_heads"], cfg["context_length"], cfg["emb_dim"] // cfg["n_heads"])
        caches = [[torch.empty(shape), torch.empty(shape), 0] for _ in range(cfg["n_layers"])]
    with torch.no_grad():
        for _ in range(new_tokens):
            if caches is None:
                logits = model(ids[:, -cfg["context_length"]:], last_only=True)
            else:
                window_start = max(0, ids.shape[1] - cfg["context_length"])
                if window_start != cache_start:  # the window slid: positions changed, rebuild
                    for cache in caches:
                        cache[2] = 0
                    cache_start = window_start
                fresh = ids[:, cache_start + caches[0][2]:]
                logits = model(fresh, caches, last_only=True)
            next_id = torch.argmax(logits[:, -1], dim=-1, keepdim=True)
            ids = torch.cat([ids, next_id], dim=1)
    return ids


def main(argv=None) -> None:
    args = parse_args(argv, compile_flag=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    spec = CONFIGS[args.config]
    drop_rate = DROP_RATE if args.drop_rate is None else args.drop_rate
    cfg = model_config(args.config, drop_rate)
    batch, context = spec["batch"], cfg["context_length"]
    parts = set(args.parts.split(","))
    result = {"config": args.config, "engine": "pytorch-compile" if args.compile else "pytorch",
              "batch": batch, "drop_rate": drop_rate,
              "threads": {"torch": torch.get_num_threads()}, "torch_version": torch.__version__}
    torch.manual_seed(0)
    model = GPTModel(cfg)
    result["parameters"] = sum(p.numel() for p in model.parameters())
    run = model
    if args.compile:
        parts.discard("generate")
        run = torch.compile(model)  # the same parameters; compiled on the first call
    gen = torch.Generator().manual_seed(0)
    inputs = torch.randint(0, cfg["vocab_size"], (batch, context), generator=gen)
    targets = torch.randint(0, cfg["vocab_size"], (batch, context), generator=gen)

    if "train" in parts:
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=4e-4, weight_decay=0.1)

        def train_step():
            logits = run(inputs)
            loss = nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad()

        result["train"] = summary(timed_steps(train_step, warmup=2, budget=args.train_seconds))
        result["peak_rss"] = peak_rss_bytes()
        del optimizer
        model.zero_grad(set_to_none=True)

    model.eval()
    if "forward" in parts:
        def forward_step():
            with torch.no_grad():
                run(inputs)

        result["forward"] = summary(timed_steps(forward_step, warmup=1, budget=args.train_seconds / 2))

    if "generate" in parts:
        prompt = torch.randint(0, cfg["vocab_size"], (1, PROMPT_TOKENS), generator=gen)
        outputs = {}
        for use_cache in (True, False):
            generate(model, prompt, 2, use_cache)
            t0 = time.perf_counter()
            outputs[use_cache] = generate(model, prompt, GENERATION_TOKENS, use_cache)
            result["generate_cached" if use_cache else "generate_uncached"] = {
                "seconds": time.perf_counter() - t0, "tokens": GENERATION_TOKENS}
        result["generate_same_ids"] = bool(torch.equal(outputs[True], outputs[False]))
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.exit(main())
