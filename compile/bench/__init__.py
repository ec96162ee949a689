"""Benchmarks: the network against other engines, and the runtime's post-processing."""
