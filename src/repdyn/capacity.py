"""``python -m repdyn.capacity run_dir=<dir>``: the offline capacity probe over a run's saved checkpoints.

A thin entry point: the probe lives in :mod:`repdyn.metrics.capacity_probe` (docs/metrics.md#capacity-loss).
"""

from repdyn.metrics.capacity_probe import main, probe_run_dir

__all__ = ["main", "probe_run_dir"]

if __name__ == "__main__":
    main()
