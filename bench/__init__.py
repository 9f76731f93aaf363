"""Benchmarks: each `bench_*.py` module has `main(argv) -> int` and prints ratios against a baseline run alongside."""
