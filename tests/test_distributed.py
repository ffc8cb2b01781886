"""torchrun-style data parallelism on the CPU (gloo, 2 ranks): parameters stay
equal across ranks, and without dropout the run is the single-process run on
the concatenated batch."""

import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mlpbench.lecture.data import MNIST
from mlpbench.lecture.distributed import Context, setup, teardown
from mlpbench.lecture.training import Config, train

RANKS = 2


def _synthetic():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (400,), generator=g)
    x = torch.rand(400, 784, generator=g)
    return MNIST(x, y, x[:100], y[:100], source="synthetic")


def _config(batch, dropout=0.0):
    return Config(fused=True, arch=(784, 32, 10), dropout=dropout, epochs=2, batch_size=batch)


def _rank(rank, port, out, dropout):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(RANKS),
                      RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    context = setup("cpu")
    finished = False
    try:
        history = train(_config(20, dropout), data=_synthetic(), progress=False, context=context)
        torch.save({"params": [p.detach() for p in history.model.parameters()],
                    "epochs": history.epochs}, out / f"rank{rank}.pt")
        finished = True
    finally:
        teardown(context, finished=finished)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_ranks(tmp_path, dropout):
    mp.spawn(_rank, args=(_free_port(), tmp_path, dropout), nprocs=RANKS, join=True)
    return [torch.load(tmp_path / f"rank{r}.pt") for r in range(RANKS)]


def test_two_ranks_equal_the_concatenated_batch(tmp_path):
    ranks = _two_ranks(tmp_path, dropout=0.0)
    for a, b in zip(ranks[0]["params"], ranks[1]["params"]):
        assert torch.equal(a, b)
    torch.set_num_threads(1)
    single = train(_config(20 * RANKS), data=_synthetic(), progress=False)
    for ours, one in zip(ranks[0]["epochs"], single.epochs):
        assert ours["train_loss"] == pytest.approx(one["train_loss"], rel=1e-5)
        assert ours["test_loss"] == pytest.approx(one["test_loss"], rel=1e-4)
    for a, b in zip(ranks[0]["params"], single.model.parameters()):
        torch.testing.assert_close(a, b.detach(), rtol=1e-4, atol=1e-5)


def test_ranks_draw_their_own_dropout_masks(tmp_path):
    ranks = _two_ranks(tmp_path, dropout=0.5)
    for a, b in zip(ranks[0]["params"], ranks[1]["params"]):
        assert torch.equal(a, b)  # DDP keeps them equal
    torch.set_num_threads(1)
    single = train(_config(20 * RANKS, dropout=0.5), data=_synthetic(), progress=False)
    # Per-rank masks differ from the single process's: not the same run.
    assert ranks[0]["epochs"][0]["train_loss"] != single.epochs[0]["train_loss"]


@pytest.mark.skipif(not os.environ.get("MLPBENCH_DATA"), reason="real MNIST not available")
def test_torchrun_cli_trains_and_resumes(tmp_path):
    out = tmp_path / "run"
    base = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
            f"--master_port={_free_port()}", "-m", "mlpbench.train", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(base + ["--arch", "784-16-10", "--epochs", "1", "--train-limit", "400",
                                  "--out", str(out)], capture_output=True, text=True, timeout=300,
                          env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("test accuracy") == 1  # rank 0 alone reports and writes
    assert (out / "checkpoint.pt").is_file()
    base[4] = f"--master_port={_free_port()}"
    done = subprocess.run(base + ["--resume", str(out / "checkpoint.pt"), "--epochs", "2"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "after 2 epochs" in done.stdout


@pytest.mark.parametrize("finished, calls", [(True, ["barrier", "destroy"]), (False, ["destroy"])])
def test_teardown_waits_for_the_peers_only_after_a_finished_run(monkeypatch, finished, calls):
    seen = []
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "barrier", lambda: seen.append("barrier"))
    monkeypatch.setattr(dist, "destroy_process_group", lambda: seen.append("destroy"))
    teardown(Context(rank=1, world_size=2), finished=finished)
    assert seen == calls
