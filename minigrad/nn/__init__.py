"""minigrad.nn: layers and modules (filled in by the nn issue); `functional` holds the fused kernels."""
from . import functional
