"""Benchmarks that print ratios measured in one run (ours vs a reference): ``python -m repdyn.bench <name>``."""
