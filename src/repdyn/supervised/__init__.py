"""Supervised NTK data-selection studies on Auto MPG (Jansson 2025 §3.2-3.6, Tables 4.1-4.6; docs/references.md).

``python -m repdyn.supervised.ntk_correlation`` (Study B: do initial NTK metrics correlate with the final test loss?)
and ``python -m repdyn.supervised.ntk_selection`` (Study C: does selecting the training set to raise a metric lower
the test loss?). Data in :mod:`.auto_mpg`, the batched MLP regressor in :mod:`.regressor`, the selection rules and
NTK metrics of subsets in :mod:`.selection`.
"""
