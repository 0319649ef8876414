"""A small convolutional network with batch normalization on scikit-learn's bundled 8x8
handwritten digits (1,797 images, 10 classes; no download).

    images (N, 1, 8, 8), pixel values 0..16 scaled to 0..1
      -> Conv2d(1, 16, 3, padding=1) -> BatchNorm2d -> ReLU            (N, 16, 8, 8)
      -> Conv2d(16, 32, 3, padding=1) -> BatchNorm2d -> ReLU -> MaxPool2d(2)   (N, 32, 4, 4)
      -> Flatten -> Dropout(0.2) -> Linear(512, 10)                     (N, 10) logits
    training: AdamW with a one-cycle learning rate (OneCycleLR), cross-entropy, 80/20 split;
    batch norm uses batch statistics in training and its running statistics in eval.

Needs scikit-learn (only for the data): pip install -e ".[examples]"

    python examples/cnn_digits.py              # about 10-30 s on 2 cores, ~98% test accuracy
    python examples/cnn_digits.py --epochs 20
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import minigrad as mg
from minigrad import nn, optim
from minigrad.nn import functional as F
from minigrad.optim.lr_scheduler import OneCycleLR


def load_digits_split(seed: int):
    """(train images, train labels, test images, test labels); images float32 (N, 1, 8, 8)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        sys.exit("cnn_digits.py needs scikit-learn for the digits data: pip install -e \".[examples]\"")
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]  # (1797, 1, 8, 8)
    labels = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(labels))
    cut = int(0.8 * len(labels))
    train, test = order[:cut], order[cut:]
    return images[train], labels[train], images[test], labels[test]


def make_model(generator) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, generator=generator),   # (N, 16, 8, 8)
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, generator=generator),  # (N, 32, 8, 8)
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),                                        # (N, 32, 4, 4)
        nn.Flatten(),                                           # (N, 512)
        nn.Dropout(0.2, generator=generator),
        nn.Linear(32 * 4 * 4, 10, generator=generator),         # (N, 10)
    )


def accuracy(model, images, labels, batch_size: int = 256) -> float:
    model.eval()
    correct = 0
    with mg.no_grad():
        for start in range(0, len(labels), batch_size):
            logits = model(mg.Tensor(images[start:start + batch_size]))
            correct += int((logits.data.argmax(axis=1) == labels[start:start + batch_size]).sum())
    model.train()
    return correct / len(labels)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-2, help="peak learning rate of the cycle")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    x_train, y_train, x_test, y_test = load_digits_split(args.seed)
    generator = np.random.default_rng(args.seed)
    model = make_model(generator)
    optimizer = optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps_per_epoch = -(-len(y_train) // args.batch_size)
    scheduler = OneCycleLR(optimizer, max_lr=args.lr, epochs=args.epochs, steps_per_epoch=steps_per_epoch)
    print(f"{len(y_train)} training and {len(y_test)} test images; model: {model.num_parameters()} parameters")

    start = time.perf_counter()
    for epoch in range(args.epochs):
        order = generator.permutation(len(y_train))
        total = 0.0
        for begin in range(0, len(order), args.batch_size):
            batch = order[begin:begin + args.batch_size]
            loss = F.cross_entropy(model(mg.Tensor(x_train[batch])), y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(batch)
        print(f"epoch {epoch + 1}: train loss {total / len(y_train):.4f}, test accuracy "
              f"{accuracy(model, x_test, y_test):.4f}  ({time.perf_counter() - start:.1f} s)")
    elapsed = time.perf_counter() - start
    result = {"train_accuracy": accuracy(model, x_train, y_train),
              "test_accuracy": accuracy(model, x_test, y_test), "seconds": elapsed}
    print(f"trained in {elapsed:.1f} s: train accuracy {result['train_accuracy']:.4f}, "
          f"test accuracy {result['test_accuracy']:.4f}")
    return result


if __name__ == "__main__":
    main()
