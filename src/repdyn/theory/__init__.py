"""Analytical studies: the PPO trust-region toy (seed 002), linearised TD dynamics (seed 004), tabular
and kernel TD eigen-dynamics (seed 003, seed 001).

Each study is a Hydra app ``python -m repdyn.theory.<study>`` that writes its tables (CSV + Markdown) and
figures (PNG) into the run dir; the pure functions behind them live in small modules beside it.
"""
