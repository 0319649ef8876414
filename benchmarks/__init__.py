"""Benchmarks: `python -m benchmarks.kernels` (fused kernels at GPT-2-small shapes)."""
