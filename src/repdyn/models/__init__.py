"""Networks that return (output, penultimate features, pre-activations) from one forward pass.

Every network here follows one contract so metrics and interventions never need hooks or a second pass:

    out, features, preacts = net(x)

- ``out``: the head output (logits, [loc, raw_scale], value, Q-values).
- ``features``: post-activation of the penultimate layer, shape [..., D] (the Φ of docs/metrics.md#conventions).
- ``preacts``: tuple of the pre-activations of every hidden layer, in order; ``preacts[-1]`` is the penultimate
  pre-activation used by ``pfo``, ``torch.cat(preacts, -1)`` the all-layer vector used by ``pfo_all``.

Modules: ``mlp`` (:class:`~repdyn.models.mlp.MLP`), ``cnn`` (:class:`~repdyn.models.cnn.NatureCNN`), ``config``
(the ``model`` schema). Nothing is imported here, so reading the schema does not load torch.
"""
