"""Benchmarks: each prints figures against the budgets in docs/development.md (never timed tests)."""
