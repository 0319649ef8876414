"""minigrad.nn.Module and Parameter: registration, traversal, tied weights, state dicts,
freezing, modes and repr."""
from __future__ import annotations

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn


class Block(nn.Module):
    def __init__(self, width, generator):
        super().__init__()
        self.att = nn.Linear(width, width, generator=generator)
        self.norm = nn.LayerNorm(width)
        self.ff = nn.Sequential(nn.Linear(width, 2 * width, generator=generator), nn.GELU(),
                                nn.Linear(2 * width, width, generator=generator))

    def forward(self, x):
        x = x + self.att(self.norm(x))
        return x + self.ff(x)


class TinyLM(nn.Module):
    """Embedding -> blocks -> norm -> head, with the head tied to the embedding."""

    def __init__(self, vocab=11, width=6, layers=2, seed=0, tie=True):
        super().__init__()
        generator = np.random.default_rng(seed)
        self.tok_emb = nn.Embedding(vocab, width, generator=generator)
        self.blocks = nn.ModuleList([Block(width, generator) for _ in range(layers)])
        self.final_norm = nn.LayerNorm(width)
        self.out_head = nn.Linear(width, vocab, bias=False, generator=generator)
        if tie:
            self.out_head.weight = self.tok_emb.weight
        self.register_buffer("mask", np.triu(np.ones((4, 4), dtype=bool), k=1))
        self.register_buffer("cache", np.zeros(3, dtype=np.float32), persistent=False)

    def forward(self, token_ids):
        x = self.tok_emb(token_ids)
        for block in self.blocks:
            x = block(x)
        return self.out_head(self.final_norm(x))


def test_registration_and_dotted_names():
    model = TinyLM(tie=False)
    names = [name for name, _ in model.named_parameters()]
    assert names[:3] == ["tok_emb.weight", "blocks.0.att.weight", "blocks.0.att.bias"]
    assert "blocks.1.ff.2.weight" in names and "out_head.weight" in names
    assert "out_head.bias" not in names  # bias=False registers None, which is skipped
    assert [n for n, _ in model.named_children()] == ["tok_emb", "blocks", "final_norm", "out_head"]
    assert len(list(model.modules())) == len(dict(model.named_modules()))
    assert dict(model.named_modules())["blocks.0.ff.1"].__class__ is nn.GELU
    assert model.get_submodule("blocks.1.att") is model.blocks[1].att
    assert isinstance(model.tok_emb.weight, nn.Parameter) and model.tok_emb.weight.requires_grad


def test_tied_weights_listed_once_but_named_twice_in_state_dict():
    tied, untied = TinyLM(tie=True), TinyLM(tie=False)
    assert untied.num_parameters() - tied.num_parameters() == 11 * 6
    names = [name for name, _ in tied.named_parameters()]
    assert "out_head.weight" not in names and "tok_emb.weight" in names
    assert len(list(tied.parameters())) == len({id(p) for p in tied.parameters()})
    state = tied.state_dict()
    assert "out_head.weight" in state and state["out_head.weight"] is state["tok_emb.weight"]
    assert "mask" in state and "cache" not in state  # non-persistent buffer left out
    assert list(state)[0] == "mask"  # own buffers before children, as PyTorch


def test_tied_weights_stay_tied_after_load_and_get_gradients_from_both_uses():
    source, target = TinyLM(seed=1), TinyLM(seed=2)
    target.load_state_dict({k: v.copy() for k, v in source.state_dict().items()})
    assert target.out_head.weight is target.tok_emb.weight
    np.testing.assert_array_equal(target.tok_emb.weight.data, source.tok_emb.weight.data)
    logits = target(np.array([[1, 2, 3]]))
    logits.sum().backward()
    assert target.tok_emb.weight.grad is not None and target.tok_emb.weight.grad.shape == (11, 6)


def test_load_state_dict_copies_in_place_and_keeps_references():
    model = TinyLM(seed=3)
    before = {name: id(param.data) for name, param in model.named_parameters()}
    new_values = {k: np.full_like(v, 0.5) for k, v in TinyLM(seed=4).state_dict().items()}
    result = model.load_state_dict(new_values)
    assert result == nn.IncompatibleKeys([], [])
    assert {name: id(param.data) for name, param in model.named_parameters()} == before
    assert all(np.all(p.data == 0.5) for p in model.parameters())
    new_values["blocks.0.att.weight"][...] = 7.0  # the module copied, it does not alias
    assert np.all(model.blocks[0].att.weight.data == 0.5)


def test_strict_load_reports_every_problem_and_changes_nothing():
    model = TinyLM(seed=5)
    snapshot = {k: v.copy() for k, v in model.state_dict().items()}
    bad = {k: np.zeros_like(v) for k, v in model.state_dict().items()}
    del bad["final_norm.weight"]                                    # missing
    bad["blocks.0.att.W_query.weight"] = np.zeros((6, 6), np.float32)  # unexpected
    bad["blocks.1.att.bias"] = np.zeros(7, np.float32)              # wrong shape
    bad["blocks.0.norm.bias"] = np.zeros(6, np.float64)             # wrong dtype
    with pytest.raises(nn.StateDictError) as info:
        model.load_state_dict(bad)
    message = str(info.value)
    for fragment in ["missing key: final_norm.weight",
                     "unexpected key: blocks.0.att.W_query.weight",
                     "blocks.1.att.bias: shape (7,) in the state dict, (6,) in the model",
                     "blocks.0.norm.bias: dtype float64", "nothing was changed", "4 problems"]:
        assert fragment in message
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, snapshot[name])


def test_non_strict_load_returns_missing_and_unexpected_but_rejects_shapes():
    model = TinyLM(seed=6)
    partial = {"final_norm.weight": np.full(6, 2.0, np.float32), "extra": np.zeros(1)}
    missing, unexpected = model.load_state_dict(partial, strict=False)
    assert unexpected == ["extra"] and "tok_emb.weight" in missing
    assert np.all(model.final_norm.weight.data == 2.0)
    with pytest.raises(nn.StateDictError, match="shape"):
        model.load_state_dict({"final_norm.weight": np.zeros(5, np.float32)}, strict=False)


def test_load_rejects_different_values_for_tied_names():
    model = TinyLM(seed=7)
    state = {k: v.copy() for k, v in model.state_dict().items()}
    state["out_head.weight"] = state["out_head.weight"] + 1
    with pytest.raises(nn.StateDictError, match="tied"):
        model.load_state_dict(state)


def test_load_state_dict_bad_type():
    with pytest.raises(TypeError, match="dict"):
        TinyLM().load_state_dict([1, 2])


def test_freezing_excludes_parameters_from_gradients():
    model = TinyLM(tie=False, seed=8)
    model.requires_grad_(False)
    model.out_head.requires_grad_(True)
    assert model.num_parameters(trainable_only=True) == 6 * 11
    model(np.array([[0, 1, 2]])).sum().backward()
    assert model.out_head.weight.grad is not None
    assert all(p.grad is None for name, p in model.named_parameters() if not name.startswith("out_head"))
    model.zero_grad()
    assert model.out_head.weight.grad is None


def test_zero_grad_set_to_none_false_fills_zeros():
    layer = nn.Linear(3, 2)
    layer(np.ones((1, 3), np.float32)).sum().backward()
    grad = layer.weight.grad
    layer.zero_grad(set_to_none=False)
    assert layer.weight.grad is grad and np.all(grad == 0)


def test_train_eval_are_recursive():
    model = TinyLM()
    assert model.training and model.blocks[0].ff[1].training
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    with pytest.raises(TypeError):
        model.train("no")


def test_apply_visits_children_first():
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.ReLU()))
    visited = []
    model.apply(lambda m: visited.append(type(m).__name__))
    assert visited == ["Linear", "ReLU", "Sequential", "Sequential"]


def test_set_none_delete_and_plain_attributes():
    layer = nn.Linear(3, 2)
    layer.bias = None
    assert [n for n, _ in layer.named_parameters()] == ["weight"] and "bias" not in layer.state_dict()
    with pytest.raises(TypeError, match="parameter 'weight'"):
        layer.weight = np.zeros((2, 3))
    del layer.weight
    assert list(layer.parameters()) == []
    layer.note = "hello"
    assert layer.note == "hello" and "note" not in layer.state_dict()
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        _ = layer.missing
    model = TinyLM()
    model.blocks = None
    assert not any(name.startswith("blocks") for name in model.state_dict())
    model.mask = None
    assert "mask" not in model.state_dict()


def test_reassigning_a_parameter_name_to_a_module_moves_it():
    module = nn.Module()
    module.thing = nn.Parameter(np.zeros(2, np.float32))
    module.thing = nn.Linear(1, 1)
    assert [n for n, _ in module.named_parameters()] == ["thing.weight", "thing.bias"]


def test_forgetting_super_init_is_a_clear_error():
    class Broken(nn.Module):
        def __init__(self):
            self.layer = nn.Linear(1, 1)

    with pytest.raises(AttributeError, match=r"call super\(\)\.__init__\(\) first"):
        Broken()


def test_buffers_and_register_errors():
    model = TinyLM()
    assert [n for n, _ in model.named_buffers()] == ["mask", "cache"]
    with pytest.raises(TypeError, match="ndarray"):
        model.register_buffer("bad", [1, 2])
    with pytest.raises(KeyError):
        model.register_buffer("a.b", np.zeros(1))
    with pytest.raises(TypeError, match="Parameter"):
        model.register_parameter("p", np.zeros(1))


def test_to_double_converts_parameters_and_float_buffers():
    model = TinyLM().double()
    assert all(p.dtype == np.float64 for p in model.parameters())
    assert model.mask.dtype == bool and model.cache.dtype == np.float64
    assert model.out_head.weight is model.tok_emb.weight


def test_parameter_semantics():
    data = np.ones(3, np.float32)
    param = nn.Parameter(data)
    assert param.requires_grad and param.data is data
    assert nn.Parameter(data, requires_grad=False).requires_grad is False
    assert repr(param).startswith("Parameter containing:")
    assert isinstance(param * 2, mg.Tensor) and not isinstance(param * 2, nn.Parameter)
    with pytest.raises(TypeError):
        nn.Parameter(np.arange(3))  # integer parameters cannot require grad


def test_repr_shows_the_tree():
    text = repr(TinyLM())
    assert text.startswith("TinyLM(\n  (tok_emb): Embedding(11, 6)\n  (blocks): ModuleList(\n    (0): Block(")
    assert "(att): Linear(in_features=6, out_features=6, bias=True)" in text
    assert "(out_head): Linear(in_features=6, out_features=11, bias=False)" in text
    assert repr(nn.Dropout(0.1)) == "Dropout(p=0.1)"
