"""The GPT model of the book's chapter 4: embeddings, transformer blocks, output head.

    token ids (B, T)
      -> tok_emb + pos_emb -> drop_emb                         (B, T, C)
      -> trf_blocks: n_layers x TransformerBlock               (B, T, C)
           x = x + drop_shortcut(att(norm1(x)))                pre-norm with shortcuts
           x = x + drop_shortcut(ff(norm2(x)))
      -> final_norm -> out_head                                (B, T, vocab_size)

Names, shapes and the parameter layout are those of the book's PyTorch `GPTModel` (Linear
weights are (out, in)), so its state dicts load unchanged; GPT-2 (Radford et al. 2019) is
this model with `qkv_bias=True` and the output head tied to the token embedding.
"""
from __future__ import annotations

import numpy as np

from minigrad import Tensor, nn, no_grad
from minigrad.nn import functional as F

from .attention import KVCache, MultiHeadAttention
from .config import validate_config
from .utils import has_hooks


class LayerNorm(nn.Module):
    """Layer normalization over the last axis with the book's parameter names.

    y = scale * (x - mean) / sqrt(var + eps) + shift, the variance biased (divided by C), as
    in the book and GPT-2. scale, shift: (emb_dim,), initialised to ones and zeros.
    """

    def __init__(self, emb_dim: int, eps: float = 1e-5, dtype=np.float32):
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(np.ones(emb_dim, dtype=dtype))
        self.shift = nn.Parameter(np.zeros(emb_dim, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, self.scale.shape, self.scale, self.shift, self.eps)  # (..., C)


class GELU(nn.Module):
    """GELU with the tanh approximation used by GPT-2 (Hendrycks and Gimpel 2016):
    0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), one fused kernel."""

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(x, approximate="tanh")


class FeedForward(nn.Module):
    """Position-wise MLP: Linear(C, 4C) -> GELU -> Linear(4C, C), as `layers` (a Sequential).

    While the layers are exactly these (no LoRA wrapper, no hooks on them), the first two run
    as one node, F.linear_gelu: the same numbers, the bias and GELU on the product's rows
    while they are in cache, and no pre-activation kept for backward."""

    def __init__(self, cfg: dict, dtype=np.float32, generator=None):
        super().__init__()
        width = cfg["emb_dim"]
        self.layers = nn.Sequential(
            nn.Linear(width, 4 * width, dtype=dtype, generator=generator),  # (B, T, 4C)
            GELU(),
            nn.Linear(4 * width, width, dtype=dtype, generator=generator),  # (B, T, C)
        )

    def forward(self, x: Tensor) -> Tensor:
        plain = self._plain_layers()
        if plain is None:
            return self.layers(x)  # module by module (hooks, replaced layers)
        return plain[1](self.hidden(x))  # (B, T, C)

    def hidden(self, x: Tensor) -> Tensor:
        """GELU(first Linear(x)), (B, T, 4C), as one node (while the layers are plain)."""
        first = self.layers[0]
        return F.linear_gelu(x, first.weight, first.bias)

    def last_linear(self):
        """The second Linear while it can run on `hidden(x)` outside forward, fused with what
        follows (the layers plain, no hooks on it or on this module), else None."""
        plain = self._plain_layers() if type(self) is FeedForward and not has_hooks(self) else None
        return plain[1] if plain is not None and not has_hooks(plain[1]) else None

    def _plain_layers(self):
        """(first Linear, second Linear) when the layers are the book's Linear, GELU, Linear and
        none of them (nor the Sequential) has a hook, else None."""
        layers = self.layers
        if type(layers) is not nn.Sequential or len(layers) != 3 or has_hooks(layers):
            return None
        first, activation, second = layers
        if (type(first) is nn.Linear and type(activation) is GELU and type(second) is nn.Linear
                and not has_hooks(first) and not has_hooks(activation)):
            return first, second
        return None


class TransformerBlock(nn.Module):
    """Pre-norm transformer block: attention and feed-forward, each with a shortcut.

    In training, with drop_shortcut the plain nn.Dropout and no hook on it, each
    drop_shortcut(h) + shortcut runs as one node, F.dropout_add, and with it the sublayer's
    last Linear (attention's out_proj, the feed-forward's second Linear) when that is plain
    too: F.linear_dropout_add. The same numbers either way."""

    def __init__(self, cfg: dict, dtype=np.float32, generator=None):
        super().__init__()
        self.att = MultiHeadAttention(
            d_in=cfg["emb_dim"],
            d_out=cfg["emb_dim"],
            context_length=cfg["context_length"],
            num_heads=cfg["n_heads"],
            dropout=cfg["drop_rate"],
            qkv_bias=cfg["qkv_bias"],
            dtype=dtype,
            generator=generator,
        )
        self.ff = FeedForward(cfg, dtype=dtype, generator=generator)
        self.norm1 = LayerNorm(cfg["emb_dim"], dtype=dtype)
        self.norm2 = LayerNorm(cfg["emb_dim"], dtype=dtype)
        self.drop_shortcut = nn.Dropout(cfg["drop_rate"], generator=generator)

    def forward(self, x: Tensor, kv_cache=None) -> Tensor:
        # Shortcut connection for the attention block
        shortcut = x
        x = self.norm1(x)
        x = self._sublayer_and_shortcut(self.att, x, shortcut, kv_cache=kv_cache)  # drop_shortcut(att(x)) + shortcut

        # Shortcut connection for the feed-forward block
        shortcut = x
        x = self.norm2(x)
        x = self._sublayer_and_shortcut(self.ff, x, shortcut)  # drop_shortcut(ff(x)) + shortcut
        return x

    def _sublayer_and_shortcut(self, sublayer: nn.Module, x: Tensor, shortcut: Tensor, **kwargs) -> Tensor:
        """drop_shortcut(sublayer(x)) + shortcut, (B, T, C). While drop_shortcut is the plain
        nn.Dropout with no hook, in training, the dropout and the sum are one node
        (F.dropout_add), and with the sublayer's last Linear too where that is plain
        (`sublayer.last_linear()`: F.linear_dropout_add); the same numbers and mask each way."""
        drop = self.drop_shortcut
        if not (type(drop) is nn.Dropout and drop.training and drop.p > 0.0 and not has_hooks(drop)):
            return drop(sublayer(x, **kwargs)) + shortcut  # module by module (eval, hooks, a replaced layer)
        last = sublayer.last_linear() if type(sublayer) in (MultiHeadAttention, FeedForward) else None
        if last is None:  # (a module put in the sublayer's place: called as a module)
            return F.dropout_add(sublayer(x, **kwargs), shortcut, drop.p, generator=drop.generator)
        before_last = sublayer.context(x, **kwargs) if sublayer is self.att else sublayer.hidden(x)  # (B, T, in)
        return F.linear_dropout_add(before_last, last.weight, last.bias, shortcut, drop.p, generator=drop.generator)


class _NoDraws:
    """A stand-in generator whose "random" draws are zeros (read-only broadcasts, no work)."""

    def _zeros(self, *args, size=None, **kwargs):
        return np.broadcast_to(np.float64(0.0), () if size is None else size)

    uniform = normal = standard_normal = random = _zeros


class GPTModel(nn.Module):
    """The book's GPT: `GPTModel(cfg, dtype=np.float32, generator=None)`.

    cfg: a dict with the keys of `gpt.GPT_CONFIG_124M` (checked by `validate_config`).
    dtype: float32 by default; float64 for gradient checks.
    generator: a numpy Generator for the initial weights and the dropout masks
      (default: minigrad.random's generator). Weights start as PyTorch's defaults do:
      Linear U(-1/sqrt(in), 1/sqrt(in)), Embedding N(0, 1), LayerNorm ones/zeros.

    init_weights: False leaves the Linear and Embedding weights at zero without drawing any
      random numbers (seconds saved for GPT-2 sizes), for a model whose weights are loaded next.

    model(idx) with idx an integer array (B, T), T <= context_length, returns the logits
    (B, T, vocab_size) as a Tensor of the model's dtype; model(idx, targets=targets) the
    training loss, without the whole logits in memory. model(idx, cache=KVCache) runs the
    tokens at the cache's next absolute positions (inference, no graph).
    """

    def __init__(self, cfg: dict, dtype=np.float32, generator=None, init_weights: bool = True):
        super().__init__()
        cfg = validate_config(cfg)
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"GPTModel: dtype must be a float type (float32 or float64), got {dtype}")
        self.cfg = cfg
        dropout_generator = generator
        if not init_weights:
            generator = _NoDraws()
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"], dtype=dtype, generator=generator)
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"], dtype=dtype, generator=generator)
        self.drop_emb = nn.Dropout(cfg["drop_rate"], generator=generator)
        self.trf_blocks = nn.Sequential(
            *[TransformerBlock(cfg, dtype=dtype, generator=generator) for _ in range(cfg["n_layers"])]
        )
        self.final_norm = LayerNorm(cfg["emb_dim"], dtype=dtype)
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False, dtype=dtype, generator=generator)
        if not init_weights:  # the dropout layers draw their masks from the caller's generator
            for module in self.modules():
                if isinstance(module, nn.Dropout):
                    module.generator = dropout_generator

    @property
    def dtype(self) -> np.dtype:
        """The float dtype of the weights (and of the logits)."""
        return self.tok_emb.weight.dtype

    # ------------------------------------------------------------------ weight tying
    def tie_weights(self) -> "GPTModel":
        """Share one Parameter between `out_head.weight` and `tok_emb.weight` (GPT-2 does).

        Both names stay in the state dict (as in the book), but the parameter is counted and
        updated once; the head's own initial weights are dropped.
        """
        self.out_head.weight = self.tok_emb.weight
        return self

    @property
    def weights_tied(self) -> bool:
        return self.out_head.weight is self.tok_emb.weight

    # ------------------------------------------------------------------ forward
    def check_token_ids(self, in_idx, start_position: int = 0) -> np.ndarray:
        """`in_idx` as an integer ndarray (B, T), with clear errors for every bad input."""
        if isinstance(in_idx, Tensor):
            in_idx = in_idx.data
        ids = np.asarray(in_idx)
        if ids.dtype.kind not in "iu":
            raise TypeError(f"GPTModel: token ids must be integers, got dtype {ids.dtype}")
        if ids.ndim != 2:
            raise ValueError(f"GPTModel: token ids must have shape (batch, tokens), got shape {ids.shape}")
        batch_size, seq_len = ids.shape
        context_length = self.cfg["context_length"]
        if start_position + seq_len > context_length:
            if start_position == 0:
                raise ValueError(
                    f"Cannot forward sequence of length {seq_len}, context length is only {context_length}"
                )
            raise ValueError(
                f"Cannot forward {seq_len} tokens after {start_position} cached ones, "
                f"context length is only {context_length}"
            )
        if ids.size:
            low, high = int(ids.min()), int(ids.max())
            vocab_size = self.cfg["vocab_size"]
            if low < 0 or high >= vocab_size:
                bad = low if low < 0 else high
                raise IndexError(f"GPTModel: token id {bad} is outside the vocabulary [0, {vocab_size})")
        return ids

    def hidden_states(self, in_idx, cache: KVCache | None = None) -> Tensor:
        """The final-normed hidden states (B, T, C) (everything but the output head)."""
        start = 0 if cache is None else cache.length
        ids = self.check_token_ids(in_idx, start)
        seq_len = ids.shape[1]
        if cache is not None and cache.batch_size != ids.shape[0]:
            raise ValueError(f"GPTModel: batch of {ids.shape[0]} rows, the KV cache holds {cache.batch_size}")
        tok_embeds = self.tok_emb(ids)  # (B, T, C)
        pos_embeds = self.pos_emb(np.arange(start, start + seq_len))  # (T, C), absolute positions
        x = tok_embeds + pos_embeds  # (B, T, C)
        x = self.drop_emb(x)
        for i, block in enumerate(self.trf_blocks):
            x = block(x, kv_cache=None if cache is None else cache.layers[i])  # (B, T, C)
        return self.final_norm(x)  # (B, T, C)

    def forward(self, in_idx, cache: KVCache | None = None, targets=None) -> Tensor:
        """The logits (B, T, V); with `targets` (B, T) integer ids (nanoGPT's `targets=`) the
        mean cross-entropy loss instead (a 0-d Tensor; targets of -100 are ignored), through
        F.linear_cross_entropy: the output head and the loss in row chunks, so the (B, T, V)
        logits are never whole (at context 1024 and batch 4, 1.6 GB less for GPT-2's vocabulary)."""
        if cache is not None:
            if targets is not None:
                raise ValueError("GPTModel: targets= trains, cache= generates: pass one of them")
            with no_grad():  # cached keys and values carry no graph: inference only
                return self.out_head(self.hidden_states(in_idx, cache))  # (B, T, V)
        x = self.hidden_states(in_idx)  # (B, T, C)
        if targets is None:
            return self.out_head(x)  # (B, T, V)
        targets = np.asarray(targets.data if isinstance(targets, Tensor) else targets)
        if targets.dtype.kind not in "iu" or targets.shape != x.shape[:2]:
            raise ValueError(f"GPTModel: targets must be integer ids of the token ids' shape "
                             f"{x.shape[:2]}, got {targets.dtype} of shape {targets.shape}")
        head = self.out_head
        if type(head) is not nn.Linear or head._hooks is not None:  # a replaced or hooked head
            return F.cross_entropy(head(x), targets)  # (B, T, V) logits, then the loss
        return F.linear_cross_entropy(x, head.weight, head.bias, targets)  # ()

    def next_token_logits(self, in_idx, cache: KVCache | None = None) -> np.ndarray:
        """Logits (B, V) for the last position only (inference: no graph).

        The output head is the costliest layer (V x C per token); generation only needs it for
        the last position, so this skips it for the others.
        """
        with no_grad():
            x = self.hidden_states(in_idx, cache)  # (B, T, C)
            return self.out_head(x[:, -1, :]).data  # (B, V)
