"""The report: summary first, figures that plot the report's own values, from a
small recorded benchmark JSON; the GPU check script is valid bash."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mlpbench.perf import figures, report, summary

ROOT = Path(__file__).resolve().parents[1]


RECORDED = ROOT / "tests" / "data" / "bench-small.json"  # a small run of bench/, recorded


def test_summary_first_then_details(tmp_path):
    out = tmp_path / "report.md"
    assert report.main([str(RECORDED), "--markdown", str(out), "--figures", str(tmp_path / "fig")]) == 0
    text = out.read_text()
    order = [text.index(h) for h in (
        "## The lecture network: forward+backward and the training step",
        "## Fused Linear+activation against stock, torch.compile and the floor",
        "## \"ReLU is 6x faster because it needs no exp()\"", "## Dropout",
        "## Memory kept for backward", "## Details: every group")]
    assert order == sorted(order)
    assert "| target | wanted |" in text and "fwd+bwd faster than stock, every cell" in text
    assert "#### linear_act[256x10, batch 100, relu, fwd]" in text  # a details table
    assert "| fused | " in text and "x* |" in text and "timed interleaved with that row" in text
    assert "307,208 B" in text and "921,600 B" in text
    for name in ("linear_act_cpu_fp32.png", "relu_cpu.png", "step_cpu.png"):
        assert (tmp_path / "fig" / name).stat().st_size > 10_000
        assert f"](fig/{name})" in text  # shown inline, relative to the report


def test_figures_plot_the_reports_values(tmp_path):
    groups = summary.load(RECORDED, "cpu")
    s = summary.summary(groups, "cpu")
    text = report.markdown(groups, "cpu")
    heat = figures.plot_heatmap({k: v for k, v in s["linear_act"].items() if k[0] == "fp32"},
                                tmp_path / "heat.png", "t")
    assert heat and (tmp_path / "heat.png").is_file()
    for (mode, ref), cells in heat.items():
        assert cells == s["linear_act"][("fp32", mode)][ref]
        for (layer, act), value in cells.items():
            row = next(line for line in text.split(f"### fused / {ref}, {mode}, fp32")[1].splitlines()
                       if line.startswith(f"| {layer} |"))
            assert f"{value:.2f}" in row
    relu = figures.plot_relu(s["relu"], tmp_path / "relu.png", "t")
    assert relu and set(relu) == set(s["relu"])
    for size, table in relu.items():
        assert "identity" not in table  # stock identity does no work: not plotted
        for name, cells in table.items():
            for key, value in cells.items():
                assert value == pytest.approx(s["relu"][size][name][key])
                row = next(line for line in text.split(f"### {size}\n")[1].splitlines()
                           if line.startswith(f"| {name} |"))
                assert f"{value:.2f}x" in row
    step = figures.plot_step(s["step"], tmp_path / "step.png", "t")
    assert step
    for group in s["step"]:
        for row, value in step.get(group.name, {}).items():
            assert value == pytest.approx(summary.ratio(group, row, "floor")[0])


def test_interleaved_times_give_the_ratios():
    """A row that timed stock and floor interleaved with itself takes its
    ratios from those (marked *), not from the rows timed at another moment."""
    g = summary.Group("cpu", "linear_act[256x10, batch 100, relu, fwdbwd]", "linear_act",
                     ["256x10", "batch 100", "relu", "fwdbwd"], "fp32",
                     times={"floor": 1.0, "stock": 4.0, "fused": 3.0},
                     beside={"fused": {"stock": 2.0, "floor": 1.5}})
    assert summary.ratio(g, "fused", "stock") == (1.5, True)
    assert summary.ratio(g, "stock", "floor") == (4.0, False)
    assert summary.ratio(g, "fused", "missing") is None
    text = report.details({("cpu", g.name): g}, "cpu")
    assert "| fused | 3000.00 ms | 1.50x* | 2.00x* |" in text
    assert "| stock | 4000.00 ms | 1.00x | 4.00x |" in text


def _activation_groups(elu_stock):
    def group(name, times, size="1M"):
        return summary.Group("cpu", f"activation[{name}, {size}]", "activation", [name, size],
                            "fp32", times=times)
    return {("cpu", n): group(n, t) for n, t in (
        ("relu", {"stock fwd": 1.0, "fused fwd": 1.0}),
        ("elu", {"stock fwd": elu_stock, "fused fwd": 1.2}))}


def test_relu_verdict_follows_the_numbers():
    assert "stock: holds (the costliest, elu, takes 7.00x ReLU)" in report.markdown(
        _activation_groups(7.0), "cpu")
    text = report.markdown(_activation_groups(1.5), "cpu")
    assert "stock: false (the costliest, elu, takes 1.50x ReLU)" in text
    assert "fused: false (the costliest, elu, takes 1.20x ReLU)" in text


def test_relu_claim_takes_both_times_from_the_same_rounds():
    """The fused activation over fused ReLU: both from the interleaved rounds
    (the row's own timing runs after a cache-flushing copy; it still gives
    the ratio over the copy)."""
    groups = _activation_groups(1.5)
    groups[("cpu", "elu")].times["fused fwd"] = 3.0
    groups[("cpu", "elu")].beside["fused fwd"] = {"relu fwd": 1.0, "fused fwd": 1.1, "copy": 2.0}
    text = report.markdown(groups, "cpu")
    assert "fused: false (the costliest, elu, takes 1.10x ReLU)" in text
    assert "| elu | 1.50x | 1.10x |  |  | 1.50x |" in text


def test_device_and_dtype_filters(tmp_path, capsys):
    assert report.main([str(RECORDED), "--device", "cpu", "--dtype", "bf16", "--targets"]) == 0
    text = capsys.readouterr().out
    assert "fp32" not in text.split("## Details")[0].replace("float32", "")
    assert report.main([str(RECORDED), "--device", "cuda"]) == 2  # no CUDA rows: a clear error
    assert capsys.readouterr().err.strip().endswith("no mlpbench benchmark rows for --device cuda")


def _one_bench(min_time):
    return json.dumps({"benchmarks": [{
        "group": "linear_act[256x10, batch 100, relu, fwdbwd]", "name": "test_x",
        "stats": {"min": min_time}, "extra_info": {"row": "fused", "device": "cpu"}}]})


@pytest.mark.parametrize("content, why", [
    ("", "is empty"),
    ('{"benchmarks": [{"group": "linear_act[256x10', "is not valid JSON"),
    ('{"not": "a benchmark"}', "is not a pytest-benchmark JSON file"),
    ("[1, 2, 3]", "is not a pytest-benchmark JSON file"),
    ('{"benchmarks": [{"group": "g"}]}', "has no group or no stats.min time"),
    (_one_bench(0.0), "has a time of 0.0 s; times must be positive"),
    (_one_bench(-1e-6), "has a time of -1e-06 s; times must be positive"),
])
def test_report_refuses_a_bad_file_in_one_line(tmp_path, capsys, content, why):
    """Empty, truncated, foreign or zero-time files: one line naming the file,
    exit status 2, no traceback (and no ZeroDivisionError or targets met)."""
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert report.main([str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {bad}: ") and why in err, err


def test_report_names_a_missing_file(tmp_path, capsys):
    assert report.main([str(tmp_path / "missing.json")]) == 2
    assert "missing.json: cannot be read" in capsys.readouterr().err


def _script(name, *args):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


def test_interleaved_ab_prints_a_row_per_layer_and_activation():
    done = _script("interleaved_ab.py", "--layers", "8x4x3,5x2x1", "--acts", "relu,gelu",
                   "--seconds", "0.05")
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith(("| 8x4", "| 5x2"))]
    assert len(rows) == 4 and all(line.count(" us |") == 3 for line in rows)


@pytest.mark.parametrize("precision, rows", [("fp32", 14), ("bf16", 16)])
def test_mlp_breakdown_prints_every_piece_per_batch(precision, rows):
    done = _script("mlp_breakdown.py", "--batch", "2", "5", "--precision", precision,
                   "--seconds", "0.05")
    assert done.returncode == 0, done.stderr
    table = [line for line in done.stdout.splitlines()
             if line.startswith("| ") and line.endswith(" us |")]
    assert len(table) == rows and all(line.count(" us |") == 2 for line in table)


@pytest.mark.parametrize("script, args, message", [
    ("interleaved_ab.py", ["--layers", "8x4"], "a layer is IN x OUT x BATCH"),
    ("interleaved_ab.py", ["--layers", "8x0x3"], "layer sizes must be positive"),
    ("interleaved_ab.py", ["--acts", "relu,swish"], "unknown or unsupported activation"),
    ("mlp_breakdown.py", ["--batch", "0"], "sizes must be positive"),
    ("mlp_breakdown.py", ["--seconds", "0"], "must be positive"),
    ("mlp_breakdown.py", ["--precision", "fp16"], "invalid choice"),
])
def test_scripts_reject_bad_arguments(script, args, message):
    done = _script(script, *args)
    assert done.returncode == 2 and message in done.stderr
