"""activation[<name>, <size>(, bf16)]: each activation's elementwise forward
and backward, stock beside fused (on float32 tensors, or bfloat16 ones), with
a ReLU's and a plain copy's time beside the float32 forward: the lecture's
"ReLU is fast because it needs no exp()" per operation."""

import pytest
import torch

from conftest import DEVICES, smoke
from mlpbench import ops
from mlpbench.reference import stock_activation

NAMES = [name for name in ops.ACTIVATIONS if ops.activation_info(name)["elementwise"]]
# A lecture-sized tensor, and a large one (bigger on a GPU, to be bandwidth bound).
SIZES = {"cpu": [(100, 256), (16 * 2**20,)], "cuda": [(100, 256), (64 * 2**20,)]}
ROWS = ["stock fwd", "fused fwd", "stock bwd", "fused bwd"]


def _size_id(shape):
    return "x".join(str(s) for s in shape) if len(shape) > 1 else f"{shape[0] // 2**20}M"


def _case_list():
    for device in DEVICES:
        dev = device if isinstance(device, str) else device.values[0]
        for i, _ in enumerate(SIZES[dev]):
            yield pytest.param(dev, i, id=f"{dev}-size{i}", marks=getattr(device, "marks", ()))


@pytest.mark.parametrize("row", ROWS)
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
@pytest.mark.parametrize("device,size", list(_case_list()))
def test_activation(measure, row, name, dtype, device, size):
    shape = SIZES[device][size]
    bf16 = dtype == "bf16"
    group = f"activation[{name}, {_size_id(shape)}{', bf16' if bf16 else ''}]"
    torch.manual_seed(0)
    x = torch.randn(smoke(shape, (64,)), device=device).to(torch.bfloat16 if bf16 else torch.float32)
    kind, mode = row.split()
    if mode == "bwd" and not ops.activation_info(name)["differentiable"]:
        pytest.skip("step has no backward")
    fns = {"fused": lambda t: ops.activation(t, name), "stock": lambda t: stock_activation(t, name)}
    if mode == "fwd":
        calls = {k: (lambda f=f: f(x)) for k, f in fns.items()}
    else:
        x.requires_grad_()
        g = torch.randn_like(x)
        calls = {k: (lambda y=f(x): torch.autograd.grad(y, x, g, retain_graph=True))
                 for k, f in fns.items()}
    # The fused row times the stock one interleaved with itself (conftest.measure);
    # the forward also ReLU's (stock and ours), itself again and a copy's, for the
    # lecture's claim. The report divides the ReLU rows' times by the activation's
    # own in this round: each of the four follows a call that wrote the output
    # buffer it then takes from the allocator, so all four find it in cache
    # (the row itself follows the copy, which does not).
    beside = None
    if kind == "fused":
        beside = {f"stock {mode}": calls["stock"]}
        if mode == "fwd" and not bf16:
            out = torch.empty_like(x)
            beside.update({"stock relu fwd": lambda: stock_activation(x, "relu"),
                           "relu fwd": lambda: ops.activation(x, "relu"),
                           "fused fwd": calls["fused"],
                           "copy": lambda: out.copy_(x)})
    with torch.set_grad_enabled(mode == "bwd"):
        measure(group, row, calls[kind], device, beside=beside, elements=x.numel())


@pytest.mark.parametrize("row", ["copy", "relu fwd"])
@pytest.mark.parametrize("device,size", list(_case_list()))
def test_reference_rows(measure, row, device, size):
    """A device copy into a preallocated tensor, and our ReLU, per size."""
    shape = SIZES[device][size]
    group = f"activation[reference, {_size_id(shape)}]"
    x = torch.randn(smoke(shape, (64,)), device=device)
    out = torch.empty_like(x)
    fn = (lambda: out.copy_(x)) if row == "copy" else (lambda: ops.activation(x, "relu"))
    with torch.no_grad():
        measure(group, row, fn, device, elements=x.numel(), bytes_moved=2 * x.numel() * 4)
