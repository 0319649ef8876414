"""Benchmarks: `python -m benchmarks` (end-to-end GPT training, forward and generation)
and `python -m benchmarks.kernels` (fused kernels at GPT-2-small shapes)."""
