"""The training CLI loses nothing and says what is wrong: checked
checkpoints, --resume that refuses conflicting flags, --out checked before
any work, batch norm's one-sample last batch, Ctrl-C, 64-bit seeds."""

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from helpers import cli_parse_error
from mlpbench.lecture.checkpoint import FORMAT, CheckpointError, load_checkpoint, save_checkpoint
from mlpbench.lecture.data import MNIST
from mlpbench.lecture import plots
from mlpbench.lecture import train as train_cli
from mlpbench.lecture.training import Config, _signals_deferred, batch_starts, train

REAL_MNIST = pytest.mark.skipif(not os.environ.get("MLPBENCH_DATA"),
                                reason="real MNIST not available")


def _cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "mlpbench.train", "--quiet", *args],
                          capture_output=True, text=True, timeout=timeout)


def _synthetic(n):
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (n,), generator=g)
    x = torch.rand(n, 784, generator=g)
    return MNIST(x, y, x[:50], y[:50], source="synthetic")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A one-epoch CLI run on real MNIST: 784-16-10, relu."""
    out = tmp_path_factory.mktemp("run")
    done = _cli("--arch", "784-16-10", "--epochs", "1", "--train-limit", "300", "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out


def test_checkpoint_round_trip_and_damage(tmp_path):
    state = {"epochs": [1, 2], "model": {"w": torch.randn(40, 40)}}
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(state, path)
    assert torch.equal(load_checkpoint(path)["model"]["w"], state["model"]["w"])
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 400] = bytes(b ^ 0xFF for b in data[middle:middle + 400])
    (tmp_path / "flipped.pt").write_bytes(bytes(data))
    (tmp_path / "truncated.pt").write_bytes(path.read_bytes()[: len(data) // 3])
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    torch.save({"model": {}}, tmp_path / "foreign.pt")
    for name in ("flipped", "truncated", "empty", "text", "foreign"):
        with pytest.raises(CheckpointError, match=f"{name}.pt: "):
            load_checkpoint(tmp_path / f"{name}.pt")
    with pytest.raises(CheckpointError, match="damaged|not a readable"):
        load_checkpoint(tmp_path / "flipped.pt")


@REAL_MNIST
def test_resume_says_what_it_resumes_and_refuses_conflicts(run_dir):
    checkpoint = run_dir / "checkpoint.pt"
    done = _cli("--resume", str(checkpoint), "--arch", "784-64-10", "--activation", "tanh")
    assert done.returncode == 2
    assert "--arch (784, 64, 10) differs from the checkpoint's (784, 16, 10)" in done.stderr
    assert "--activation 'tanh' differs from the checkpoint's 'relu'" in done.stderr
    assert "Traceback" not in done.stderr
    done = _cli("--resume", str(checkpoint), "--epochs", "2", "--out", str(run_dir / "more"))
    assert done.returncode == 0, done.stderr
    assert "resuming" in done.stderr and "fused 784-16-10 relu, after epoch 1 of 2" in done.stderr
    assert "784-16-10 relu: test accuracy" in done.stdout and "after 2 epochs" in done.stdout


@REAL_MNIST
def test_damaged_checkpoint_is_one_line(run_dir, tmp_path):
    bad = tmp_path / "checkpoint.pt"
    data = bytearray((run_dir / "checkpoint.pt").read_bytes())
    data[len(data) // 2: len(data) // 2 + 400] = bytes(400)
    bad.write_bytes(bytes(data))
    done = _cli("--resume", str(bad))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and str(bad) in done.stderr


def test_bad_out_is_refused_before_any_work(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("")
    start = time.perf_counter()
    for out, message in ((a_file, "exists and is not a directory"),
                         (a_file / "below", "cannot write to")):
        done = _cli("--out", str(out), "--data-dir", str(tmp_path / "no-data"))
        assert done.returncode == 2 and f"--out: " in done.stderr and message in done.stderr
        assert "Traceback" not in done.stderr
    assert time.perf_counter() - start < 60


@pytest.mark.parametrize("seed", ["18446744073709551616", "-1", "1.5"])
def test_seed_must_fit_64_bits(seed, capsys):
    code, err = cli_parse_error(capsys, "--seed", seed)
    assert code == 2 and "--seed: expected an int" in err


def test_batch_starts_merge_a_one_sample_batch_under_batch_norm():
    assert batch_starts(101, 100, batchnorm=False) == [0, 100]
    assert batch_starts(101, 100, batchnorm=True) == [0]
    assert batch_starts(102, 100, batchnorm=True) == [0, 100]
    assert batch_starts(203, 100, batchnorm=True, ranks=2) == [0, 100]
    assert batch_starts(50, 100, batchnorm=True) == [0]


@pytest.mark.parametrize("fused", [False, True], ids=["stock", "fused"])
def test_batch_norm_trains_when_the_last_batch_has_one_sample(fused):
    history = train(Config(fused=fused, arch=(784, 16, 10), batchnorm=True, epochs=1,
                           batch_size=100), data=_synthetic(101), progress=False)
    assert history.epochs[0]["train_loss"] > 0


@pytest.mark.parametrize("sig, error", [(signal.SIGINT, KeyboardInterrupt),
                                        (signal.SIGTERM, train_cli.Terminated)])
def test_stop_signals_wait_for_the_block_then_stop(sig, error):
    written = []
    with train_cli.stop_signals():
        with pytest.raises(error):
            with _signals_deferred():
                os.kill(os.getpid(), sig)
                written.append("checkpoint")
                written.append("metrics")
    assert written == ["checkpoint", "metrics"]


@REAL_MNIST
@pytest.mark.parametrize("sig, status, line", [(signal.SIGINT, 130, "interrupted;"),
                                               (signal.SIGTERM, 143, "terminated (SIGTERM);")])
def test_a_stop_signal_exits_with_one_line_and_agreeing_files(tmp_path, sig, status, line):
    """Ctrl-C and SIGTERM (batch schedulers, kill, container stops) alike:
    the checkpoint, metrics and figure agree, one line says where the last
    checkpoint is, and the exit status says which signal (130, 143)."""
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "mlpbench.train", "--quiet", "--arch",
                             "784-16-10", "--epochs", "200", "--train-limit", "2000", "--out",
                             str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "metrics.json").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == status, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith(f"{line} the last checkpoint is")
    epochs = json.loads((out / "metrics.json").read_text())["epochs"]
    assert len(epochs) == len(load_checkpoint(out / "checkpoint.pt")["epochs"])
    assert not list(out.glob("*.tmp"))


class _Exploit:
    """Unpickling this creates a file: what a crafted checkpoint could do."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_crafted_checkpoint_cannot_run_code(tmp_path):
    """A payload with a valid SHA-256 (anyone can compute one) that would run
    code when unpickled is refused in one line, and nothing runs."""
    marker = tmp_path / "ran"
    buffer = io.BytesIO()
    torch.save({"config": {}, "model": _Exploit(marker)}, buffer)
    payload = buffer.getvalue()
    torch.save({"format": FORMAT, "sha256": hashlib.sha256(payload).hexdigest(),
                "payload": torch.frombuffer(bytearray(payload), dtype=torch.uint8)},
               tmp_path / "crafted.pt")
    with pytest.raises(CheckpointError, match="crafted.pt: refused, it holds more than"):
        load_checkpoint(tmp_path / "crafted.pt")
    assert not marker.exists()
    done = _cli("--resume", str(tmp_path / "crafted.pt"))
    assert done.returncode == 2 and not marker.exists()
    assert done.stderr.strip().splitlines()[-1].startswith("error: ")


def test_abbreviated_flags_are_refused():
    """argparse would take --prec for --precision, and --resume's comparison
    of the flags with the checkpoint's would miss it."""
    for flags in (["--prec", "bf16"], ["--fu"], ["--epo", "2"]):
        done = _cli(*flags)
        assert done.returncode == 2 and "unrecognized arguments" in done.stderr, flags


def test_curves_are_written_atomically(tmp_path, monkeypatch):
    """A failure while the figure is drawn leaves the last complete curves.png."""
    train(Config(arch=(784, 16, 10), epochs=1), data=_synthetic(200), out=tmp_path,
          progress=False)
    before = (tmp_path / "curves.png").read_bytes()

    def broken(epochs, path, title=None):
        path.write_bytes(b"half a png")
        raise OSError("disk full")

    monkeypatch.setattr(plots, "plot_curves", broken)
    with pytest.raises(OSError, match="disk full"):
        train(Config(arch=(784, 16, 10), epochs=2), data=_synthetic(200), out=tmp_path,
              resume=tmp_path / "checkpoint.pt", progress=False)
    assert (tmp_path / "curves.png").read_bytes() == before


@REAL_MNIST
@pytest.mark.parametrize("native", [True, False])
def test_first_line_and_bf16_warning(tmp_path, monkeypatch, capsys, native):
    """The first line says device, precision and build; --precision bf16 on a
    CPU without native bf16 warns in one line, naming what the CPU lacks."""
    monkeypatch.setattr(train_cli, "native_bf16_cpu", lambda: native)
    assert train_cli.main(["--quiet", "--arch", "784-10", "--epochs", "1", "--train-limit", "200",
                           "--precision", "bf16", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("mlpbench.train: device cpu (") and "precision bf16" in err[0]
    assert ("CPU kernels only" in err[0]) != train_cli.ops._C.has_cuda()
    warnings = [e for e in err if e.startswith("warning: --precision bf16")]
    assert len(warnings) == (0 if native else 1)
    if warnings:
        assert "neither AVX512-BF16 nor AMX-BF16" in warnings[0]


def test_precision_bf16_trains_and_is_recorded(tmp_path):
    history = train(Config(arch=(784, 32, 10), epochs=2, precision="bf16"), data=_synthetic(300),
                    out=tmp_path, progress=False)
    assert history.epochs[1]["train_loss"] < history.epochs[0]["train_loss"]
    assert json.loads((tmp_path / "metrics.json").read_text())["config"]["precision"] == "bf16"
    resumed = load_checkpoint(tmp_path / "checkpoint.pt")
    assert resumed["config"]["precision"] == "bf16"


def test_precision_fp16_needs_cuda(capsys):
    code, err = cli_parse_error(capsys, "--precision", "fp16")
    assert code == 2 and "--precision fp16: needs --device cuda" in err
    with pytest.raises(ValueError, match="fp16 needs --device cuda"):
        train(Config(precision="fp16"), data=_synthetic(10), progress=False)


@REAL_MNIST
def test_train_ab_alternates_fused_and_stock_epochs():
    """scripts/train_ab.py: both runs train every epoch, in turns, and it
    reports the per-epoch ratio."""
    script = os.path.join(os.path.dirname(__file__), "..", "scripts", "train_ab.py")
    done = subprocess.run([sys.executable, script, "--epochs", "2", "--train-limit", "300",
                           "--device", "cpu"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and "s |" in line]
    assert [row.split("|")[1].strip() for row in rows] == ["1", "2"]
    assert "fused / stock per epoch: median" in done.stdout


def test_out_check_is_safe_when_ranks_run_it_at_once(tmp_path):
    """torchrun's ranks check the same --out at the same moment: each probe is
    its own file, so one rank's cleanup never fails another's check."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        problems = list(pool.map(lambda _: train_cli._unwritable(tmp_path), range(400)))
    assert problems == [None] * 400
    assert list(tmp_path.iterdir()) == []
