"""nn.cross_entropy_backward: the loss, the logits and every .grad exactly as
`loss = ops.cross_entropy(model(x), y); loss.backward()` gives them, through
the ops alone for whole-MLP models and through autograd for the others."""

import pytest
import torch

from helpers import CUDA, DEVICES
from mlpbench import nn as mnn
from mlpbench import ops
from mlpbench.models import MLP


def _model(kind, device, dtype, bias=True):
    torch.manual_seed(0)
    if kind == "FusedMLP":
        model = mnn.FusedMLP([20, 16, 16, 5], "gelu", dropout=0.3, bias=bias, init="xavier")
    else:
        model = MLP([20, 16, 16, 5], "relu", dropout=0.3, fused=kind)
    return model.to(device=device, dtype=dtype)


def _steps(model, x, y, direct, autocast=None, steps=2, **kw):
    """Two calls without zeroing (the second accumulates): each call's (loss,
    logits), then the gradients."""
    context = (torch.autocast(x.device.type, dtype=autocast) if autocast
               else torch.autocast(x.device.type, enabled=False))
    out = []
    for _ in range(steps):
        torch.manual_seed(1)  # the dropout seed each call draws
        with context:
            if direct:
                loss, logits = mnn.cross_entropy_backward(model, x, y, **kw)
            else:
                logits = model(x)
                loss = ops.cross_entropy(logits, y, **kw)
        if not direct:
            loss.backward()
        assert loss.grad_fn is None or not direct
        out.append((loss.detach(), logits.detach()))
    return out, [p.grad for p in model.parameters()]


def _assert_same(kind, device, dtype, *, train=True, bias=True, autocast=None, **kw):
    x = torch.randn(9, 20, device=device, dtype=dtype)
    y = torch.tensor([0, 1, 2, 3, 4, 0, 1, kw.get("ignore_index", -100), 2], device=device)
    got, want = [], []
    for direct, sink in ((True, got), (False, want)):
        model = _model(kind, device, dtype, bias).train(train)
        sink.append(_steps(model, x, y, direct, autocast, **kw))
    (got_out, got_grads), (want_out, want_grads) = got[0], want[0]
    for (gl, glog), (wl, wlog) in zip(got_out, want_out):
        assert gl.dtype == wl.dtype and torch.equal(gl, wl)
        assert glog.dtype == wlog.dtype and torch.equal(glog, wlog)
    for g, w in zip(got_grads, want_grads):
        assert g.dtype == w.dtype and torch.equal(g, w)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["FusedMLP", "mlp"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_whole_mlp_equals_autograd(kind, dtype, device, monkeypatch):
    calls = []
    real = mnn.ops.mlp_cross_entropy_grads
    monkeypatch.setattr(mnn.ops, "mlp_cross_entropy_grads",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    _assert_same(kind, device, dtype)
    assert len(calls) == 2  # the direct path, not autograd
    _assert_same(kind, device, dtype, train=False, ignore_index=7, reduction="sum")
    if kind == "FusedMLP":
        _assert_same(kind, device, dtype, bias=False)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["FusedMLP", "mlp"])
def test_whole_mlp_under_autocast_equals_autograd(kind, device):
    dtypes = [torch.bfloat16] + ([torch.float16] if device == "cuda" else [])
    for dtype in dtypes:
        _assert_same(kind, device, torch.float32, autocast=dtype)


@pytest.mark.parametrize("kind", ["layer", False])
def test_other_models_go_through_autograd(kind, monkeypatch):
    calls = []
    real = mnn.ops.mlp_cross_entropy_grads
    monkeypatch.setattr(mnn.ops, "mlp_cross_entropy_grads",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    _assert_same(kind, "cpu", torch.float32)
    assert not calls


@pytest.mark.parametrize("kind", ["FusedMLP", "mlp", "layer", False])
def test_accumulate_false_sets_each_gradient_afresh(kind):
    """Stale gradients are replaced, not added to, on both paths: the values
    of zero_grad(set_to_none=True) and a fresh backward."""
    x = torch.randn(9, 20)
    y = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2, 3])
    model = _model(kind, "cpu", torch.float32)
    for p in model.parameters():
        p.grad = torch.full_like(p, 7.0)
    torch.manual_seed(1)
    loss, _ = mnn.cross_entropy_backward(model, x, y, accumulate=False)
    fresh = _model(kind, "cpu", torch.float32)
    torch.manual_seed(1)
    want = ops.cross_entropy(fresh(x), y)
    want.backward()
    assert torch.equal(loss, want.detach())
    for p, w in zip(model.parameters(), fresh.parameters()):
        assert torch.equal(p.grad, w.grad)


def test_hooks_and_input_gradients_see_autograd(monkeypatch):
    """What the ops-alone path would skip sends the call through autograd:
    a module hook runs, a parameter hook runs, x gets its gradient."""
    x = torch.randn(4, 20)
    y = torch.tensor([0, 1, 2, 3])
    model = _model("FusedMLP", "cpu", torch.float32)
    seen = []
    handle = model.register_forward_hook(lambda *_: seen.append("module"))
    mnn.cross_entropy_backward(model, x, y)
    handle.remove()
    handle = torch.nn.modules.module.register_module_forward_hook(
        lambda *_: seen.append("global"))
    mnn.cross_entropy_backward(model, x, y)
    handle.remove()
    # A layer's hook runs on neither path (the model's forward calls the op,
    # not the layer), so the direct path stays.
    handle = model.layers[0].register_forward_hook(lambda *_: seen.append("layer"))
    calls = []
    real = mnn.ops.mlp_cross_entropy_grads
    with monkeypatch.context() as patch:
        patch.setattr(mnn.ops, "mlp_cross_entropy_grads",
                      lambda *a, **k: calls.append(1) or real(*a, **k))
        model(x).sum().backward()
        mnn.cross_entropy_backward(model, x, y)
    handle.remove()
    assert calls == [1]
    model.layers[0].weight.register_hook(lambda g: seen.append("parameter"))
    mnn.cross_entropy_backward(model, x, y)
    assert seen == ["module", "global", "parameter"]
    xg = x.clone().requires_grad_()
    loss, _ = mnn.cross_entropy_backward(model, xg, y)
    assert xg.grad is not None and xg.grad.abs().sum() > 0 and loss.grad_fn is None

    class Doubled(mnn.FusedMLP):  # a forward of its own: not just the op
        def forward(self, x):
            return 2 * super().forward(x)

    torch.manual_seed(0)
    doubled = Doubled([20, 16, 5])
    torch.manual_seed(0)
    plain = mnn.FusedMLP([20, 16, 5])
    assert torch.equal(mnn.cross_entropy_backward(doubled, x, y)[1],
                       2 * mnn.cross_entropy_backward(plain, x, y)[1])


def test_bad_arguments():
    model = _model("FusedMLP", "cpu", torch.float32)
    x = torch.randn(3, 20)
    with pytest.raises(ValueError, match="reduction must be 'mean' or 'sum'"):
        mnn.cross_entropy_backward(model, x, torch.tensor([0, 1, 2]), reduction="none")
    with pytest.raises(TypeError, match="target"):
        mnn.cross_entropy_backward(model, x, [0, 1, 2])
    with pytest.raises(TypeError, match="accumulate must be a bool, got str"):
        mnn.cross_entropy_backward(model, x, torch.tensor([0, 1, 2]), accumulate="no")
    with pytest.raises(TypeError, match="target must be an int64 tensor"):
        mnn.cross_entropy_backward(model, x, torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(RuntimeError, match="does not require grad"):
        with torch.no_grad():  # as loss.backward() there
            mnn.cross_entropy_backward(model, x, torch.tensor([0, 1, 2]))
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.skipif(not CUDA, reason="no CUDA device")
def test_cuda_model_with_cpu_input_is_refused():
    model = _model("FusedMLP", "cuda", torch.float32)
    with pytest.raises(RuntimeError, match="device"):
        mnn.cross_entropy_backward(model, torch.randn(3, 20), torch.tensor([0, 1, 2]))
