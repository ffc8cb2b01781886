"""inference[784-256-256-256-10 relu, batch <b>(, bf16)]: the lecture network
for inference (eval mode, under torch.inference_mode) against the fastest CPU
peers:

- stock eager (nn.Linear and ReLU);
- torch.compile with torch._inductor.config.freezing = True, which lowers
  Linear+ReLU to oneDNN's fused Linear+activation in inference;
- a chain of oneDNN's own fused Linear+activation calls
  (torch.ops.mkldnn._linear_pointwise, on plain weights);
- fused, the whole-MLP op.

bf16: the model and its input in bfloat16. The fused row times stock and the
oneDNN chain interleaved with itself (conftest.measure); the compiled row is
timed alone (interleaved with a compiled graph, every row ran slower here)."""

import pytest
import torch

from conftest import DEVICES, skip_unless_compiled, smoke
from mlpbench.models import MLP

SIZES = [784, 256, 256, 256, 10]
NET = "784-256-256-256-10 relu"
ROWS = ["stock", "compile freezing", "onednn", "fused"]


def _model(row, dtype, device):
    torch.manual_seed(0)
    model = MLP(SIZES, "relu", dropout=0.3, fused="mlp" if row == "fused" else False)
    return model.to(device=device, dtype=dtype).eval()


def _onednn_chain(model):
    """The network as oneDNN fused Linear+ReLU calls (the last without activation)."""
    linear = torch.ops.mkldnn._linear_pointwise.default
    layers = [(m.weight.detach(), m.bias.detach()) for m in model.layers]

    def run(x):
        for i, (w, b) in enumerate(layers):
            x = linear(x, w, b, "relu" if i + 1 < len(layers) else "none", [], "")
        return x

    return run


def _call(row, dtype, device, x):
    model = _model("fused" if row == "fused" else "stock", dtype, device)
    if row == "onednn":
        run = _onednn_chain(model)
        return lambda: run(x)
    if row == "compile freezing":
        with torch._inductor.config.patch(freezing=True), torch.inference_mode():
            compiled = torch.compile(model, dynamic=False)
            compiled(x)  # compiles, freezing the weights into the graph
        return lambda: compiled(x)
    return lambda: model(x)


@pytest.mark.parametrize("row", ROWS)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch", [1, 100, 4096])
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_inference(measure, row, batch, dtype, device):
    if device != "cpu" and row in ("onednn", "compile freezing"):
        pytest.skip("oneDNN and freezing rows: the CPU's peers")
    if row == "compile freezing":
        skip_unless_compiled("relu")
    dt = torch.bfloat16 if dtype == "bf16" else torch.float32
    x = torch.randn(smoke(batch, min(batch, 8)), SIZES[0], device=device).to(dt)
    group = f"inference[{NET}, batch {batch}{', bf16' if dtype == 'bf16' else ''}]"
    beside = None
    if row == "fused":
        beside = {r: _call(r, dt, device, x) for r in ("stock", "onednn") if device == "cpu" or
                  r == "stock"}
    with torch.inference_mode():
        measure(group, row, _call(row, dt, device, x), device, beside=beside)
