"""minigrad.nn.functional (imported as F): PyTorch's functional API, each op ONE node of the
graph with a hand-derived backward.

    activations   relu leaky_relu elu selu celu gelu(approximate="none"|"tanh") silu mish
                  softplus softsign hardtanh relu6 hardsigmoid hardswish logsigmoid
                  softmax log_softmax softmin (dim=)  normalize  one_hot  dropout
                  dropout_add (dropout then a residual sum, one node)
    losses        cross_entropy (weight, ignore_index, label_smoothing, probability targets)
                  linear_cross_entropy (output head + cross-entropy, logits in row chunks)
                  nll_loss  binary_cross_entropy(_with_logits)  mse_loss l1_loss
                  smooth_l1_loss huber_loss kl_div
    layers        linear  linear_gelu  linear_dropout_add (a block's projection, its dropout
                  and the residual sum, one node)  embedding  layer_norm  batch_norm  group_norm
                  scaled_dot_product_attention(query, key, value, attn_mask=None,
                      dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False)
                  qkv_attention (causal self-attention from its input: the q, k, v
                      projections and the attention, one node)
                  conv1d conv2d conv_transpose1d conv_transpose2d
                  max_pool1d max_pool2d avg_pool1d avg_pool2d  adaptive_avg_pool1d/2d
                  interpolate

Every function accepts Tensors or ndarrays, keeps float32 as float32 (float64 when given
float64, for gradient checks), and raises ValueError/TypeError/IndexError naming the
function and the shapes for bad input. Elementwise work runs in cache-sized blocks on
minigrad's threads (`minigrad.runtime.configure(threads=n)`).
"""
from .activation import dropout, gelu, log_softmax, relu, softmax, softmin
from .attention import scaled_dot_product_attention
from .attention_masks import causal_lower_right
from .batch_norm import batch_norm, group_norm
from .conv import conv1d, conv2d, conv_transpose1d, conv_transpose2d
from .dropout import dropout_add
from .embedding import embedding
from .interpolate import adaptive_avg_pool1d, adaptive_avg_pool2d, interpolate
from .linear import linear
from .linear_cross_entropy import linear_cross_entropy
from .linear_dropout_add import linear_dropout_add
from .linear_gelu import linear_gelu
from .loss import mse_loss
from .misc import normalize, one_hot
from .nll import cross_entropy, nll_loss
from .normalization import layer_norm
from .qkv_attention import qkv_attention
from .pooling import avg_pool1d, avg_pool2d, max_pool1d, max_pool2d
from ...ops.einsum import pad  # constant, reflect, replicate, circular (the kernel lives in minigrad.ops)
from .pointwise import (celu, elu, hardsigmoid, hardswish, hardtanh, leaky_relu, logsigmoid, mish,
                        relu6, selu, silu, softplus, softsign)
from .pointwise_loss import (binary_cross_entropy, binary_cross_entropy_with_logits, huber_loss,
                             kl_div, l1_loss, smooth_l1_loss)

__all__ = [
    "softmax", "log_softmax", "softmin", "gelu", "relu", "leaky_relu", "elu", "selu", "celu",
    "silu", "mish", "softplus", "softsign", "hardtanh", "relu6", "hardsigmoid", "hardswish",
    "logsigmoid", "normalize", "one_hot", "dropout", "dropout_add",
    "cross_entropy", "linear_cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
    "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "kl_div",
    "layer_norm", "embedding", "linear", "linear_gelu", "linear_dropout_add",
    "scaled_dot_product_attention", "qkv_attention", "causal_lower_right",
    "conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d",
    "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "interpolate", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
    "batch_norm", "group_norm", "pad",
]
