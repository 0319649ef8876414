"""Fused kernels (softmax, cross-entropy, layer norm, GELU, attention, ...): see issue 2."""
