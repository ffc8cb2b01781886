"""Benchmark tooling: the settings stock and fused are timed under, the bytes
autograd keeps, and the report of a benchmark run (`python -m
mlpbench.report`; its figures need matplotlib)."""
