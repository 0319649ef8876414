"""Look inside one backward pass: a two-layer MLP's training step drawn as a graph, its
gradients printed by hooks as they flow, and an injected NaN found by anomaly detection.

    model:  Linear(4, 8) -> tanh -> Linear(8, 1), mean squared error on 16 random points
    1. the graph of the loss, drawn before backward (backward frees it): mlp_step.svg
    2. backward(retain_graph=True) with Tensor hooks printing each gradient as it arrives (the
       hidden activation's, hooked by a forward hook at every forward, and each weight's);
       the graph drawn again with gradient norms (mlp_step_grads.svg); one SGD step
    3. module backward hooks: each layer's grad_output and grad_input in one more step
    4. a feature sqrt(|x|) with one input exactly 0: the forward is fine, the backward divides
       by zero; detect_anomaly() names the op and this file's line

    python examples/inspect_backward.py                 # writes runs/inspect_backward/*.svg
    python examples/inspect_backward.py --out DIR

Without Graphviz's `dot` (apt-get install graphviz), the graphs are written as .dot text.
"""
from __future__ import annotations

import argparse
import shutil
import warnings
from pathlib import Path

import numpy as np

import minigrad as mg
from minigrad import Tensor, nn, optim, viz
from minigrad.autograd import detect_anomaly


def mse(prediction: Tensor, target: Tensor) -> Tensor:
    return ((prediction - target) ** 2).mean()


def draw(loss: Tensor, path: Path, params: dict, show_grads: bool = False) -> Path:
    """An SVG through Graphviz, or the DOT text when `dot` is not installed."""
    if shutil.which("dot") is None:
        path = path.with_suffix(".dot")
    return viz.draw(loss, path, params, show_grads=show_grads)


def norm(grad) -> str:
    """The L2 norm of a gradient (a Tensor from a hook, an ndarray in .grad), or None."""
    if grad is None:
        return "None"
    return f"{np.linalg.norm(grad.data if isinstance(grad, Tensor) else grad):.4f}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/inspect_backward", help="folder for the drawings")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    model = nn.Sequential(nn.Linear(4, 8, generator=rng), nn.Tanh(), nn.Linear(8, 1, generator=rng))
    params = dict(model.named_parameters())  # "0.weight", "0.bias", "2.weight", "2.bias"
    x = Tensor(rng.standard_normal((16, 4)).astype(np.float32))
    target = Tensor(np.sin(x.data.sum(axis=1, keepdims=True)))  # (16, 1)

    # Tensor hooks: on the tanh output of every forward (via a forward hook), on each weight
    def hook_activation(module, args, output):  # returns None: the output stays as it is
        output.register_hook(lambda grad: print(f"  d loss / d tanh output  {grad.shape}  |g| = {norm(grad)}"))

    model[1].register_forward_hook(hook_activation)
    for name in ("0.weight", "2.weight"):
        params[name].register_hook(
            lambda grad, name=name: print(f"  d loss / d {name}     {grad.shape}  |g| = {norm(grad)}"))

    # 1. the graph, before backward frees it
    loss = mse(model(x), target)
    print(f"loss {loss.item():.4f}; graph: {draw(loss, out / 'mlp_step.svg', params)}")

    # 2. backward: the hooks fire from the loss back towards the inputs
    print("backward (Tensor hooks):")
    loss.backward(retain_graph=True)  # retained: to draw the gradients below
    print(f"graph with gradient norms: {draw(loss, out / 'mlp_step_grads.svg', params, show_grads=True)}")
    del loss  # a retained graph keeps the weights read-only until it is dropped
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    optimizer.step()
    optimizer.zero_grad()

    # 3. module backward hooks (registered before the forward they should see)
    handles = [model[i].register_full_backward_hook(
        lambda module, grad_input, grad_output, i=i: print(
            f"  layer {i} ({type(module).__name__}): |grad_output| = {norm(grad_output[0])}, "
            f"|grad_input| = {norm(grad_input[0])}")) for i in (0, 2)]
    loss = mse(model(x), target)
    print(f"after one SGD step: loss {loss.item():.4f}; backward (module hooks; layer 0's input "
          f"x needs no gradient, so its grad_input is None):")
    loss.backward()
    for handle in handles:
        handle.remove()

    # 4. an injected NaN: sqrt(|x|) is fine at 0 forward, its derivative 1/(2 sqrt(x)) is not
    inputs = Tensor(x.data.copy(), requires_grad=True)  # gradients w.r.t. the inputs too
    inputs.data[3, 2] = 0.0
    warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's divide-by-zero warning
    print("an input of exactly 0 under sqrt, with detect_anomaly():")
    with detect_anomaly():
        features = inputs.abs().sqrt()  # (16, 4)
        loss = mse(model(features), target)
        try:
            loss.backward()
        except RuntimeError as error:
            print(f"  {error}")


if __name__ == "__main__":
    main()
