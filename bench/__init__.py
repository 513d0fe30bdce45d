"""Benchmarks: each prints figures against the budgets of DESIGN.md §8 (never timed tests)."""
