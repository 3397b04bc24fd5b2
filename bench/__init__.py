"""Benchmarks that start the stack and measure it (`make bench-lateness`)."""
