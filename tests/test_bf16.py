"""bfloat16 on the CPU and autocast: every op against a float32 reference
computed from the same bf16-rounded inputs, at every instruction-set level;
autocast's dtypes as stock's; masks the same in every dtype.

Tolerances: bfloat16 keeps 8 significant bits, so one rounding is off by at
most 2^-9 (0.2%) relative; each test says which roundings it allows.
"""

import pytest
import torch
import torch.nn.functional as F

import mlpbench._C as _C
from helpers import ELEMENTWISE, GRAD_ACTIVATIONS, SIMD_LEVELS, act_id, act_kwargs, make_linear
from mlpbench import nn as mnn
from mlpbench import ops
from mlpbench.models import MLP
from mlpbench.reference import stock_activation, stock_linear_act, stock_maxout

BF16 = torch.bfloat16



def _bf16_inputs(*tensors):
    """The bf16 tensors and their exact float32 copies (grad-requiring)."""
    low = [t.to(BF16).requires_grad_() for t in tensors]
    high = [t.detach().float().requires_grad_() for t in low]
    return low, high


@pytest.mark.parametrize("act", ELEMENTWISE + [("step", {})], ids=act_id)
def test_activation_bf16(level, act):
    name, kw = act
    torch.manual_seed(0)
    (x,), (xf,) = _bf16_inputs(torch.randn(1003) * 3)
    xs = x.detach().clone().requires_grad_()
    y, yf, ys = (ops.activation(x, name, **kw), stock_activation(xf, name, **kw),
                 stock_activation(xs, name, **kw))
    assert y.dtype == ys.dtype == BF16
    _within(y, yf, ys)
    if name == "step":
        return
    g = torch.randn(1003).to(BF16)
    grads = [torch.autograd.grad(out, t, g.to(t.dtype))[0] for out, t in ((y, x), (yf, xf), (ys, xs))]
    assert grads[0].dtype == BF16
    # A derivative from a saved bf16 output (tanh's 1 - y^2, ELU's y + alpha)
    # is off by up to an ulp of y (2^-8 of |y|, y up to alpha) times |g|:
    # stock's ELU differentiates from x instead, so its error is no guide.
    _within(*grads, absolute=2**-8 * max(1.0, kw.get("alpha", 1.0)) * g.float().abs())


def _within(got, want, stock, absolute=0.0):
    """got (bf16) within one rounding of the float32 truth `want`, or no further
    off than twice stock's bf16 result is, plus `absolute`."""
    got, want, stock = got.float(), want.float(), stock.float()
    allowed = 2**-8 * want.abs() + 2 * (stock - want).abs() + absolute + 1e-6
    off = (got - want).abs() - allowed
    assert off.max().item() <= 0, f"off by {off.max().item():.3g} beyond the allowance"


def _exact_linear(n_out, pieces, batch=37, n_in=16):
    """Inputs whose products are exact in bf16 (x in {-1, 0, 1}, weights
    multiples of 1/8 up to 1: sums of 16 stay within bf16's 8 bits), and biases
    (multiples of 1/8 plus (2s + 1)/64 for piece s) that keep every
    pre-activation off 0 and a unit's pieces apart: so ours and the float32
    reference see the same pre-activations, and no kink can flip."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(-1, 2, (batch, n_in), generator=g).float()
    w = torch.randint(-8, 9, (n_out * pieces, n_in), generator=g).float() / 8
    piece = torch.arange(n_out * pieces) % pieces
    b = torch.randint(-8, 9, (n_out * pieces,), generator=g) / 8 + (2 * piece + 1) / 64
    return x, w, b


@pytest.mark.parametrize("act", GRAD_ACTIVATIONS, ids=act_id)
@pytest.mark.parametrize("p", [0.0, 0.3])
def test_linear_act_bf16(level, act, p):
    """The pre-activation is rounded to bf16 once (as stock's), the rest
    computed in float32 and rounded once at the store: outputs within one bf16
    rounding (2^-7 relative allowed) of float32 from the rounded
    pre-activation; the gradients within bf16 rounding of products of 24 or 37
    terms relative to the largest gradient (2^-6 of it)."""
    name, kw = act
    (x, w, b), (xf, wf, bf) = _bf16_inputs(*_exact_linear(24, kw.get("pieces", 1)))
    y = ops.linear_act(x, w, b, name, dropout_p=p, seed=4, **kw)
    keep = ops.dropout(torch.ones(y.shape), p, seed=4) if p else 1.0
    pre = F.linear(xf, wf, bf)
    pre = pre + (pre.to(BF16).float() - pre).detach()  # rounded once; gradient as is
    yf = (stock_maxout(pre, kw["pieces"]) if name == "maxout"
          else stock_activation(pre, name, **act_kwargs(kw))) * keep
    assert y.dtype == BF16
    torch.testing.assert_close(y.float(), yf, rtol=2**-7, atol=1e-6)
    g = torch.randn(y.shape).to(BF16)
    got = torch.autograd.grad(y, (x, w, b), g)
    want = torch.autograd.grad(yf, (xf, wf, bf), g.float())
    for a, e in zip(got, want):
        assert a.dtype == BF16
        torch.testing.assert_close(a.float(), e, rtol=2**-7, atol=2**-6 * e.abs().max().item())


def test_bias_gradient_accumulates_in_float32():
    """Summing 4096 rows in bf16 would lose the small terms (2^-8 relative a
    step); the bias gradient sums in float32 and rounds once."""
    x = torch.zeros(4096, 8, dtype=BF16)
    w = torch.zeros(16, 8, dtype=BF16)
    b = torch.zeros(16, dtype=BF16, requires_grad=True)
    g = torch.full((4096, 16), 1.0 + 2**-7, dtype=BF16)
    (gb,) = torch.autograd.grad(ops.linear_act(x, w, b, "identity"), b, g)
    want = (g.float().sum(0)).to(BF16)
    assert torch.equal(gb, want)


def test_dropout_bf16_is_the_rounded_float32_result(level):
    torch.manual_seed(0)
    x = torch.randn(5003).to(BF16)
    y = ops.dropout(x, 0.3, seed=9, offset=2)
    keep = ops.dropout(torch.ones(5003), 0.3, seed=9, offset=2) != 0
    want = torch.where(keep, x.float() / 0.7, x.float() * 0).to(BF16)
    assert torch.equal(y, want)


def test_masks_are_the_same_in_every_dtype():
    masks = [ops.dropout(torch.ones(3, 1001, dtype=dtype), 0.4, seed=77, offset=5) != 0
             for dtype in (torch.float32, torch.float64, BF16)]
    assert torch.equal(masks[0], masks[1]) and torch.equal(masks[0], masks[2])
    x, w, b = make_linear(9, 33, "relu", {}, dtype=torch.float32, batch=(17,))
    b = b.abs() + 100  # every output positive: the zeros are the dropped
    ys = [ops.linear_act(x.to(d), w.to(d), b.to(d), "relu", dropout_p=0.4, seed=1) != 0
          for d in (torch.float32, torch.float64, BF16)]
    assert torch.equal(ys[0], ys[1]) and torch.equal(ys[0], ys[2])


def test_bf16_conversion_levels_agree():
    """The AVX512-BF16 instruction, the AVX-512 integer rounding and the
    portable code round alike (normal floats; the instruction flushes
    denormals), and as c10::BFloat16 does."""
    torch.manual_seed(0)
    # Exact ties (low half 0x8000) round to even: both parities of the kept half.
    ties = ((torch.arange(0x3F00, 0x3F40, dtype=torch.int32) << 16) | 0x8000).view(torch.float32)
    x = torch.cat([torch.randn(100_003) * 100, ties, -ties,
                   torch.tensor([0.0, -0.0, 1e30, -1e-30, float("inf"), float("nan")])])
    results = {}
    for lv in SIMD_LEVELS:
        _C.set_simd_level(lv)
        results[lv] = ops.dropout(x, 0.25, seed=3)  # float32 in, float32 out
        results[lv + " bf16"] = ops.activation(x.to(BF16), "identity")
    _C.set_simd_level(_C.best_simd_level())
    for lv in SIMD_LEVELS:
        assert torch.equal(results[lv + " bf16"].view(torch.int16),
                           x.to(BF16).view(torch.int16)), lv


def test_mlp_bf16():
    torch.manual_seed(0)
    weights = [torch.randn(32, 64) / 8, torch.randn(16, 32) / 6, torch.randn(5, 16) / 4]
    biases = [torch.randn(32), torch.randn(16), torch.randn(5)]
    x = torch.randn(20, 64)
    low, high = _bf16_inputs(x, *weights, *biases)
    y = ops.mlp(low[0], low[1:4], low[4:], "tanh")
    h = high[0]
    for i in range(3):
        h = F.linear(h, high[1 + i], high[4 + i])
        h = torch.tanh(h) if i < 2 else h
    assert y.dtype == BF16
    torch.testing.assert_close(y.float(), h, rtol=2**-5, atol=2**-5)


# --- autocast ------------------------------------------------------------------

@pytest.mark.parametrize("act", GRAD_ACTIVATIONS, ids=act_id)
def test_autocast_dtypes_are_stocks(act):
    name, kw = act
    x, w, b = make_linear(20, 8, name, kw, dtype=torch.float32, batch=(10,))
    with torch.autocast("cpu", dtype=BF16):
        ours = ops.linear_act(x, w, b, name, **kw)
        stock = stock_linear_act(x, w, b, name, **kw)
        assert ours.dtype == stock.dtype == BF16
        for elementwise, ref in ((ops.activation(x, "tanh"), torch.tanh(x)),
                                 (ops.dropout(x, 0.5, seed=1), F.dropout(x, 0.5))):
            assert elementwise.dtype == ref.dtype == torch.float32
        assert ops.mlp(x, [w], [b], name, **kw).dtype == BF16


@pytest.mark.parametrize("fused", ["mlp", "layer", False])
def test_modules_train_under_autocast_with_float32_parameters(fused):
    torch.manual_seed(0)
    model = MLP([20, 16, 16, 4], "relu", dropout=0.1, fused=fused)
    x, y = torch.randn(32, 20), torch.randint(0, 4, (32,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        with torch.autocast("cpu", dtype=BF16):
            logits = model(x)
            loss = F.cross_entropy(logits.float(), y)
        assert logits.dtype == BF16
        opt.zero_grad()
        loss.backward()
        assert all(p.grad.dtype == torch.float32 for p in model.parameters())
        opt.step()
        losses.append(loss.item())
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert losses[-1] < 0.5 * losses[0]


def test_compile_fullgraph_under_autocast():
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = MLP([20, 16, 16, 4], "gelu", dropout=0.3, fused="mlp").train()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    x = torch.randn(8, 20)
    outs = []
    for fn in (model, compiled):
        torch.manual_seed(1)
        with torch.autocast("cpu", dtype=BF16):
            outs.append(fn(x))
    assert outs[1].dtype == BF16
    torch.testing.assert_close(outs[1].float(), outs[0].float())


@pytest.mark.parametrize("op", ["linear_act", "activation", "dropout", "mlp"])
def test_opcheck_bf16(op):
    x, w, b = make_linear(6, 4, "gelu", {}, dtype=BF16, batch=(5,), requires_grad=True)
    args = {
        "linear_act": (x, w, b, "gelu", 0.3, torch.tensor(3), 0),
        "activation": (x, "silu"),
        "dropout": (x, 0.3, torch.tensor(3), 0),
        "mlp": (x, [w], [b], "gelu", "identity", 0.3, torch.tensor(3), 0),
    }[op]
    torch.library.opcheck(getattr(torch.ops.mlpbench, op).default, args)


def test_bad_dtypes_name_the_argument():
    x, w, b = make_linear(6, 4, "relu", {}, dtype=torch.float32)
    with pytest.raises(TypeError, match="linear_act: weight must have x's dtype BFloat16, got Float"):
        ops.linear_act(x.to(BF16), w, b)
    with pytest.raises(TypeError, match="bias must have x's dtype BFloat16, got Float"):
        ops.linear_act(x.to(BF16), w.to(BF16), b)
    with pytest.raises(TypeError, match=r"x must be a float32, float64 or bfloat16 tensor \(float16 only on CUDA\), got Half"):
        ops.linear_act(x.half(), w.half())
    with pytest.raises(TypeError, match="x must be a float32, float64 or bfloat16 tensor"):
        ops.activation(torch.ones(3, dtype=torch.int32), "relu")
    with pytest.raises(TypeError, match=r"layer 0: weights\[0\] must have x's dtype BFloat16, got Float"):
        ops.mlp(x.to(BF16), [w], None)


# --- one rounding of the pre-activation, as stock ------------------------------
# Where the product and the bias nearly cancel, rounding the product to bf16
# before adding the bias (two roundings) is off by an ulp of the product, not
# of the result; a ReLU kink then flips, and with it the derivative. The
# pre-activation is x @ W.T + b rounded once, as stock F.linear rounds it;
# each quantity is then computed in float32 from bf16 values and rounded once
# (docs/design.md: bfloat16).

def _cancelling(g, n_in, rows, batch):
    """bf16 x, W, b where b cancels most of the product for many elements:
    b_j = -(x_k . W_j) for a random row k, plus a little."""
    x = torch.randn(batch, n_in, generator=g).to(BF16)
    w = (torch.randn(rows, n_in, generator=g) / n_in**0.5).to(BF16)
    prod = x.double() @ w.double().T
    pick = torch.randint(0, batch, (rows,), generator=g)
    b = (-prod[pick, torch.arange(rows)] + 1e-3 * torch.randn(rows, generator=g).double()).to(BF16)
    return x, w, b


def _errors(name, kw, x, w, b, fn):
    """Each quantity's largest error relative to its largest magnitude, fn's
    bf16 forward and gradients against float64 on the same bf16 inputs."""
    def run(f, dtype):
        t = [v.detach().to(dtype).requires_grad_() for v in (x, w, b)]
        y = f(*t, name, **kw)
        g = torch.linspace(-1, 1, y.numel(), dtype=torch.float64).reshape(y.shape).to(dtype)
        return [y, *torch.autograd.grad(y, t, g)]
    truth = run(stock_linear_act, torch.float64)
    got = run(fn, BF16)
    return [((q.double() - t).abs().max() / t.abs().max().clamp_min(1e-30)).item()
            for q, t in zip(got, truth)]


@pytest.mark.parametrize("act", GRAD_ACTIVATIONS, ids=act_id)
def test_bf16_at_least_as_close_as_stock(act):
    """Over many draws of inputs built so that product and bias cancel, the
    fused bf16 forward and gradients (y, grad x, grad W, grad b) are as close
    to float64 on the same bf16 inputs as stock bf16's, or closer."""
    name, kw = act
    g = torch.Generator().manual_seed(0)
    worst = {"fused": [0.0] * 4, "stock": [0.0] * 4}
    for draw in range(30):
        rows = 96 * kw.get("pieces", 1)
        x, w, b = _cancelling(g, 200, rows, 64)
        for label, fn in (("fused", ops.linear_act), ("stock", stock_linear_act)):
            worst[label] = [max(a, e) for a, e in zip(worst[label], _errors(name, kw, x, w, b, fn))]
    for quantity, fused, stock in zip(("y", "grad x", "grad W", "grad b"), worst["fused"],
                                      worst["stock"]):
        assert fused <= 1.05 * stock + 2**-12, (quantity, fused, stock)


@pytest.mark.parametrize("batch", [1, 3, 4, 5])
def test_bf16_small_batches_as_close_as_stock(level, batch):
    """Up to 4 rows the bf16 forward product is dot products of our own
    (cheaper there than oneDNN's linear), 5 rows oneDNN's: at every
    instruction-set level, with and without a bias, y and the gradients are
    as close to float64 as stock bf16's, and y is the bf16 rounding of the
    float64 pre-activation bar float32-sum ties."""
    g = torch.Generator().manual_seed(batch)
    for n_in, rows in ((784, 256), (200, 96), (17, 3)):
        for name in ("identity", "relu", "gelu"):
            x, w, b = _cancelling(g, n_in, rows, batch)
            fused, stock = (_errors(name, {}, x, w, b, fn)
                            for fn in (ops.linear_act, stock_linear_act))
            for quantity, f, s in zip(("y", "grad x", "grad W", "grad b"), fused, stock):
                assert f <= 1.05 * s + 2**-12, (n_in, name, quantity, f, s)
            # Every draw, exactly: without a bias, then with it.
            y = ops.linear_act(x, w, None, "identity")
            exact = (x.double() @ w.double().T).to(BF16)
            assert y.shape == exact.shape and (y == exact).double().mean().item() >= 0.95
            assert ((y.double() - exact.double()).abs() <= exact.double().abs() * 2**-7).all()
            y = ops.linear_act(x, w, b, "identity")
            exact = (x.double() @ w.double().T + b.double()).to(BF16)
            assert (y == exact).double().mean().item() >= 0.95


@pytest.mark.parametrize("pieces", [2, 3])
def test_bf16_maxout_with_dropout_rounds_once(pieces):
    """maxout's winning piece is a bf16 pre-activation (rounded once), the max
    exact, and dropout's scaling rounds once more at the store: y equals
    bf16(bf16(pre) * float32(1 / keep)) element by element, pre from float64,
    bar rare float32-accumulation ties."""
    g = torch.Generator().manual_seed(1)
    x, w, b = _cancelling(g, 200, 96 * pieces, 64)
    y = ops.linear_act(x, w, b, "maxout", pieces=pieces, dropout_p=0.3, seed=5)
    pre = (x.double() @ w.double().T + b.double()).to(BF16).double()
    best = pre.unflatten(-1, (96, pieces)).max(-1).values
    keep = ops.dropout(torch.ones_like(best), 0.3, seed=5) != 0
    want = torch.where(keep, best.float() * (1 / 0.7), best.float() * 0).to(BF16)
    assert (y == want).double().mean().item() >= 0.999


@pytest.mark.filterwarnings("ignore:TF32 acceleration on top of oneDNN")  # mkldnn.flags' own
@pytest.mark.parametrize("layers", [1, 4])
def test_bf16_forward_with_onednn_off_is_stocks(layers):
    """With AVX-512 the bf16 forward's product (the bias in the float32
    accumulation) is oneDNN's linear; with oneDNN turned off
    (torch.backends.mkldnn) it is addmm's, as stock's F.linear then is: the
    same bits as stock's, through linear_act and through the whole-MLP op."""
    torch.manual_seed(0)
    sizes = [784, 256, 256, 256, 10][: layers + 1]
    x = torch.randn(100, sizes[0]).to(BF16)
    ws = [(torch.randn(o, i) * 0.05).to(BF16) for i, o in zip(sizes, sizes[1:])]
    bs = [torch.randn(o).to(BF16) for o in sizes[1:]]
    with torch.backends.mkldnn.flags(enabled=False):
        want = x
        for w, b in zip(ws, bs):
            want = F.linear(want, w, b)
        got = (ops.linear_act(x, ws[0], bs[0], "identity") if layers == 1 else
               ops.mlp(x, ws, bs, "identity"))
    assert torch.equal(got, want)


# --- ReLU inside the product ---------------------------------------------------
# With AVX-512, from 8 rows per input feature (2048 for 256 features), a chain
# of bf16 ReLU layers whose input is no wider than their output has oneDNN's
# product apply the ReLU, once a bound on the input and the weights proves
# every sum finite (csrc/cpu/relu_bound_cpu.cpp): the product's ReLU would
# turn a NaN into 0.

def _relu_net(sizes, batch):
    g = torch.Generator().manual_seed(len(sizes) + batch)
    x = torch.randn(batch, sizes[0], generator=g).to(BF16)
    ws = [(torch.randn(o, i, generator=g) / i**0.5).to(BF16) for i, o in zip(sizes, sizes[1:])]
    bs = [(torch.randn(o, generator=g) / 10).to(BF16) for o in sizes[1:]]
    return x, ws, bs


def _relu_per_layer(x, ws, bs):
    for i, (w, b) in enumerate(zip(ws, bs)):
        x = ops.linear_act(x, w, b, "relu" if i + 1 < len(ws) else "identity")
    return x


@pytest.mark.parametrize("batch", [100, 2048])
@pytest.mark.parametrize("sizes", [[256, 256, 256, 10], [784, 256, 256, 256, 10]],
                         ids=["square", "lecture"])
def test_relu_in_the_product_is_the_per_layer_result(sizes, batch):
    x, ws, bs = _relu_net(sizes, batch)
    assert torch.equal(ops.mlp(x, ws, bs, "relu", training=False), _relu_per_layer(x, ws, bs))


def _poisoned(case, batch):
    """A network whose sums hold NaNs (in rows 3 of the layers below)."""
    x, ws, bs = _relu_net([256, 256, 256, 10], batch)
    if case == "nan_x":
        x[3, 5] = float("nan")
    elif case == "inf_x":
        x[3, 5] = float("inf")
    elif case == "overflow":  # finite inputs whose products overflow to +inf and -inf
        x[3, :2] = 3e38
        ws[0][:, 0], ws[0][:, 1] = 4.0, -4.0
    elif case == "inf_weight":  # inf * 0 where layer 0's ReLU gives 0
        ws[1][7, 0] = float("inf")
    return x, ws, bs


# Batch 2048: oneDNN's ReLU under the proof; 100: AMX's tiles where the CPU has them.
@pytest.mark.parametrize("batch", [100, 2048])
@pytest.mark.parametrize("case", ["nan_x", "inf_x", "overflow", "inf_weight"])
def test_relu_in_the_product_keeps_stocks_nans(case, batch):
    x, ws, bs = _poisoned(case, batch)
    want = x
    for i, (w, b) in enumerate(zip(ws, bs)):
        want = F.linear(want, w, b)
        want = torch.relu(want) if i + 1 < len(ws) else want
    assert want.isnan().any()  # the case's premise
    got = ops.mlp(x, ws, bs, "relu", training=False)
    assert torch.equal(got.isnan(), want.isnan())
    assert torch.equal(got.isinf(), want.isinf())
    torch.testing.assert_close(got, _relu_per_layer(x, ws, bs), rtol=0, atol=0, equal_nan=True)


# --- AMX tiles -----------------------------------------------------------------
# At the avx512_bf16 level on a CPU with AMX-BF16, from 5 to 512 rows, the bf16
# forward product runs on AMX tiles of our own (csrc/cpu/amx_linear_cpu.cpp),
# with a ReLU without dropout in the same pass over the float32 sums.

needs_amx = pytest.mark.skipif(not _C.has_amx_bf16(), reason="the CPU has no AMX-BF16")


@needs_amx
@pytest.mark.parametrize("batch", [5, 17, 33, 100, 512, 1000])
@pytest.mark.parametrize("n_in, n_out", [(784, 256), (256, 256), (256, 10), (2, 1), (30, 40),
                                         (34, 33), (64, 48)])
def test_amx_product_rounds_once(batch, n_in, n_out):
    """Every partial tile (rows, outputs, the last 32 inputs): y is bf16 of the
    float64 pre-activation in 95% of elements or more, and everywhere within a
    bf16 ulp plus a float32 sum's error bound (n_in + 1 roundings of 2^-24
    of the sum of magnitudes), with and without a bias and the ReLU."""
    g = torch.Generator().manual_seed(batch * n_in + n_out)
    x, w, b = _cancelling(g, n_in, n_out, batch)
    for bias in (b, None):
        extra = bias.double() if bias is not None else torch.zeros(n_out, dtype=torch.float64)
        pre = x.double() @ w.double().T + extra
        magnitude = x.double().abs() @ w.double().abs().T + extra.abs()
        for name, want in (("identity", pre), ("relu", pre.relu())):
            got = ops.linear_act(x, w, bias, name)
            exact = want.to(BF16)
            assert (got == exact).double().mean().item() >= 0.95, (name, bias is None)
            bound = exact.double().abs() * 2**-7 + (n_in + 1) * 2**-24 * magnitude
            assert ((got.double() - exact.double()).abs() <= bound).all(), (name, bias is None)


@needs_amx
@pytest.mark.parametrize("act", ["relu", "identity", "gelu"])
def test_amx_product_is_onednns(act):
    """The tiles sum in oneDNN's order: at the lecture's shapes y is oneDNN's
    product's in all but rare elements, and as close to float64 as stock
    bf16's. Below the avx512_bf16 level the product is oneDNN's linear, bit
    for bit."""
    g = torch.Generator().manual_seed(7)
    for n_in, n_out in ((784, 256), (256, 256), (256, 10)):
        x, w, b = _cancelling(g, n_in, n_out, 100)
        got = ops.linear_act(x, w, b, act)
        _C.set_simd_level("avx512")
        try:
            onednn = ops.linear_act(x, w, b, act)
        finally:
            _C.set_simd_level(_C.best_simd_level())
        if act != "gelu":
            post = "relu" if act == "relu" else "none"
            assert torch.equal(onednn, torch.ops.mkldnn._linear_pointwise(x, w, b, post, [], ""))
        assert (got == onednn).double().mean().item() >= 0.999
        fused, stock = (_errors(act, {}, x, w, b, fn) for fn in (ops.linear_act, stock_linear_act))
        assert fused[0] <= 1.05 * stock[0] + 2**-12


@needs_amx
def test_amx_product_is_the_floors():
    """cpu_mm, the benchmarks' floor, runs x @ W.T as the kernels do."""
    g = torch.Generator().manual_seed(3)
    x, w, _ = _cancelling(g, 784, 256, 100)
    assert torch.equal(_C.cpu_mm(x, w.t()), ops.linear_act(x, w, None, "identity"))


@needs_amx
def test_amx_product_does_not_depend_on_threads():
    """One thread against this machine's threads (2 or more on CI)."""
    g = torch.Generator().manual_seed(5)
    x, w, b = _cancelling(g, 784, 256, 100)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        got = ops.linear_act(x, w, b, "relu")
    finally:
        torch.set_num_threads(old)
    assert torch.equal(got, ops.linear_act(x, w, b, "relu"))
