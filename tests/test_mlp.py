"""The whole-MLP op: gradcheck, equality with the per-layer ops (bit for bit)
and with stock, one autograd node, checks that name the layer, compile."""

import pytest
import torch
import torch.nn.functional as F

from helpers import DEVICES, GRAD_ACTIVATIONS, act_id, act_kwargs
from mlpbench import nn as mnn
from mlpbench import ops
from mlpbench.models import MLP
from mlpbench.reference import stock_linear_act


def _net(depth, name, kw, bias=True, dtype=torch.float64, device="cpu", width=5, batch=(4,)):
    """x and the layers of a depth-layer net, hidden activation `name`."""
    g = torch.Generator().manual_seed(depth)
    pieces = kw.get("pieces", 1)
    sizes = [6] + [width] * (depth - 1) + [3]
    weights, biases = [], []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        rows = n_out * (pieces if i < depth - 1 else 1)
        weights.append((torch.randn(rows, n_in, generator=g, dtype=dtype) / n_in**0.5).to(device))
        biases.append(torch.randn(rows, generator=g, dtype=dtype).to(device))
    x = torch.randn(*batch, 6, generator=g, dtype=dtype).to(device)
    return x, weights, biases if bias else None


def _ours(name, kw, p, seed=11):
    def run(x, weights, biases):
        return ops.mlp(x, weights, biases, name, dropout_p=p, seed=seed, offset=2, **kw)
    return run


def _per_layer(name, kw, p, seed=11):
    """The same network through linear_act, layer l at offset 2 + l."""
    def run(x, weights, biases):
        h = x
        for l, w in enumerate(weights):
            last = l == len(weights) - 1
            b = biases[l] if biases is not None else None
            h = ops.linear_act(h, w, b, "identity" if last else name, dropout_p=0 if last else p,
                               seed=seed, offset=2 + l, **({} if last else kw))
        return h
    return run


@pytest.mark.parametrize("act", GRAD_ACTIVATIONS, ids=act_id)
@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("p", [0.0, 0.3])
def test_gradcheck_float64(act, depth, bias, p):
    name, kw = act
    x, weights, biases = _net(depth, name, kw, bias)
    params = weights + (biases or [])
    for t in [x, *params]:
        t.requires_grad_()
    n = len(weights)

    def fn(x, *params):
        return _ours(name, kw, p)(x, list(params[:n]), list(params[n:]) or None)

    assert torch.autograd.gradcheck(fn, (x, *params))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("act", GRAD_ACTIVATIONS, ids=act_id)
@pytest.mark.parametrize("p", [0.0, 0.4])
def test_equals_the_per_layer_ops_bit_for_bit(act, p, device):
    name, kw = act
    x, weights, biases = _net(3, name, kw, dtype=torch.float32, device=device, width=64,
                              batch=(2, 50))
    for t in [x, *weights, *biases]:
        t.requires_grad_()
    y = _ours(name, kw, p)(x, weights, biases)
    y_layers = _per_layer(name, kw, p)(x, weights, biases)
    assert torch.equal(y, y_layers)
    g = torch.randn_like(y)
    for ours, theirs in zip(torch.autograd.grad(y, [x, *weights, *biases], g),
                            torch.autograd.grad(y_layers, [x, *weights, *biases], g)):
        assert torch.equal(ours, theirs)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("act", GRAD_ACTIVATIONS, ids=act_id)
def test_backward_leaves_the_callers_grad_y_alone(act, device):
    """Backward writes the hidden layers' grad_pre over its own scratch, never
    over the grad_y it is given (here the output layer has an activation, so
    its grad_pre differs from grad_y)."""
    name, kw = act
    x, weights, biases = _net(3, name, kw, dtype=torch.float32, device=device, width=64,
                              batch=(50,))
    for w in weights:
        w.requires_grad_()
    y = ops.mlp(x, weights, biases, name, output_activation=name if name != "maxout" else
                "tanh", dropout_p=0.3, seed=4, **kw)
    g = torch.randn_like(y)
    given = g.clone()
    torch.autograd.grad(y, weights, g)
    assert torch.equal(g, given)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("act", GRAD_ACTIVATIONS, ids=act_id)
def test_matches_stock_in_float32(act, device):
    name, kw = act
    x, weights, biases = _net(3, name, kw, dtype=torch.float32, device=device, width=64,
                              batch=(100,))
    params = [x, *weights, *biases]
    stock_params = [t.clone().requires_grad_() for t in params]
    for t in params:
        t.requires_grad_()
    y = _ours(name, kw, 0.0)(x, weights, biases)
    h = stock_params[0]
    for l in range(3):
        last = l == 2
        h = stock_linear_act(h, stock_params[1 + l], stock_params[4 + l],
                             "identity" if last else name, **({} if last else kw))
    torch.testing.assert_close(y, h, rtol=1e-4, atol=1e-4)
    g = torch.randn_like(y)
    for ours, stock in zip(torch.autograd.grad(y, params, g), torch.autograd.grad(h, stock_params, g)):
        torch.testing.assert_close(ours, stock, rtol=1e-4, atol=1e-4)


def test_one_autograd_node_for_the_network():
    x, weights, biases = _net(4, "relu", {}, dtype=torch.float32)
    for w in weights:
        w.requires_grad_()
    y = ops.mlp(x, weights, biases, "relu", dropout_p=0.2, seed=1)
    # One node whose inputs are x, the four weights, the four biases and the seed.
    assert len(y.grad_fn.next_functions) == 1 + 4 + 4 + 1
    assert sum(f is not None for f, _ in y.grad_fn.next_functions) == 4  # the weights
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        y.sum().backward()
    ran = [e.name for e in prof.events()]
    assert ran.count("mlpbench::mlp_backward") == 1 and "mlpbench::linear_act_backward" not in ran


def test_saves_what_backward_reads_and_no_masks():
    """Per hidden layer its output (the next layer's input; relu derives from
    it), no mask, no pre-activation; for gelu also each pre-activation."""
    x, weights, biases = _net(4, "relu", {}, dtype=torch.float32, width=32, batch=(10,))
    for w in weights:
        w.requires_grad_()
    for name, per_layer in (("relu", 1), ("gelu", 2)):
        packed = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: packed.append(t) or t,
                                                      lambda t: t):
            ops.mlp(x, weights, biases, name, dropout_p=0.3, seed=2)
        inputs = {t.data_ptr() for t in [x, *weights, *biases]}
        floats = [t for t in packed if t.data_ptr() not in inputs and t.numel() > 1]
        assert len(floats) == 3 * per_layer, (name, [tuple(t.shape) for t in floats])


@pytest.mark.parametrize("kind", ["mlp", "layer"])
def test_modules_and_state_dicts(kind):
    torch.manual_seed(0)
    models = {f: MLP([20, 16, 12, 5], "tanh", dropout=0.3, fused=f) for f in ("mlp", "layer", True, False)}
    models["FusedMLP"] = mnn.FusedMLP([20, 16, 12, 5], "tanh", dropout=0.3)
    source = models[kind]
    x = torch.randn(7, 20)
    for target in models.values():
        target.load_state_dict(source.state_dict())
        source.load_state_dict(target.state_dict())
    outs = {}
    for label, model in models.items():
        torch.manual_seed(3)
        outs[label] = model.train()(x)
    # The fused variants draw the same masks for the same manual_seed.
    assert torch.equal(outs["mlp"], outs["layer"]) and torch.equal(outs["mlp"], outs[True])
    assert torch.equal(outs["mlp"], outs["FusedMLP"])
    for model in models.values():
        model.eval()
    for label in ("layer", False, "FusedMLP"):
        torch.testing.assert_close(models[label](x), models["mlp"](x), rtol=1e-5, atol=1e-5)
    assert MLP([4, 3, 2], fused=True, batchnorm=True).fused == "layer"
    assert MLP([4, 3, 2], fused=True).fused == "mlp"
    with pytest.raises(ValueError, match="fused='mlp' runs the whole network as one op"):
        MLP([4, 3, 2], fused="mlp", batchnorm=True)
    with pytest.raises(ValueError, match="fused must be one of"):
        MLP([4, 3, 2], fused="yes")


def test_twenty_training_steps_bit_identical_to_per_layer():
    """Lecture-shaped net (smaller), dropout, Adam: the whole-MLP and the
    per-layer models give the same losses to the bit for 20 steps."""
    losses = {}
    g = torch.Generator().manual_seed(0)
    data = [(torch.rand(100, 784, generator=g), torch.randint(0, 10, (100,), generator=g))
            for _ in range(20)]
    for kind in ("mlp", "layer"):
        torch.manual_seed(0)
        model = MLP([784, 64, 64, 10], "relu", dropout=0.3, fused=kind)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        losses[kind] = []
        for xb, yb in data:
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses[kind].append(loss.item())
    assert losses["mlp"] == losses["layer"]


@pytest.mark.parametrize("device", DEVICES)
def test_bad_input_names_the_layer_and_argument(device):
    x, weights, biases = _net(3, "relu", {}, dtype=torch.float32, device=device)
    with pytest.raises(ValueError, match=r"biases must be empty \(no biases\) or hold one per layer \(3\), got 2"):
        ops.mlp(x, weights, biases[:2])
    with pytest.raises(ValueError, match="weights must hold at least one layer"):
        ops.mlp(x, [], None)
    bad = [weights[0], weights[1][:, :4], weights[2]]
    with pytest.raises(ValueError, match=r"layer 1: weights\[1\] takes 4 inputs, but layer 0 gives 5 outputs"):
        ops.mlp(x, bad, None)
    with pytest.raises(ValueError, match=r"layer 0: weights\[0\] takes 6 inputs, but x has 5 features"):
        ops.mlp(x[..., :5], weights, None)
    with pytest.raises(TypeError, match=r"layer 2: weights\[2\] must have x's dtype Float, got Double"):
        ops.mlp(x, [weights[0], weights[1], weights[2].double()], None)
    with pytest.raises(ValueError, match=r"layer 1: biases\[1\] must be 1-D with 5 elements"):
        ops.mlp(x, weights, [biases[0], biases[1][:3], biases[2]])
    with pytest.raises(TypeError, match=r"mlp: weights\[1\] must be a torch.Tensor, got float"):
        ops.mlp(x, [weights[0], 1.0], None)
    with pytest.raises(TypeError, match="mlp: weights must be a list of tensors, got Tensor"):
        ops.mlp(x, weights[0], None)
    if device == "cuda":
        with pytest.raises(ValueError, match=r"layer 1: weights\[1\] must be on x's device cuda:0, got cpu"):
            ops.mlp(x, [weights[0], weights[1].cpu(), weights[2]], None)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("act", [("relu", {}), ("gelu", {}), ("maxout", {"pieces": 3})], ids=act_id)
def test_opcheck(act, device):
    name, kw = act
    for bias, p in ((True, 0.0), (False, 0.3)):
        x, weights, biases = _net(3, name, kw, bias, dtype=torch.float32, device=device)
        for t in [x, *weights, *(biases or [])]:
            t.requires_grad_()
        args = (x, weights, biases or [], ops.activation_spec(name, **kw), "identity", p,
                torch.tensor(5) if p else None, 0)
        torch.library.opcheck(torch.ops.mlpbench.mlp.default, args)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("backend", ["inductor", "aot_eager"])
def test_compile_fullgraph_training_with_dropout(backend, device):
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = MLP([20, 16, 16, 4], "gelu", dropout=0.3, fused="mlp").to(device).train()
    compiled = torch.compile(model, fullgraph=True, backend=backend)
    x = torch.randn(8, 20, device=device)
    results = {}
    for label, fn in (("eager", model), ("compiled", compiled)):
        torch.manual_seed(5)
        model.zero_grad()
        y = fn(x)
        y.square().sum().backward()
        results[label] = (y.detach(), [p.grad.clone() for p in model.parameters()])
    torch.testing.assert_close(results["compiled"][0], results["eager"][0], rtol=1e-5, atol=1e-5)
    for a, b in zip(results["compiled"][1], results["eager"][1]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_reduce_overhead_matches_eager():
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = MLP([784, 256, 256, 10], "relu", dropout=0.0, fused="mlp").cuda()
    compiled = torch.compile(model, mode="reduce-overhead", fullgraph=True)
    x = torch.randn(100, 784, device="cuda")
    for _ in range(3):
        y = compiled(x)
    torch.testing.assert_close(y, model(x))


@pytest.mark.parametrize("act", [("tanh", {}), ("gelu", {}), ("maxout", {"pieces": 2})], ids=act_id)
def test_forward_mode_and_double_backward(act):
    """jvp and gradgradcheck through the whole-MLP op (its composition), with
    dropout, against the per-layer ops."""
    name, kw = act
    x, weights, biases = _net(3, name, kw)
    params = [x, *weights, *biases]
    tangents = [torch.randn_like(t) for t in params]

    def whole(*p):
        return _ours(name, kw, 0.3)(p[0], list(p[1:4]), list(p[4:]))

    def layers(*p):
        return _per_layer(name, kw, 0.3)(p[0], list(p[1:4]), list(p[4:]))

    y, ty = torch.func.jvp(whole, tuple(params), tuple(tangents))
    y_ref, ty_ref = torch.func.jvp(layers, tuple(params), tuple(tangents))
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(ty, ty_ref)
    for t in params:
        t.requires_grad_()
    assert torch.autograd.gradgradcheck(whole, tuple(params))
