"""A synthetic Hydra multirun with known curves, for the analysis tests (no training needed).

Layout written: ``<root>/<job>/{history.jsonl, config.yaml, summary.json, .hydra/overrides.yaml}`` with jobs ordered
like Hydra's ``-m agent.epochs=E1,E2 seed=S1,S2`` (epochs outer, seed inner). Every curve is an exact function of
the log index so tests can hand-compute aggregates. With ``k = 1..n_logs``, ``step = k · horizon / n_logs`` and
``u = k / n_logs``:

* ``env/return``                      = 100·u + 10·seed − 20·(epochs − 1)
* ``batch_start/actor/approx_rank``   = 60 − 10·epochs·u + seed                      (exact linear)
* ``batch_start/actor/effective_rank``= approx_rank + 2                               (Pearson 1, L2 = 2/D)
* ``batch_start/actor/srank``         = 2·approx_rank                                 (Pearson 1)
* ``batch_start/actor/feature_rank``  = approx_rank² / 64                             (monotone: Kendall = Spearman 1)
* ``batch_start/actor/numerical_rank``= 64                                            (constant: correlations NaN)
* ``batch_start/critic/approx_rank``  = 50 − 5·epochs·u
* ``batch_start/actor/preact_norm``   = 1 + epochs·u;  ``feature_norm`` = 2 + epochs·u
* ``batch_start/actor/dead_units``    = floor(8·epochs·u)
* ``batch_start/actor/policy_variance`` = 0.1·(1 − u);  ``ppo/entropy`` = 0.7 − 0.2·u
* ``trust_region/ratio_below_mean``   = 0.85, except planted windows (``PLANTED``: 1% window index → value)
* ``trust_region/excess_ratio``       = 1 + u while ``u ≤ collapse_u[epochs]`` (default: never collapses), else absent
* ``capacity/actor/loss``             = 0.01·epochs·u every 25th log (NaN elsewhere is simply not written)
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

PLANTED = {7: 0.50, 30: 0.60, 55: 0.40}


def synthetic_record(k: int, n_logs: int, epochs: int, seed: int, collapse_u: float = 2.0) -> dict[str, float]:
    """The metrics logged at log index ``k`` (1-based) of a synthetic run (see module docstring)."""
    u = k / n_logs
    rank = 60.0 - 10.0 * epochs * u + seed
    window = min(k * 100 // n_logs, 99)  # the 1% window of this step, as repdyn.analysis.stats.window_means counts
    rec: dict[str, float] = {
        "env/return": 100.0 * u + 10.0 * seed - 20.0 * (epochs - 1),
        "batch_start/actor/approx_rank": rank,
        "batch_start/actor/effective_rank": rank + 2.0,
        "batch_start/actor/srank": 2.0 * rank,
        "batch_start/actor/feature_rank": rank**2 / 64.0,
        "batch_start/actor/numerical_rank": 64.0,
        "batch_start/critic/approx_rank": 50.0 - 5.0 * epochs * u,
        "batch_start/actor/preact_norm": 1.0 + epochs * u,
        "batch_start/actor/feature_norm": 2.0 + epochs * u,
        "batch_start/actor/dead_units": float(math.floor(8 * epochs * u)),
        "batch_start/actor/policy_variance": 0.1 * (1.0 - u),
        "ppo/entropy": 0.7 - 0.2 * u,
        "trust_region/ratio_below_mean": PLANTED.get(window, 0.85),
    }
    if u <= collapse_u:
        rec["trust_region/excess_ratio"] = 1.0 + u
    if k % 25 == 0:
        rec["capacity/actor/loss"] = 0.01 * epochs * u
    return rec


def write_synthetic_sweep(
    root: str | os.PathLike,
    epochs: Sequence[int] = (1, 2),
    seeds: Sequence[int] = (0, 1),
    *,
    n_logs: int = 1000,
    horizon: int = 100_000,
    env_id: str = "CartPole-v1",
    agent: str = "ppo",
    hidden: Sequence[int] = (64, 64),
    collapse_u: Mapping[int, float] | None = None,
) -> list[Path]:
    """Write the sweep; the log step of index ``k`` is ``k·horizon/n_logs`` (an integer: make horizon a multiple of
    n_logs). Returns the run dirs in job order."""
    if horizon % n_logs:
        raise ValueError(f"horizon ({horizon}) must be a multiple of n_logs ({n_logs})")
    root = Path(root)
    dirs = []
    job = 0
    for e in epochs:
        for s in seeds:
            d = root / str(job)
            (d / ".hydra").mkdir(parents=True, exist_ok=True)
            cu = (collapse_u or {}).get(e, 2.0)
            with open(d / "history.jsonl", "w", encoding="utf-8") as fh:
                for k in range(1, n_logs + 1):
                    fh.write(
                        json.dumps({"step": k * horizon // n_logs, **synthetic_record(k, n_logs, e, s, cu)}) + "\n"
                    )
            (d / "config.yaml").write_text(
                f"seed: {s}\nname: synthetic\nenv:\n  id: {env_id}\n  family: classic\nagent:\n  name: {agent}\n"
                f"  epochs: {e}\nmodel:\n  hidden: {list(hidden)}\ntrain:\n  total_frames: {horizon}\n"
            )
            (d / ".hydra" / "overrides.yaml").write_text(f"- agent.epochs={e}\n- seed={s}\n")
            (d / "summary.json").write_text(json.dumps({"status": "finished", "step": horizon}))
            dirs.append(d)
            job += 1
    return dirs
