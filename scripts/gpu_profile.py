"""Where the GPU time of fused and stock Linear+activation goes: per-kernel
device time from torch.profiler, for a few configurations. Run by
scripts/gpu_check.sh; prints a table per configuration."""

import sys

import torch
from torch.profiler import ProfilerActivity, profile

from mlpbench import ops
from mlpbench.reference import stock_linear_act

CONFIGS = [(784, 256, 4096, "sigmoid"), (1024, 1024, 4096, "gelu"), (256, 10, 100, "relu")]
ITERS = 20


def _device_us(event):
    for name in ("self_device_time_total", "self_cuda_time_total"):
        if hasattr(event, name):
            return getattr(event, name)
    return 0.0


def profile_one(n_in, n_out, batch, act, fused):
    torch.manual_seed(0)
    x = torch.randn(batch, n_in, device="cuda", requires_grad=True)
    w = torch.randn(n_out, n_in, device="cuda", requires_grad=True)
    b = torch.randn(n_out, device="cuda", requires_grad=True)
    g = torch.randn(batch, n_out, device="cuda")
    f = ops.linear_act if fused else stock_linear_act

    def step():
        torch.autograd.grad(f(x, w, b, act), (x, w, b), g)

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(ITERS):
            step()
        torch.cuda.synchronize()
    kernels = [e for e in prof.key_averages() if _device_us(e) > 0]
    kernels.sort(key=_device_us, reverse=True)
    total = sum(_device_us(e) for e in kernels) / ITERS
    label = "fused" if fused else "stock"
    print(f"  {label}: device time {total:.1f} us per forward+backward")
    for e in kernels[:8]:
        print(f"    {_device_us(e) / ITERS:8.1f} us  x{e.count // ITERS:<3} {e.key[:90]}")


def main():
    if not torch.cuda.is_available():
        sys.exit("gpu_profile: needs a CUDA device")
    for n_in, n_out, batch, act in CONFIGS:
        print(f"{n_in}x{n_out}, batch {batch}, {act}, fwdbwd (float32, {torch.cuda.get_device_name()})")
        for fused in (False, True):
            profile_one(n_in, n_out, batch, act, fused)


if __name__ == "__main__":
    main()
