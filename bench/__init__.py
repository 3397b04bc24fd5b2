"""Benchmarks that start the stack and measure it beside its baselines (`make bench`)."""
