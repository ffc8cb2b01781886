"""Training checkpoints that say when they are damaged.

A checkpoint file holds the run's state serialised by torch.save, wrapped with
its SHA-256 and a format name; loading checks both, so a truncated, flipped,
empty or foreign file is a one-line CheckpointError naming the file rather
than a traceback, or worse, a run that trains on from garbage.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import torch

__all__ = ["FORMAT", "CheckpointError", "load_checkpoint", "save_checkpoint"]

FORMAT = "mlpbench-checkpoint-1"


class CheckpointError(RuntimeError):
    """The checkpoint cannot be used; the message names the file and why."""


def save_checkpoint(state: dict, path: Path) -> None:
    """Write state to path atomically (a temporary file, then a rename)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    wrapped = {"format": FORMAT, "sha256": hashlib.sha256(payload).hexdigest(),
               "payload": torch.frombuffer(bytearray(payload), dtype=torch.uint8)}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(wrapped, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    """The state save_checkpoint wrote, or CheckpointError."""
    path = Path(path)
    try:
        wrapped = torch.load(path, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except Exception as e:  # truncated, empty, foreign: torch.load raises many kinds
        raise CheckpointError(f"{path}: not a readable mlpbench checkpoint ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else 'no detail'})") from None
    if not isinstance(wrapped, dict) or wrapped.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an mlpbench checkpoint (no '{FORMAT}' header)")
    payload = wrapped["payload"].numpy().tobytes()
    if hashlib.sha256(payload).hexdigest() != wrapped["sha256"]:
        raise CheckpointError(f"{path}: damaged (its SHA-256 does not match the one it was "
                              "saved with)")
    return torch.load(io.BytesIO(payload), weights_only=False)
