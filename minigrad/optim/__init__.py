"""minigrad.optim: SGD, Adam, AdamW, RMSprop, Adagrad with parameter groups and state dicts,
PyTorch's lr_scheduler (StepLR, LambdaLR, CosineAnnealingLR, OneCycleLR), and learning-rate
schedules (PyTorch's `torch.optim` names and update rules)."""
from .optimizer import Optimizer
from .sgd import SGD
from .adam import Adam, AdamW
from .adagrad import Adagrad
from .rmsprop import RMSprop
from . import lr_scheduler
from .schedules import LRScheduler, constant, cosine_with_warmup, linear_warmup

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "lr_scheduler", "LRScheduler", "constant", "linear_warmup",
           "cosine_with_warmup"]
