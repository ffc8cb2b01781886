import pytest
import torch


@pytest.fixture(autouse=True)
def _true_float32_matmul():
    # float32 equivalence against stock needs true float32 products on CUDA.
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32 = old
