"""The GPU check's own logic, rehearsed on the CPU (scripts/gpu_check.py
--rehearse): stage selection, budgets, rows streamed as they finish, the
archive and the summary, three files per stage."""

import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _rehearse(stage, out, budget):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py"), stage,
                           "--rehearse", "--out", str(out), "--budget", str(budget)],
                          capture_output=True, text=True, timeout=budget + 120)


def test_tests_stage_rehearsal(tmp_path):
    done = _rehearse("tests", tmp_path, 25)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.md", "tests.log",
                                                          "tests.tar.gz"]
    summary = (tmp_path / "summary.md").read_text()
    assert "rehearsal on the CPU" in summary and " passed, 0 failed" in summary
    with tarfile.open(tmp_path / "tests.tar.gz") as tar:
        assert any(name.endswith("pytest.log") for name in tar.getnames())


def test_bench_stage_rehearsal_stops_at_its_budget_with_what_it_has(tmp_path):
    done = _rehearse("bench", tmp_path, 30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.log", "bench.tar.gz",
                                                          "summary.md"]
    summary = (tmp_path / "summary.md").read_text()
    finished = int(summary.split("groups finished: ")[1].split(" of ")[0])
    assert 1 <= finished < 4, summary  # the last group is more than the budget holds
    took, budget = summary.split("stage time: ")[1].split(" s\n")[0].split(" s of ")
    assert float(took) <= float(budget), summary  # the report and archive fit the reserve
    assert "stopped every linear_act row" in summary or "skipped every linear_act row" in summary
    assert "## The lecture network" in summary  # the report of the rows it has
    with tarfile.open(tmp_path / "bench.tar.gz") as tar:
        names = tar.getnames()
    assert any(n.endswith("bench.jsonl") for n in names) and any(n.endswith("report.md")
                                                                 for n in names)


def test_without_a_gpu_the_real_run_says_so(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "tests",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here")
    assert done.returncode == 2 and "no CUDA device: run with --rehearse" in done.stderr
