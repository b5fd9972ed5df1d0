"""Benchmarks against the reference implementations: `python -m bench.run` from the repository."""
