"""Training checkpoints that say when they are damaged, and cannot run code.

A checkpoint file holds the run's state serialised by torch.save, wrapped with
its SHA-256 and a format name; loading checks both, so a truncated, flipped,
empty or foreign file is a one-line CheckpointError naming the file rather
than a traceback, or worse, a run that trains on from garbage. Both levels
load with weights_only=True: a checkpoint may hold tensors, dicts, lists,
tuples, strings, numbers, booleans and None (the model's, optimiser's,
schedule's and generators' states, the run's settings and epoch records),
and a file carrying anything else (a pickled object that would run code
when loaded) is refused before any of it runs. The SHA-256 guards against
damage; weights_only against intent.
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
        raise CheckpointError(f"{path}: not a readable mlpbench checkpoint ({_first_line(e)})") \
            from None
    if not isinstance(wrapped, dict) or wrapped.get("format") != FORMAT or \
            not isinstance(wrapped.get("payload"), torch.Tensor) or \
            not isinstance(wrapped.get("sha256"), str):
        raise CheckpointError(f"{path}: not an mlpbench checkpoint (no '{FORMAT}' header)")
    payload = wrapped["payload"].numpy().tobytes()
    if hashlib.sha256(payload).hexdigest() != wrapped["sha256"]:
        raise CheckpointError(f"{path}: damaged (its SHA-256 does not match the one it was "
                              "saved with)")
    try:
        state = torch.load(io.BytesIO(payload), weights_only=True)
    except Exception as e:  # an unpickling error names the type it refused
        raise CheckpointError(f"{path}: refused, it holds more than a checkpoint's tensors, "
                              f"numbers and strings ({_first_line(e)}); nothing in it was run") \
            from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not an mlpbench checkpoint (its payload is a "
                              f"{type(state).__name__}, not a dict)")
    return state


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else 'no detail'}"
