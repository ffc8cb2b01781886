"""nn.cross_entropy_backward(..., optimizer=opt): parameters, optimizer state,
loss and .grad exactly as cross_entropy_backward followed by opt.step(), with
a fused Adam or AdamW's update inside the backward (_C.mlp_adam_step) where
nothing else would see the difference, and the optimizer's own step
everywhere else."""

import warnings

import pytest
import torch

from mlpbench import nn as mnn
from mlpbench import ops
from mlpbench.models import MLP

ADAMS = [(torch.optim.Adam, {}),
         (torch.optim.Adam, {"weight_decay": 0.1, "amsgrad": True}),
         (torch.optim.AdamW, {"weight_decay": 0.1, "maximize": True})]


def _model(kind, train=True):
    torch.manual_seed(0)
    if kind == "FusedMLP":
        model = mnn.FusedMLP([20, 16, 16, 5], "gelu", dropout=0.3)
    else:
        model = MLP([20, 16, 16, 5], "relu", dropout=0.3, fused="mlp")
    return model.train(train)


@pytest.fixture
def fused_steps(monkeypatch):
    """How many calls took the update inside the backward."""
    calls = []
    real = ops._C.mlp_adam_step
    monkeypatch.setattr(ops._C, "mlp_adam_step", lambda *a: calls.append(1) or real(*a))
    return calls


def _train(kind, make_optimizer, inside, steps=3, train=True, setup=None, **kw):
    """`steps` training steps: with the optimizer passed (inside) or stepped
    after the call; (model, optimizer, losses)."""
    x = torch.randn(9, 20, generator=torch.Generator().manual_seed(5))
    y = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2, 3])
    model = _model(kind, train)
    opt = make_optimizer(model)
    if setup:
        setup(opt)
    losses = []
    for step in range(steps):
        torch.manual_seed(10 + step)  # each step's dropout seed
        if inside:
            loss, _ = mnn.cross_entropy_backward(model, x, y, optimizer=opt, **kw)
        else:
            loss, _ = mnn.cross_entropy_backward(model, x, y, **kw)
            opt.step()
        losses.append(loss)
    return model, opt, losses


def _assert_same(got, want):
    (gm, go, gl), (wm, wo, wl) = got, want
    assert all(torch.equal(a, b) for a, b in zip(gl, wl))
    for p, q in zip(gm.parameters(), wm.parameters()):
        assert torch.equal(p, q) and torch.equal(p.grad, q.grad)
        assert go.state[p].keys() == wo.state[q].keys()
        assert all(torch.equal(go.state[p][k], wo.state[q][k]) for k in go.state[p])


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("kind", ["FusedMLP", "mlp"])
@pytest.mark.parametrize("adam", ADAMS, ids=["adam", "adam-l2-amsgrad", "adamw-maximize"])
def test_fused_adam_inside_the_backward_equals_its_step(adam, kind, train, fused_steps):
    cls, kw = adam

    def make(model):
        return cls(model.parameters(), lr=1e-2, fused=True, **kw)

    want = _train(kind, make, False, train=train, accumulate=False)
    assert not fused_steps
    got = _train(kind, make, True, train=train, accumulate=False)
    assert len(fused_steps) == 2  # the first step makes the state, as opt.step() does
    _assert_same(got, want)


def _adam(model):
    return torch.optim.Adam(model.parameters(), lr=1e-2, fused=True)


def _hooked(opt):
    opt.register_step_post_hook(lambda *_: hooked.append(1))


hooked = []


@pytest.mark.parametrize("case", ["sgd", "unfused", "two groups", "accumulate", "hook",
                                  "patched step"])
def test_other_optimizers_step_after_the_backward(case, fused_steps):
    """Everything the update inside the backward does not cover gets the
    optimizer's own step, with the same results."""
    make, setup, kw = _adam, None, {"accumulate": False}
    if case == "sgd":
        def make(model):
            return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    elif case == "unfused":
        def make(model):
            return torch.optim.Adam(model.parameters(), lr=1e-2)
    elif case == "two groups":
        def make(model):
            params = list(model.parameters())
            return torch.optim.Adam([{"params": params[:2]}, {"params": params[2:], "lr": 1e-3}],
                                    lr=1e-2, fused=True)
    elif case == "accumulate":
        kw = {}
    elif case == "hook":
        setup = _hooked
    else:
        def setup(opt):
            step = opt.step
            opt.step = lambda *a, **k: hooked.append(1) or step(*a, **k)
    hooked.clear()
    want = _train("mlp", make, False, setup=setup, **kw)
    seen = len(hooked)
    got = _train("mlp", make, True, setup=setup, **kw)
    assert not fused_steps
    assert len(hooked) == 2 * seen  # the hook or the patched step ran on every step
    _assert_same(got, want)


@pytest.mark.parametrize("kind", ["FusedMLP", "mlp"])
def test_under_autocast_equals_its_step(kind, fused_steps):
    """Under bf16 autocast the layers compute with bf16 copies and Adam
    updates the float32 parameters with the widened gradients, as autocast's
    backward and optimizer.step() give them."""
    def train(inside):
        x = torch.randn(9, 20, generator=torch.Generator().manual_seed(7))
        y = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2, 3])
        model = _model(kind)
        opt = _adam(model)
        losses = []
        for step in range(3):
            torch.manual_seed(10 + step)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                if inside:
                    loss, _ = mnn.cross_entropy_backward(model, x, y, accumulate=False,
                                                         optimizer=opt)
                else:
                    loss, _ = mnn.cross_entropy_backward(model, x, y, accumulate=False)
            if not inside:
                opt.step()
            losses.append(loss)
        return model, opt, losses

    want = train(False)
    got = train(True)
    assert len(fused_steps) == 2
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32
               for p in got[0].parameters())
    _assert_same(got, want)


def test_lr_scheduler_sees_the_step(fused_steps):
    """A scheduler wraps optimizer.step to record that it ran (else its first
    step warns of the wrong order); the update inside the backward records
    it too."""
    def run(inside):
        model, opt, _ = _train("mlp", _adam, inside, steps=1, accumulate=False)  # the state
        scheduler = torch.optim.lr_scheduler.StepLR(opt, 1, 0.5)
        x = torch.randn(9, 20, generator=torch.Generator().manual_seed(6))
        y = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2, 3])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for step in range(2):
                torch.manual_seed(20 + step)
                if inside:
                    mnn.cross_entropy_backward(model, x, y, accumulate=False, optimizer=opt)
                else:
                    mnn.cross_entropy_backward(model, x, y, accumulate=False)
                    opt.step()
                scheduler.step()
        return model, opt

    (gm, go), (wm, wo) = run(True), run(False)
    assert len(fused_steps) == 2
    assert go.param_groups[0]["lr"] == wo.param_groups[0]["lr"] == 1e-2 / 4
    assert all(torch.equal(a, b) for a, b in zip(gm.parameters(), wm.parameters()))


def test_bad_optimizer_and_target():
    model = _model("mlp")
    x = torch.randn(3, 20)
    with pytest.raises(TypeError, match="optimizer must be a torch.optim.Optimizer or None, "
                                        "got str"):
        mnn.cross_entropy_backward(model, x, torch.tensor([0, 1, 2]), optimizer="adam")
    opt = _adam(model)
    mnn.cross_entropy_backward(model, x, torch.tensor([0, 1, 2]), accumulate=False, optimizer=opt)
    with pytest.raises(TypeError, match="target"):
        mnn.cross_entropy_backward(model, x, [0, 1, 2], accumulate=False, optimizer=opt)
    with pytest.raises(TypeError, match="target must be an int64 tensor"):
        mnn.cross_entropy_backward(model, x, torch.tensor([0.0, 1.0, 2.0]), accumulate=False,
                                   optimizer=opt)
    with pytest.raises(TypeError, match="ignore_index must be an int, got float"):
        mnn.cross_entropy_backward(model, x, torch.tensor([0, 1, 2]), accumulate=False,
                                   optimizer=opt, ignore_index=1.5)
