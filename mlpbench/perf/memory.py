"""How many bytes autograd keeps for backward."""

from __future__ import annotations

import torch

__all__ = ["saved_tensor_bytes"]


def saved_tensor_bytes(fn, exclude=()):
    """Run fn() and return (bytes of the unique storages autograd saved for
    backward, fn's result), leaving out the storages of the tensors in
    `exclude` (parameters, the input batch)."""
    skipped = {t.untyped_storage().data_ptr() for t in exclude}
    kept = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in skipped:
            kept[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        result = fn()
    return sum(kept.values()), result
