"""CUDA only (skipped without a GPU): what one GPU run must prove. Dropout
under CUDA graphs (a replay draws a new mask, never the capture's), half
precision against float32, the same masks and values as the CPU, the bias
gradient's paths, side streams, autocast dtypes as stock's, torch.compile
under autocast and in reduce-overhead training, and the training CLI."""

import os
import subprocess
import sys

import pytest
import torch

from helpers import CUDA, GRAD_ACTIVATIONS, act_id, make_linear
from mlpbench import nn as mnn
from mlpbench import ops
from mlpbench.models import MLP
from mlpbench.reference import stock_linear_act

pytestmark = pytest.mark.skipif(not CUDA, reason="no CUDA device")

SIZES = [32, 64, 64, 10]


def _net(dtype=torch.float32, bias=True):
    torch.manual_seed(0)
    weights = [(torch.randn(o, i, device="cuda") / i**0.5).to(dtype).requires_grad_()
               for i, o in zip(SIZES[:-1], SIZES[1:])]
    biases = [torch.randn(o, device="cuda").to(dtype).requires_grad_() for o in SIZES[1:]]
    return weights, biases if bias else None


# --- dropout under CUDA graphs -----------------------------------------------------

def test_drawn_seed_lives_on_the_gpu_and_follows_manual_seed():
    torch.manual_seed(3)
    a = ops.draw_seed("cuda")
    torch.manual_seed(3)
    b = ops.draw_seed("cuda")
    assert a.device.type == "cuda" and a.dtype == torch.int64 and a.numel() == 1
    assert torch.equal(a, b) and not torch.equal(a, ops.draw_seed("cuda"))


def test_a_captured_graph_draws_a_new_mask_on_every_replay():
    layer = mnn.FusedLinear(64, 256, "relu", dropout=0.5).cuda().train()
    x = torch.randn(32, 64, device="cuda")
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(2):
            layer(x)  # warm up on the side stream, as torch.cuda.graph wants
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        y = layer(x)
    masks = []
    for _ in range(3):
        graph.replay()
        torch.cuda.synchronize()
        masks.append((y != 0).clone())
    assert not torch.equal(masks[0], masks[1]) and not torch.equal(masks[1], masks[2])
    # Each replay's mask is the mask of some seed: a pure function of (seed, offset).
    assert 0.4 < masks[2].float().mean().item() < 0.6


def test_a_cpu_seed_under_capture_is_refused_not_frozen():
    x, w, b = make_linear(16, 32, "relu", {}, dtype=torch.float32, device="cuda")
    ops.linear_act(x, w, b, dropout_p=0.3, seed=5)  # eager: fine
    graph = torch.cuda.CUDAGraph()
    with pytest.raises(RuntimeError, match="needs its seed on the GPU"):
        with torch.cuda.graph(graph):
            ops.linear_act(x, w, b, dropout_p=0.3, seed=5)


def test_gpu_and_cpu_seeds_of_one_value_give_one_mask():
    x = torch.ones(7, 1001, device="cuda")
    seed = torch.tensor(123456789)
    on_cpu = ops.dropout(x, 0.4, seed=seed, offset=3)
    on_gpu = ops.dropout(x, 0.4, seed=seed.cuda(), offset=3)
    assert torch.equal(on_cpu, on_gpu)
    assert torch.equal(on_cpu.cpu(), ops.dropout(x.cpu(), 0.4, seed=seed, offset=3))


def test_reduce_overhead_training_draws_new_masks_and_matches_eager():
    """Compiled with CUDA graphs, each step's seed is an input: the masks
    differ from step to step (not the capture's), and every step's gradients
    equal eager's for the same seed."""
    torch._dynamo.reset()
    weights, biases = _net()

    def loss(x, seed):
        return ops.mlp(x, weights, biases, "relu", dropout_p=0.3, seed=seed).square().mean()

    def grads(fn, x, seed):
        return torch.autograd.grad(fn(x, seed), [*weights, *biases])

    compiled = torch.compile(loss, mode="reduce-overhead")
    x = torch.randn(100, SIZES[0], device="cuda")
    seed = torch.zeros((), dtype=torch.int64, device="cuda")
    previous = None
    for step in range(5):
        seed.fill_(1000 + step)
        got = grads(compiled, x, seed)
        want = grads(loss, x, seed)
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        if previous is not None:
            assert not torch.equal(got[0], previous[0])
        previous = got


def test_reduce_overhead_module_with_drawn_seeds_is_not_frozen():
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = MLP(SIZES, "relu", dropout=0.5, fused="mlp").cuda().train()
    compiled = torch.compile(model, mode="reduce-overhead")
    x = torch.randn(64, SIZES[0], device="cuda")
    outs = [compiled(x).detach().clone() for _ in range(5)]
    assert all(not torch.equal(outs[i], outs[i + 1]) for i in range(2, 4))


# --- half precision, masks and values against the CPU ----------------------------

@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_half_mlp_with_dropout_against_float32(dtype):
    weights, biases = _net()
    x = torch.randn(50, SIZES[0], device="cuda")
    low = [t.detach().to(dtype).requires_grad_() for t in (*weights, *biases)]
    y = ops.mlp(x.to(dtype), low[:3], low[3:], "relu", dropout_p=0.3, seed=7)
    want = ops.mlp(x.to(dtype).float(), [t.detach().float() for t in low[:3]],
                   [t.detach().float() for t in low[3:]], "relu", dropout_p=0.3, seed=7)
    assert y.dtype == dtype
    scale = want.abs().max()
    torch.testing.assert_close(y.float() / scale, want / scale, rtol=0, atol=3e-2)
    gw = torch.autograd.grad(y.float().square().mean(), low)
    assert all(g.dtype == dtype and torch.isfinite(g).all() for g in gw)


@pytest.mark.parametrize("act", [("relu", {}), ("gelu", {}), ("maxout", {"pieces": 2})], ids=act_id)
def test_bf16_values_equal_the_cpus_within_one_rounding(act):
    """The same bf16 inputs and seed: the same mask, and values within one
    bf16 rounding of each other (2^-8 relative; the products' accumulation
    order differs between oneDNN and cuBLAS)."""
    name, kw = act
    x, w, b = make_linear(64, 48, name, kw, dtype=torch.bfloat16, batch=(33,))
    cpu = ops.linear_act(x, w, b, name, dropout_p=0.3, seed=11, **kw)
    gpu = ops.linear_act(x.cuda(), w.cuda(), b.cuda(), name, dropout_p=0.3, seed=11, **kw).cpu()
    assert torch.equal(cpu == 0, gpu == 0) or (cpu == 0).ne(gpu == 0).float().mean() < 0.01
    torch.testing.assert_close(gpu.float(), cpu.float(), rtol=2**-7, atol=2**-7 * cpu.float().abs().max())


# --- the bias gradient's paths, streams, devices ----------------------------------

@pytest.mark.parametrize("rows", [3, 257, 5000], ids=["one-row-block", "257", "5000"])
def test_backward_bias_paths_against_stock(rows):
    """Few rows: one row block finishes the bias alone; more than 256: several
    row blocks, the last to finish adds their partials."""
    x, w, b = make_linear(40, 300, "relu", {}, dtype=torch.float64, device="cuda", batch=(rows,),
                          requires_grad=True)
    g = torch.randn(rows, 300, dtype=torch.float64, device="cuda")
    got = torch.autograd.grad(ops.linear_act(x, w, b, "relu"), (x, w, b), g)
    want = torch.autograd.grad(stock_linear_act(x, w, b, "relu"), (x, w, b), g)
    for a, e in zip(got, want):
        torch.testing.assert_close(a, e)


def test_backward_on_a_side_stream():
    x, w, b = make_linear(40, 64, "gelu", {}, dtype=torch.float32, device="cuda", batch=(300,),
                          requires_grad=True)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        y = ops.linear_act(x, w, b, "gelu", dropout_p=0.2, seed=3)
        got = torch.autograd.grad(y.sum(), (x, w, b))
    stream.synchronize()
    y2 = ops.linear_act(x, w, b, "gelu", dropout_p=0.2, seed=3)
    want = torch.autograd.grad(y2.sum(), (x, w, b))
    for a, e in zip(got, want):
        torch.testing.assert_close(a, e)


def test_backward_ops_refuse_tensors_on_the_wrong_device():
    """A CPU grad_y with a CUDA x would hand a host pointer to a kernel."""
    x, w, _ = make_linear(6, 4, "relu", {}, dtype=torch.float32, device="cuda")
    y, _ = torch.ops.mlpbench.linear_act(x, w, None, "relu", 0.0, None, 0)
    with pytest.raises(ValueError, match="grad_y must be on x's device cuda:0, got cpu"):
        torch.ops.mlpbench.linear_act_backward(torch.ones(y.shape), x, w, y, "relu", 0.0, None, 0,
                                               [True, True, False])
    with pytest.raises(ValueError, match="saved must be on x's device cuda:0, got cpu"):
        torch.ops.mlpbench.linear_act_backward(torch.ones_like(y), x, w, y.cpu(), "relu", 0.0,
                                               None, 0, [True, True, False])


# --- autocast, compile, the CLI --------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("act", GRAD_ACTIVATIONS, ids=act_id)
def test_autocast_cuda_dtypes_equal_stocks(act, dtype):
    name, kw = act
    x, w, b = make_linear(16, 8, name, kw, dtype=torch.float32, device="cuda", requires_grad=True)
    with torch.autocast("cuda", dtype=dtype):
        ours = ops.linear_act(x, w, b, name, **kw)
        theirs = stock_linear_act(x, w, b, name, **kw)
    assert ours.dtype == theirs.dtype
    g_ours = torch.autograd.grad(ours.float().sum(), (x, w, b))
    g_theirs = torch.autograd.grad(theirs.float().sum(), (x, w, b))
    assert [g.dtype for g in g_ours] == [g.dtype for g in g_theirs]


def test_compile_under_autocast_on_cuda():
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = MLP(SIZES, "gelu", dropout=0.2, fused="mlp").cuda().train()
    compiled = torch.compile(model, fullgraph=True)
    x = torch.randn(40, SIZES[0], device="cuda")
    outs = []
    for fn in (model, compiled):
        torch.manual_seed(1)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            outs.append(fn(x))
    assert outs[1].dtype == torch.bfloat16
    torch.testing.assert_close(outs[1].float(), outs[0].float())


@pytest.mark.skipif(not os.environ.get("MLPBENCH_DATA"), reason="real MNIST not available")
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_train_cli_on_cuda(tmp_path, precision):
    done = subprocess.run([sys.executable, "-m", "mlpbench.train", "--quiet", "--device", "cuda",
                           "--epochs", "1", "--train-limit", "2000", "--precision", precision,
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[0].startswith("mlpbench.train: device cuda (")
    assert "test accuracy" in done.stdout


def test_default_device_is_cuda_here():
    from mlpbench.lecture.training import resolve_device
    assert resolve_device("auto") == ("cuda" if ops._C.has_cuda() else "cpu")
