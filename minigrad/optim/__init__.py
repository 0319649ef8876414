"""minigrad.optim: SGD, Adam, AdamW with parameter groups and state dicts, and learning-rate
schedules (PyTorch's `torch.optim` names and update rules)."""
from .optimizer import Optimizer, get_num_threads, set_num_threads
from .sgd import SGD
from .adam import Adam, AdamW
from .schedules import LRScheduler, constant, cosine_with_warmup, linear_warmup

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "LRScheduler", "constant", "linear_warmup",
           "cosine_with_warmup", "set_num_threads", "get_num_threads"]
