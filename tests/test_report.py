"""The report parses a real benchmark JSON; the GPU check script is valid bash."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from mlpbench import report

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench_json(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "bench"),
           "--benchmark-only", f"--benchmark-json={out}", "--benchmark-max-time=0.001",
           "--benchmark-min-rounds=1", "-k",
           "cpu and not compile and ((test_linear_act and 256x10 and batch100 and relu) or "
           "test_reference_rows or (test_activation and (relu or elu) and size1) or "
           "(test_dropout and 100x256) or test_memory)"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def test_report_tables_and_chart(bench_json, tmp_path, capsys):
    png = tmp_path / "chart.png"
    assert report.main([str(bench_json), "--png", str(png)]) == 0
    text = capsys.readouterr().out
    assert "#### linear_act[256x10, batch 100, relu, fwd] (cpu)" in text
    for row in ("floor", "stock", "fused"):
        assert f"| {row} |" in text
    assert "| stock | " in text and "1.00x" in text
    assert "x* |" in text and "timed interleaved with that row" in text
    assert png.stat().st_size > 1000
    assert "saved for backward" in text and "| fused |" in text and "307,208 B" in text


def test_report_checks_the_relu_claim(bench_json, capsys):
    assert report.main([str(bench_json), "--png", "/dev/null"]) == 0
    text = capsys.readouterr().out
    assert "#### ReLU against the others, forward, 16M (cpu)" in text
    assert "| elu |" in text and "| leaky_relu |" in text
    # Each fused forward row timed ReLU (stock and ours) and a copy beside itself.
    assert re.search(r"\| relu \| \d\.\d\dx\* \| \d\.\d\dx\* \| \d\.\d\dx\* \|", text)
    assert "\"ReLU is 6x faster because it needs no exp()\", per operation: " in text
    assert "the costliest" in text


def test_linear_act_matrix():
    groups = {("cpu", "linear_act[256x10, batch 100, relu, fwd]"):
              {"floor": 1.0, "stock": 2.0, "fused": 1.5},
              ("cpu", "linear_act[256x10, batch 100, gelu, fwd]"): {"stock": 2.0, "fused": 3.0}}
    text = report.linear_act_matrix(groups)
    assert "| layer | relu | gelu |" in text or "| layer | gelu | relu |" in text
    assert "0.75 / 1.50" in text and "1.50 |" in text


def test_interleaved_times_give_the_ratios():
    """A row that timed stock and floor interleaved with itself takes its
    ratios from those (marked *), not from the rows timed at another moment."""
    key = ("cpu", "linear_act[256x10, batch 100, relu, fwdbwd]")
    groups = {key: {"floor": 1.0, "stock": 4.0, "fused": 3.0}}
    beside = {key: {"fused": {"stock": 2.0, "floor": 1.5}}}
    assert report.ratio(groups[key], "fused", "stock", beside[key]) == (1.5, True)
    assert report.ratio(groups[key], "fused", "stock") == (0.75, False)
    assert report.ratio(groups[key], "fused", "missing", beside[key]) is None
    text = report.markdown(groups, beside=beside)
    assert "| fused | 3000.00 ms | 1.50x* | 2.00x* |" in text
    assert "| stock | 4000.00 ms | 1.00x | 4.00x |" in text
    assert "1.50 / 2.00" in report.linear_act_matrix(groups, beside)
    assert report.summary(groups, beside) == [("cpu", key[1] + " fused", 1.5)]


def test_relu_claim_verdict_follows_the_numbers():
    def groups(elu_stock):
        return {("cpu", "activation[relu, 1M]"): {"stock fwd": 1.0, "fused fwd": 1.0},
                ("cpu", "activation[elu, 1M]"): {"stock fwd": elu_stock, "fused fwd": 1.2},
                ("cpu", "activation[reference, 1M]"): {"copy": 1.0}}
    assert "stock: holds, the costliest (elu) takes 7.00x" in report.relu_claim(groups(7.0))
    assert "stock: false, the costliest (elu) takes 1.50x" in report.relu_claim(groups(1.5))
    assert "fused: false, the costliest (elu) takes 1.20x" in report.relu_claim(groups(7.0))
    # Times taken interleaved beside the fused row win over the separate rows.
    near = {("cpu", "activation[elu, 1M]"): {"fused fwd": {
        "stock fwd": 8.0, "stock relu fwd": 1.0, "relu fwd": 0.6, "copy": 0.8}}}
    text = report.relu_claim(groups(1.5), near)
    assert "| elu | 8.00x* | 2.00x* | 1.50x* |" in text
    assert "stock: holds, the costliest (elu) takes 8.00x" in text


def test_report_targets_and_device_filter(bench_json, capsys):
    assert report.main([str(bench_json), "--device", "cpu", "--targets"]) == 0
    assert "% |" in capsys.readouterr().out  # bandwidth against the copy row
    with pytest.raises(SystemExit):
        report.main([str(bench_json), "--device", "cuda"])  # no CUDA rows: a clear error


def test_report_rejects_other_json(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "a benchmark"}')
    with pytest.raises(SystemExit):
        report.main([str(bad)])


def test_gpu_check_script_is_valid_bash():
    assert subprocess.run(["bash", "-n", str(ROOT / "scripts" / "gpu_check.sh")]).returncode == 0


def _interleaved(*args):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "interleaved_ab.py"), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


def test_interleaved_ab_prints_a_row_per_layer_and_activation():
    done = _interleaved("--layers", "8x4x3,5x2x1", "--acts", "relu,gelu", "--seconds", "0.05")
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith(("| 8x4", "| 5x2"))]
    assert len(rows) == 4 and all(line.count(" us |") == 3 for line in rows)


@pytest.mark.parametrize("args, message", [
    (["--layers", "8x4"], "a layer is IN x OUT x BATCH"),
    (["--layers", "8x0x3"], "layer sizes must be positive"),
    (["--acts", "relu,swish"], "unknown or unsupported activation"),
])
def test_interleaved_ab_rejects_bad_arguments(args, message):
    done = _interleaved(*args)
    assert done.returncode == 2 and message in done.stderr
