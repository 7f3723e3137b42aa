"""Benchmarks: each module's main() measures the project against a baseline in the same run."""
