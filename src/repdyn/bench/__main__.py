"""``python -m repdyn.bench {throughput,ppo,metrics,metric_share,atari,dqn,all} [args]``: see each module."""

from __future__ import annotations

import importlib
import sys

BENCHES = {
    "ppo": "repdyn.bench.ppo",
    "metrics": "repdyn.bench.metrics",
    "metric_share": "repdyn.bench.metric_share",
    "atari": "repdyn.bench.atari",
    "dqn": "repdyn.bench.dqn",
    "throughput": "repdyn.bench.throughput",
}


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in (*BENCHES, "all"):
        sys.exit(f"usage: python -m repdyn.bench {{{','.join(BENCHES)},all}} [args]")
    names = list(BENCHES) if argv[0] == "all" else [argv[0]]
    for name in names:
        importlib.import_module(BENCHES[name]).main(argv[1:] if len(names) == 1 else [])


if __name__ == "__main__":
    main()
