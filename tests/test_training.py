"""Training: the loss falls, --resume equals an uninterrupted run, the CLI."""

import json
import os
import subprocess
import sys

import pytest
import torch

from helpers import cli_parse_error
from mlpbench.lecture.data import MNIST
from mlpbench.lecture.training import Config, train


def _synthetic(n_train=600, n_test=200):
    """MNIST-shaped data with a learnable rule: each class lights its own pixels."""
    g = torch.Generator().manual_seed(0)

    def make(n):
        y = torch.randint(0, 10, (n,), generator=g)
        x = torch.rand(n, 784, generator=g) * 0.3
        for c in range(10):
            x[y == c, c * 70:(c + 1) * 70] += 0.7
        return x.clamp_(0, 1), y

    return MNIST(*make(n_train), *make(n_test), source="synthetic")


SMALL = dict(arch=(784, 64, 32, 10), dropout=0.3, epochs=2, train_limit=None)


@pytest.mark.parametrize("fused", [False, True], ids=["stock", "fused"])
def test_loss_falls(fused):
    history = train(Config(fused=fused, **SMALL), data=_synthetic(), progress=False)
    losses = [e["train_loss"] for e in history.epochs]
    assert losses[1] < losses[0] and history.epochs[-1]["test_accuracy"] > 0.5


@pytest.mark.skipif(not os.environ.get("MLPBENCH_DATA"), reason="real MNIST not available")
def test_short_run_on_real_mnist(tmp_path):
    history = train(Config(epochs=1, train_limit=800, scheduler="cosine"), out=tmp_path,
                    progress=False)
    first = history.epochs[0]
    # An untrained 10-class model sits at loss ln(10) = 2.30 and accuracy 0.1.
    assert first["test_loss"] < 2.0 and first["test_accuracy"] > 0.4
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics) >= {"config", "versions", "epochs"}
    assert metrics["epochs"][0].keys() >= {"epoch", "train_loss", "train_accuracy", "test_loss",
                                           "test_accuracy", "seconds"}
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_resume_equals_uninterrupted(tmp_path):
    data = _synthetic()
    config = Config(scheduler="step", **{**SMALL, "epochs": 3})
    whole = train(config, data=data, out=tmp_path / "whole", progress=False)
    first = train(Config(scheduler="step", **{**SMALL, "epochs": 1}), data=data,
                  out=tmp_path / "part", progress=False)
    assert first.epochs[0]["train_loss"] == whole.epochs[0]["train_loss"]
    resumed = train(config, data=data, out=tmp_path / "part", progress=False,
                    resume=tmp_path / "part" / "checkpoint.pt")
    strip = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h.epochs]  # noqa: E731
    assert strip(resumed) == strip(whole)
    for a, b in zip(resumed.model.state_dict().values(), whole.model.state_dict().values()):
        assert torch.equal(a, b)


def test_same_seed_same_numbers():
    data = _synthetic()
    a = train(Config(**SMALL), data=data, progress=False)
    b = train(Config(**SMALL), data=data, progress=False)
    assert [e["test_loss"] for e in a.epochs] == [e["test_loss"] for e in b.epochs]


def test_divergence_is_reported_not_crashed():
    history = train(Config(optimizer="sgd", lr=1e4, **SMALL), data=_synthetic(), progress=False)
    assert history.diverged and "loss became" in history.diverged


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "mlpbench.train", *args], capture_output=True,
                          text=True, timeout=120)


def test_cli_help():
    done = _cli("--help")
    assert done.returncode == 0
    for flag in ("--fused", "--no-fused", "--arch", "--activation", "--dropout", "--init",
                 "--optimizer", "--momentum", "--weight-decay", "--lr", "--scheduler", "--epochs",
                 "--batch-size", "--standardize", "--batchnorm", "--device", "--seed",
                 "--data-dir", "--out", "--resume"):
        assert flag in done.stdout


@pytest.mark.parametrize("args, message", [
    (["--dropout", "1.5"], "--dropout: expected a value >= 0.0 and <= 1.0, got '1.5'"),
    (["--arch", "784-abc-10"], "--arch: expected sizes like 784-256-10"),
    (["--activation", "relu6"], "--activation: invalid choice: 'relu6'"),
    (["--lr", "0"], "--lr: expected a value > 0.0"),
    (["--resume", "/no/such/checkpoint.pt"], "--resume: /no/such/checkpoint.pt is not a file"),
])
def test_cli_bad_values(args, message, capsys):
    code, err = cli_parse_error(capsys, *args)
    assert code == 2
    assert message in err
