"""Pure metric functions on tensors (docs/metrics.md): ranks, units, norms, trust region, eNTK, update rank, capacity.

Each metric is a function of tensors (plus keyword parameters) returning a ``dict[str, float]`` or a tensor, with its
formula and source in the docstring. ``repdyn.metrics.registry`` maps metric names to these functions.
"""
