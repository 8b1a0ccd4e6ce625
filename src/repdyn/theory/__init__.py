"""Analytical studies: the PPO trust-region toy (Moalla et al. 2024), linearised TD dynamics (Anonymous 2023), tabular
and kernel TD eigen-dynamics (Lyle et al. 2022b, 2021), auxiliary tasks and feature dynamics (Lyle et al. 2021);
docs/experiments.md#studies-outside-the-training-loop.

Each study is a Hydra app ``python -m repdyn.theory.<study>`` that writes its tables (CSV + Markdown) and
figures (PNG) into the run dir; the pure functions behind them live in small modules beside it.
"""
