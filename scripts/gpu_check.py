"""The GPU check, in two stages that each fit one command on a lent GPU machine
(at most 10 minutes a command, each from a bare machine; no network):

    python3 scripts/gpu_check.py tests --out "$OUT"   # build for this card, every CUDA test
    python3 scripts/gpu_check.py bench --out "$OUT"   # the focused CUDA benchmarks and report

Each stage keeps to its budget (--budget, 480 s by default): it stops before
the budget with what it has and says what it skipped. `bench` streams its
results row by row (bench/conftest.py: MLPBENCH_BENCH_STREAM), so a stop
costs at most the row in flight; it builds unless a CUDA build is already
there (a warm machine, after `tests`). Each stage leaves three files in
--out: summary.md (what passed, failed and was skipped, the key ratios, the
targets), <stage>.log, and <stage>.tar.gz with everything else.

--rehearse runs the same pipeline on the CPU with a tiny budget and a small
selection (CI does, so that this script's own logic never first runs on a GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The focused benchmark set, one entry per group of rows: (label, pytest -k).
BENCH_SELECTION = [
    ("lecture network step, fp32", "test_mlp and step and fp32 and cuda"),
    ("lecture network step, bf16 autocast", "test_mlp and step and bf16 and cuda"),
    ("lecture network fwd+bwd, fp32", "test_mlp and fwdbwd and fp32 and cuda"),
    ("lecture network fwd+bwd, bf16 autocast", "test_mlp and fwdbwd and bf16 and cuda"),
    ("linear_act relu and gelu, lecture shapes", "test_linear_act and cuda and fp32 and "
     "(-relu- or -gelu-) and not 1024x1024 and not compile"),
    ("activation bandwidth against a copy", "(test_activation or test_reference_rows) and "
     "cuda-size1 and not bf16"),
    ("dropout bandwidth", "test_dropout and cuda and 4096x1024 and fp32"),
]
# The rehearsal's: CPU rows, few enough that a tiny budget finishes some
# groups and stops in or before others.
REHEARSAL_SELECTION = [
    ("lecture network step, fp32", "test_mlp and step and fp32 and 100 and cpu and (fused or floor)"),
    ("dropout", "test_dropout and cpu and 100x256 and fp32 and fwd-"),
    ("linear_act 256x10 relu", "test_linear_act and cpu and 256x10 and batch100 and -relu- and "
     "fwd- and fp32 and (fused or floor)"),
    ("every linear_act row (more than the budget)", "test_linear_act and cpu"),
]


class Stage:
    """One stage's clock, log and scratch directory."""

    def __init__(self, name, out: Path, budget: float, rehearse: bool):
        self.name, self.out, self.budget, self.rehearse = name, out, budget, rehearse
        self.start = time.monotonic()
        self.work = Path(tempfile.mkdtemp(prefix=f"gpu-check-{name}-"))
        self.log = open(out / f"{name}.log", "w")
        self.notes: list[str] = []  # what was skipped or stopped, for the summary

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.start)

    def say(self, text: str) -> None:
        line = f"[{time.monotonic() - self.start:6.1f} s] {text}"
        print(line, flush=True)
        self.log.write(line + "\n")
        self.log.flush()

    def run(self, label: str, cmd: list[str], reserve: float, env=None, log_name=None):
        """cmd with the time left minus `reserve` seconds (a share of the
        budget at most: what must follow, the report and the archive);
        returns (return code or None if stopped at the budget, output)."""
        limit = self.left() - min(reserve, 0.3 * self.budget)
        if limit < 5:
            self.notes.append(f"skipped {label}: {max(self.left(), 0):.0f} s of the budget left")
            self.say(f"skip {label} (budget)")
            return None, ""
        self.say(f"{label}: {' '.join(cmd)} (up to {limit:.0f} s)")
        with open(self.work / (log_name or f"{label.split()[0]}.log"), "w") as out:
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True,
                                    env={**os.environ, **(env or {})})
            lines = []
            try:
                stdout, _ = proc.communicate(timeout=limit)
                lines.append(stdout)
                code = proc.returncode
            except subprocess.TimeoutExpired:
                proc.kill()
                stdout, _ = proc.communicate()
                lines.append(stdout)
                code = None
                self.notes.append(f"stopped {label} at the budget ({limit:.0f} s)")
            text = "".join(lines)
            out.write(text)
        self.log.write(text[-20000:])
        self.say(f"{label}: {'stopped at the budget' if code is None else f'exit {code}'}")
        return code, text

    def finish(self, summary: str) -> None:
        (self.out / "summary.md").write_text(summary)
        self.log.close()
        with tarfile.open(self.out / f"{self.name}.tar.gz", "w:gz") as tar:
            tar.add(self.work, arcname=self.name)
        shutil.rmtree(self.work, ignore_errors=True)


def machine() -> str:
    """The date, card (or CPU), torch and commit, in one line."""
    import torch

    card = (torch.cuda.get_device_name() if torch.cuda.is_available()
            else f"no GPU ({platform.processor() or platform.machine()} CPU)")
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        commit = ""
    commit = commit or os.environ.get("MLPBENCH_COMMIT", "unknown (no git here)")
    return (f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {card}, torch "
            f"{torch.__version__}, Python {platform.python_version()}, commit {commit}")


def has_cuda_build() -> bool:
    done = subprocess.run([sys.executable, "-c", "import mlpbench._C as c; print(c.has_cuda())"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    return done.returncode == 0 and done.stdout.strip() == "True"


def build(stage: Stage, reserve: float) -> bool:
    """The extension for this card only (sm_90 on an H100 or H200), on every core."""
    if stage.rehearse:
        stage.notes.append("build: skipped in the rehearsal (the CPU build already there)")
        return True
    if has_cuda_build():
        stage.say("build: a CUDA build is already here (warm machine), reused")
        return True
    import torch

    arch = "%d.%d" % torch.cuda.get_device_capability()
    env = {"TORCH_CUDA_ARCH_LIST": arch, "MLPBENCH_CUDA": "1", "MAX_JOBS": str(os.cpu_count())}
    code, _ = stage.run(f"build (sm_{arch.replace('.', '')})",
                        [sys.executable, "setup.py", "build_ext", "--inplace"], reserve, env,
                        log_name="build.log")
    return code == 0 and has_cuda_build()


def test_counts(text: str) -> dict:
    """Passed, failed, ... from pytest -v output (its per-test lines survive
    a stop at the budget, unlike the final tally)."""
    counts = {}
    for outcome in ("PASSED", "FAILED", "ERROR", "SKIPPED", "XFAIL", "XPASS"):
        counts[outcome.lower()] = len(re.findall(rf"(?m)^\S+::\S+ {outcome}|\] {outcome} ", text))
    counts["failures"] = re.findall(r"(?m)^(?:FAILED|ERROR) (\S+)", text)
    return counts


def stage_tests(args) -> int:
    stage = Stage("tests", args.out, args.budget, args.rehearse)
    stage.say(f"tests stage: {machine()}")
    built = build(stage, reserve=60)
    counts = {"passed": 0, "failed": 0, "error": 0, "skipped": 0, "failures": []}
    if built:
        select = "cuda" if not args.rehearse else "cuda or test_layout"
        xdist = [] if args.rehearse else ["-p", "xdist", "-n", "8"]
        code, text = stage.run("pytest -k cuda", [sys.executable, "-m", "pytest", "-v", "-rfE",
                                                  "-p", "no:cacheprovider", *xdist, "tests",
                                                  "-k", select], reserve=15,
                               log_name="pytest.log")
        counts = test_counts(text)
        if code is None:
            stage.notes.append("the tests not reported above did not run (budget)")
    else:
        stage.notes.append("build failed: no tests ran (build.log in the archive)")
    lines = [f"# GPU check: tests ({'rehearsal on the CPU' if args.rehearse else 'CUDA'})", "",
             machine(), "",
             f"- built: {'yes' if built else 'no'}",
             f"- tests: {counts['passed']} passed, {counts['failed']} failed, "
             f"{counts['error']} errors, {counts['skipped']} skipped",
             *(f"- FAILED {name}" for name in counts["failures"][:40]),
             *(f"- {note}" for note in stage.notes),
             f"- stage time: {time.monotonic() - stage.start:.0f} s of {args.budget:.0f} s", ""]
    stage.finish("\n".join(lines))
    ok = built and counts["failed"] == 0 and counts["error"] == 0
    return 0 if ok else 1


def stage_bench(args) -> int:
    stage = Stage("bench", args.out, args.budget, args.rehearse)
    stage.say(f"bench stage: {machine()}")
    built = build(stage, reserve=120)
    stream = stage.work / "bench.jsonl"
    selection = REHEARSAL_SELECTION if args.rehearse else BENCH_SELECTION
    done = []
    if built:
        for label, expr in selection:
            reserve = 20  # the report and the archive
            code, _ = stage.run(label, [sys.executable, "-m", "pytest", "-q", "-p",
                                        "no:cacheprovider", "bench", "--benchmark-only",
                                        "--benchmark-max-time=0.05", "--benchmark-min-rounds=3",
                                        "-k", expr], reserve,
                                env={"MLPBENCH_BENCH_STREAM": str(stream),
                                     "MLPBENCH_BENCH_COMPILE": "relu"},
                                log_name=f"bench-{len(done)}.log")
            if code is not None:
                done.append(label)
    if built and not args.rehearse:
        stage.run("profile", [sys.executable, "scripts/gpu_profile.py"], reserve=20,
                  log_name="profile.txt")
    targets = ""
    if stream.exists() and stream.stat().st_size:
        device = "cpu" if args.rehearse else "cuda"
        report = [sys.executable, "-m", "mlpbench.report", str(stream), "--device", device]
        # The full report and the targets side by side: each process imports
        # torch and the figures matplotlib, seconds on a slow CPU, and both
        # must fit the reserve.
        full = subprocess.Popen([*report, "--markdown", str(stage.work / "report.md"),
                                 "--figures", str(stage.work / "figures")], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        targets = subprocess.run([*report, "--targets"], cwd=ROOT, capture_output=True,
                                 text=True, timeout=120).stdout
        full.wait(timeout=120)
    rows = sum(1 for _ in stream.open()) if stream.exists() else 0
    lines = [f"# GPU check: benchmarks ({'rehearsal on the CPU' if args.rehearse else 'CUDA'})",
             "", machine(), "", f"- built: {'yes' if built else 'no'}",
             f"- groups finished: {len(done)} of {len(selection)}; rows recorded: {rows}",
             *(f"- {note}" for note in stage.notes),
             f"- stage time: {time.monotonic() - stage.start:.0f} s of {args.budget:.0f} s", "",
             targets or "(no rows to report)", ""]
    stage.finish("\n".join(lines))
    return 0 if built and rows else 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("stage", choices=["tests", "bench"])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-out")))
    parser.add_argument("--budget", type=float, help="seconds (default 480; 40 rehearsing)")
    parser.add_argument("--rehearse", action="store_true",
                        help="the whole pipeline on the CPU, tiny budget and selection")
    args = parser.parse_args(argv)
    if args.budget is None:
        args.budget = 40.0 if args.rehearse else 480.0
    if args.budget <= 0:
        parser.error(f"--budget must be positive, got {args.budget}")
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.rehearse:
        import torch

        if not torch.cuda.is_available():
            parser.error("no CUDA device: run with --rehearse to exercise the pipeline on the CPU")
    return (stage_tests if args.stage == "tests" else stage_bench)(args)


if __name__ == "__main__":
    sys.exit(main())
