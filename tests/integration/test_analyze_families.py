"""Every key family a ``metrics=full`` PPO run logs is drawn in some figure of the report (one tiny in-process run)."""

from __future__ import annotations

import pytest

from repdyn.analysis.loader import load_runs
from repdyn.analysis.report import ReportOptions, build_figures, compute_tables, key_family
from repdyn.train import run

# one batch of 2 envs × 256 steps; the probes on small samples keep the run to a few seconds
TINY_FULL = [
    "env=classic/cartpole",
    "logger=none",
    "metrics=full",
    "train.total_frames=512",
    "metrics.capacity_samples=64",
    "metrics.capacity_epochs=1",
    "metrics.ntk_samples=64",
    "metrics.update_rank_k=16",
    "metrics.update_rank_probe=16",
]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from repdyn.config import register_configs
    from repdyn.paths import CONF_DIR

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=TINY_FULL)
    run_dir = tmp_path_factory.mktemp("full") / "run"
    assert run(cfg, run_dir) == "completed"
    return load_runs(run_dir, progress=False)


def _plotted_keys(figs) -> set[str]:
    """Keys of the curve lines (gid ``<kind>|<key>|<group>``) of every figure."""
    return {ln.get_gid().split("|")[1] for fig in figs.values() for ax in fig.axes for ln in ax.lines if ln.get_gid()}


def test_every_logged_family_is_in_some_figure(full_run):
    families = {key_family(k) for k in full_run.metric_keys}
    # the families of docs/metrics.md a metrics=full PPO run writes
    assert {"env", "loss", "ppo", "trust_region", "opt", "perf", "capacity", "ntk", "update_rank"} <= families
    assert {"batch_start", "batch_end", "batch_diff"} <= families
    plotted = _plotted_keys(build_figures(full_run, compute_tables(full_run, ReportOptions(formats=["png"]))))
    assert families - {key_family(k) for k in plotted} == set()
    # both networks of each representation panel, before and after the update
    for scope in ("batch_start", "batch_end"):
        assert {f"{scope}/actor/preact_norm", f"{scope}/critic/preact_norm"} <= plotted
