"""The activation table (csrc/activations.h) is the one list: every row has a
functor, a stock reference, tests and benchmark rows, and what the table says
an activation saves for backward is what autograd saves. (The C++ side: a
static_assert gives every Act a row, and ctest, csrc/tests/test_functors.cpp,
fails for a row without a reference formula for its functor.)"""

from pathlib import Path

import pytest
import torch

from helpers import GRAD_ACTIVATIONS, collect_test_ids, make_linear
from mlpbench import _C, ops
from mlpbench.reference import STOCK_ACTIVATIONS, stock_activation, stock_linear_act

ROOT = Path(__file__).resolve().parents[1]
ROWS = _C.activations()


def test_python_names_are_the_table():
    assert ops.ACTIVATIONS == tuple(row["name"] for row in ROWS)
    assert len(set(ops.ACTIVATIONS)) == len(ops.ACTIVATIONS)
    assert {"relu", "sigmoid", "tanh", "leaky_relu", "elu", "maxout"} <= set(ops.ACTIVATIONS)
    gelu = ops.activation_info("gelu")
    assert gelu["params"] == ["approximate"] and gelu["saves"] == "input"
    assert ops.activation_info("maxout")["params"] == ["pieces"]
    assert not ops.activation_info("step")["differentiable"]
    with pytest.raises(ValueError, match="unknown activation 'relu6'"):
        ops.activation_info("relu6")


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r["name"])
def test_every_row_has_a_functor_and_a_stock_reference(row):
    """The op runs every row (a functor behind it) and equals its stock reference."""
    name = row["name"]
    x, w, b = make_linear(9, 4, name, {}, dtype=torch.float64, batch=(5,))
    torch.testing.assert_close(ops.linear_act(x, w, b, name), stock_linear_act(x, w, b, name))
    if row["elementwise"]:
        assert name in STOCK_ACTIVATIONS
        torch.testing.assert_close(ops.activation(x, name), stock_activation(x, name))
    assert set(STOCK_ACTIVATIONS) == {r["name"] for r in ROWS if r["elementwise"]}


def test_every_row_has_tests():
    differentiable = {r["name"] for r in ROWS if r["differentiable"]}
    assert {name for name, _ in GRAD_ACTIVATIONS} == differentiable


@pytest.mark.parametrize("module, group", [("bench_linear_act.py", "linear_act"),
                                           ("bench_activation.py", "activation")])
def test_every_row_has_benchmark_rows(module, group):
    """Every activation the module can time appears in its collected rows."""
    ids = collect_test_ids(ROOT / "bench" / module)
    assert ids, f"no benchmarks collected from {module}"
    wanted = {r["name"] for r in ROWS if group == "linear_act" or r["elementwise"]}
    if group == "linear_act":
        wanted -= {r["name"] for r in ROWS if not r["differentiable"]}  # fwd+bwd rows need one
    missing = {name for name in wanted if not any(f"-{name}-" in i for i in ids)}
    assert not missing, f"{module} times no rows for {sorted(missing)}"


@pytest.mark.parametrize("row", [r for r in ROWS if r["differentiable"]], ids=lambda r: r["name"])
def test_autograd_saves_what_the_table_says(row):
    name = row["name"]
    kw = {"pieces": 2} if "pieces" in row["params"] else {}
    x, w, b = make_linear(13, 5, name, kw, dtype=torch.float32, requires_grad=True)
    packed = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: packed.append(t) or t, lambda t: t):
        y = ops.linear_act(x, w, b, name, **kw)
    inputs = {t.data_ptr() for t in (x, w, b)}
    saved = [t for t in packed if t.data_ptr() not in inputs]
    assert len(saved) == 1
    if row["saves"] == "output":
        assert saved[0].data_ptr() == y.data_ptr()
    elif row["saves"] == "input":
        torch.testing.assert_close(saved[0], torch.nn.functional.linear(x, w, b))
    elif row["saves"] == "argmax":
        assert saved[0].dtype == torch.uint8 and saved[0].shape == y.shape
    else:
        assert saved[0].numel() == 0


def test_readme_says_how_to_add_an_activation():
    readme = (ROOT / "README.md").read_text()
    assert "### Adding an activation" in readme
    section = readme.split("### Adding an activation")[1].split("\n## ")[0]
    for place in ("csrc/activations.h", "kActivations", "mlpbench/reference.py"):
        assert place in section
