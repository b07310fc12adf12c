"""Benchmarks for pytest-ploop. Not part of the installed package; see README.md."""
