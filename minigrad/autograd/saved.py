"""Saved arrays stay unchanged until backward: a live graph makes its arrays read-only.

Why: every op keeps references to arrays that its backward reads (`Mul` keeps both inputs,
`Div` its output). Changing one of them in place between the forward and the backward
(`w.data[...] = 100`, `w.data += 1`, an optimizer step) would silently give a wrong gradient:
`y = (x * w).sum(); w.data[...] = 100; y.backward()` would give x.grad == 100, not w.

How: when `Function.apply` records a node, it makes the arrays of the node's inputs and of
its output read-only (NumPy's `writeable` flag), so any write to them, through any reference
to those array objects, is refused at once by NumPy itself:

    ValueError: assignment destination is read-only

When the node is released (after its backward ran, or when the graph is dropped unused) the
arrays become writeable again, unless another live node still holds them (a count per
array). So after `loss.backward()` an optimizer updates the parameters in place as before,
at the same speed; only a graph kept alive (`backward(retain_graph=True)`, a forward never
backpropagated, a gradient built with create_graph=True) keeps its arrays read-only.
`saved_by(tensor)` names the op whose live node holds a tensor's array.

Optimizers are the one writer let through (as PyTorch lets `optimizer.step()` run while an
old graph is alive): `Optimizer.step` runs inside `updating(params, "AdamW.step")`, which
opens held arrays for the update and marks them changed; a later backward through a node
that holds a changed array raises a RuntimeError naming the op, the input and the step
that changed it (PyTorch's version-counter error), instead of computing with new values.

Why not PyTorch's version counters: they count writes made through tensor methods, and a
write through the raw ndarray (`t.data[...] = x`, which is how this codebase and its users
write) does not pass through any tensor method. A checksum of every saved array would cost a
pass over all activations at each backward, and a sampled one would miss small writes. The
read-only flag costs two flag flips per array per node, and NumPy enforces it for every
writer: item assignment, `out=` arguments, augmented assignment.

What it cannot see: another ndarray view of the same memory made before the forward (for
instance the original array `a` when a tensor was built from `a[1:]`): that view keeps its
own writeable flag. Arrays that are read-only already (np.broadcast_to results) are left as
they are; a view taken from a held array is read-only from birth and stays so (copy it to
write). Rebinding `t.data = new_array` does not change what was saved: the first-order
backward uses the saved arrays (the values of the forward), as PyTorch does with `.data`; a
create_graph backward, which recomputes from the parent tensors, sees the new array.

Cost: about a microsecond per distinct array of a recorded node (two flag flips and a dict
entry), a few microseconds per op; nothing under no_grad.
"""
from __future__ import annotations

import contextlib

# id(array) -> [array, number of live nodes holding it, the op class that saved it first]
_locked: dict = {}
# views whose base was still read-only when their last node went away: retried later
_deferred: list = []
# id(held array) -> [number of in-place updates while live nodes held it, the last writer]
changed: dict = {}


class SavedArrays:
    """Held by one recorded node: its arrays stay read-only while this object lives."""

    __slots__ = ("arrays", "versions")

    def __init__(self, arrays, op):
        held = []
        locked = _locked
        for array in arrays:
            key = id(array)
            entry = locked.get(key)
            if entry is not None:
                entry[1] += 1
            elif array.flags.writeable:
                array.setflags(write=False)  # (setflags: cheaper than flags.writeable = ...)
                locked[key] = [array, 1, op]
            else:
                continue  # read-only already (a broadcast view, a read-only buffer)
            held.append(array)
        self.arrays = held
        # arrays already updated in place by an optimizer: this node saw that version
        self.versions = ({id(a): changed[id(a)][0] for a in held if id(a) in changed}
                         if changed else None)

    def __del__(self):
        try:
            for array in self.arrays:
                key = id(array)
                entry = _locked[key]
                entry[1] -= 1
                if entry[1] == 0:
                    del _locked[key]
                    if changed:
                        changed.pop(key, None)
                    _make_writeable(array)
        except (KeyError, TypeError):  # interpreter shutdown: module globals already gone
            pass


def _make_writeable(array) -> None:
    try:
        array.setflags(write=True)
    except ValueError:  # a view whose base is still held by another live node
        _deferred.append(array)
        return
    if _deferred:
        waiting = list(_deferred)
        _deferred.clear()
        for view in waiting:
            if id(view) not in _locked:
                _make_writeable(view)


def saved_by(tensor) -> str | None:
    """The op name of a live node holding `tensor`'s array (or an ndarray), else None."""
    array = getattr(tensor, "data", tensor)
    entry = _locked.get(id(array))
    return None if entry is None else entry[2].__name__.lower()


def live_saved_arrays() -> int:
    """How many arrays live graphs hold read-only now (0 once every graph was released)."""
    return len(_locked)


@contextlib.contextmanager
def updating(tensors, writer: str, restores: bool = False):
    """Let `writer` (e.g. "SGD.step") change the arrays of `tensors` in place even where live
    graphs hold them; those graphs' later backward then fails naming the writer. Costs
    nothing when no graph is alive (the usual case: after backward). restores=True: the
    writer puts every value back before the block ends (gradcheck's nudges), so nothing is
    marked changed."""
    opened = []
    if _locked:
        for tensor in tensors:
            array = tensor.data
            if id(array) in _locked and not array.flags.writeable:
                try:
                    array.flags.writeable = True
                except ValueError:
                    raise RuntimeError(f"{writer}: cannot update a parameter of shape {array.shape}: "
                                       f"it is a view of an array that a live graph holds") from None
                opened.append(array)
                if not restores:
                    record = changed.setdefault(id(array), [0, writer])
                    record[0] += 1
                    record[1] = writer
    try:
        yield
    finally:
        for array in opened:
            array.flags.writeable = False


def check_unchanged(ctx) -> None:
    """Raise when an array this node saved was changed by `updating` since the forward."""
    held = getattr(ctx, "saved_arrays", None)
    for array in () if held is None else held.arrays:
        record = changed.get(id(array))
        if record is None or record[0] == (held.versions or {}).get(id(array), 0):
            continue  # unchanged since this node saved it
        writer = record[1]
        which = next((f"input {i}" for i, p in enumerate(ctx.parents) if p.data is array), "output")
        raise RuntimeError(
            f"backward: the {which} of '{ctx.name}' (shape {array.shape}), saved for this backward, "
            f"was modified in place by {writer} after the forward; backpropagate before the "
            f"update (or recompute the forward after it)")
