"""Higher-order gradients: derivatives of derivatives, with `grad(..., create_graph=True)`.

    python examples/higher_order.py                      # prints everything (a few seconds)
    python examples/higher_order.py --plot tanh.png      # also plots tanh and its derivatives

1. The first four derivatives of tanh, each the gradient of the previous one, against their
   closed forms (t = tanh x):  1 - t^2,  -2t (1 - t^2),  -2 (1 - t^2)(1 - 3t^2),
   8t (1 - t^2)(2 - 3t^2).
2. Newton's method, x <- x - H^-1 grad, on Rosenbrock's function with its exact Hessian
   (`minigrad.autograd.functional.hessian`): a handful of steps to the minimum at (1, 1).
3. The sharpness of a tiny GPT's loss: the largest Hessian eigenvalue by power iteration on
   Hessian-vector products (two backward passes each; the Hessian itself, P x P, is never formed).
"""
from __future__ import annotations

import argparse

import numpy as np

import minigrad as mg
from minigrad import Tensor
from minigrad.autograd import functional as AF
from minigrad.autograd import grad
from minigrad.nn import functional as F
from gpt import GPTModel


def tanh_derivatives(x: np.ndarray, order: int = 4) -> list[np.ndarray]:
    """[tanh'(x), tanh''(x), ...] up to `order`, each by differentiating the one before."""
    x = Tensor(x, requires_grad=True)
    current, derivatives = x.tanh(), []
    for _ in range(order):
        (current,) = grad(current.sum(), x, create_graph=True)  # elementwise: sum keeps each d/dx_i
        derivatives.append(current.data)
    return derivatives


def tanh_closed_forms(x: np.ndarray) -> list[np.ndarray]:
    t = np.tanh(x)
    s = 1 - t * t  # sech^2
    return [s, -2 * t * s, -2 * s * (1 - 3 * t * t), 8 * t * s * (2 - 3 * t * t)]


def rosenbrock(p: Tensor) -> Tensor:
    """(1 - x)^2 + 100 (y - x^2)^2, minimum 0 at (1, 1)."""
    x, y = p[0], p[1]
    return (1 - x) ** 2 + 100 * (y - x * x) ** 2


def newton(start=(-1.2, 1.0), steps: int = 8) -> list[tuple[float, float, float]]:
    """Newton's method on Rosenbrock's function: (x, y, f) after each step."""
    p = np.array(start)
    path = []
    for _ in range(steps):
        point = Tensor(p, requires_grad=True)
        (gradient,) = grad(rosenbrock(point), point)
        hessian = AF.hessian(rosenbrock, Tensor(p)).data  # (2, 2)
        p = p - np.linalg.solve(hessian, gradient.data)
        path.append((p[0], p[1], rosenbrock(Tensor(p)).item()))
    return path


def top_hessian_eigenvalue(iterations: int = 20, train_steps: int = 150, seed: int = 0):
    """Power iteration v <- H v / |H v| on a tiny GPT's loss (float64), after `train_steps`
    AdamW steps on one batch (near a minimum the Hessian's large eigenvalues are positive;
    at a random start the largest in magnitude is often negative). Returns the loss and the
    Rayleigh quotient v . H v after each step (it converges to the dominant eigenvalue)."""
    cfg = {"vocab_size": 32, "context_length": 8, "emb_dim": 16, "n_heads": 2, "n_layers": 2,
           "drop_rate": 0.0, "qkv_bias": False}
    model = GPTModel(cfg, dtype=np.float64, generator=np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 1)
    ids = rng.integers(0, cfg["vocab_size"], (4, cfg["context_length"]))  # (B, T)
    targets = np.roll(ids, -1, axis=1)  # (B, T): predict the next token
    params = list(model.parameters())

    def loss_of_batch():
        logits = model(ids)  # (B, T, V)
        return F.cross_entropy(logits.reshape(-1, cfg["vocab_size"]), targets.reshape(-1))

    optimizer = mg.optim.AdamW(params, lr=1e-2, weight_decay=0.0)
    for _ in range(train_steps):
        optimizer.zero_grad()
        loss_of_batch().backward()
        optimizer.step()

    loss = loss_of_batch()
    gradients = grad(loss, params, create_graph=True)  # the graph of the gradient is kept
    v = [rng.standard_normal(p.shape) for p in params]
    norm = np.sqrt(sum((vi * vi).sum() for vi in v))
    v = [vi / norm for vi in v]
    estimates = []
    for _ in range(iterations):
        hv = [h.data for h in grad(list(gradients), params, v, retain_graph=True)]  # H v
        estimates.append(float(sum((a * b).sum() for a, b in zip(v, hv))))  # v . H v
        norm = np.sqrt(sum((h * h).sum() for h in hv))
        v = [h / norm for h in hv]
    return loss.item(), estimates


def plot(path: str, x: np.ndarray, derivatives: list[np.ndarray]) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib is not installed: no plot)")
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(x, np.tanh(x), label="tanh")
    for order, values in enumerate(derivatives, start=1):
        ax.plot(x, values, label=f"derivative {order}")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    print(f"plot written to {path}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plot", metavar="PATH", help="save a plot of tanh's derivatives (needs matplotlib)")
    parser.add_argument("--iterations", type=int, default=20, help="power-iteration steps")
    args = parser.parse_args(argv)

    print("1. tanh and its first four derivatives (autograd | closed form)")
    points = np.array([-1.5, -0.5, 0.0, 0.5, 1.5])
    for order, (auto, exact) in enumerate(zip(tanh_derivatives(points), tanh_closed_forms(points)), 1):
        pairs = "  ".join(f"{a:+.6f}|{e:+.6f}" for a, e in zip(auto, exact))
        print(f"   d^{order}: {pairs}")
        assert np.allclose(auto, exact, atol=1e-12)
    if args.plot:
        grid = np.linspace(-3, 3, 301)
        plot(args.plot, grid, tanh_derivatives(grid))

    print("2. Newton's method on Rosenbrock's function from (-1.2, 1.0)")
    for step, (x, y, value) in enumerate(newton(), 1):
        print(f"   step {step}: x = {x:+.6f}  y = {y:+.6f}  f = {value:.3e}")

    print("3. largest Hessian eigenvalue of a tiny GPT's loss (power iteration on H v)")
    loss, estimates = top_hessian_eigenvalue(args.iterations)
    print(f"   after 150 AdamW steps on one batch: loss {loss:.4f}")
    for i in (0, 4, 9, len(estimates) - 1):
        if i < len(estimates):
            print(f"   iteration {i + 1:2d}: v . H v = {estimates[i]:.6f}")


if __name__ == "__main__":
    main()
