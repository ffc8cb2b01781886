"""mlpbench: fused Linear+activation and mask-free dropout kernels for small MLPs.

`mlpbench.ops` holds the functional ops (custom PyTorch ops under
torch.ops.mlpbench), `mlpbench.nn` the drop-in modules.
"""

from . import nn, ops

__all__ = ["nn", "ops"]
__version__ = "0.1.0"
