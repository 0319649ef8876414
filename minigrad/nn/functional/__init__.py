"""minigrad.nn.functional (imported as F): fused kernels, each ONE node of the graph with a
hand-derived backward.

    softmax(x, axis=-1)                 log_softmax(x, axis=-1)
    cross_entropy(logits, targets, ignore_index=-100, reduction="mean")
    gelu(x)                             relu(x)
    layer_norm(x, weight, bias, eps=1e-5)
    dropout(x, p, training=True, generator=None)
    embedding(ids, weight)              linear(x, weight, bias=None)
    scaled_dot_product_attention(q, k, v, causal=True, dropout_p=0.0, generator=None, scale=None)
    mse_loss(input, target, reduction="mean")

Every function accepts Tensors or ndarrays, keeps float32 as float32 (float64 when given
float64, for gradient checks), and raises ValueError/TypeError/IndexError naming the
function and the shapes for bad input. Elementwise work runs in cache-sized blocks on
`get_num_threads()` threads (`set_num_threads(n)`, or the MINIGRAD_NUM_THREADS variable).
"""
from ._util import get_num_threads, set_num_threads
from .activation import dropout, gelu, log_softmax, relu, softmax
from .attention import scaled_dot_product_attention
from .embedding import embedding
from .linear import linear
from .loss import cross_entropy, mse_loss
from .normalization import layer_norm

__all__ = [
    "softmax", "log_softmax", "cross_entropy", "gelu", "relu", "layer_norm", "dropout",
    "embedding", "linear", "scaled_dot_product_attention", "mse_loss",
    "set_num_threads", "get_num_threads",
]
