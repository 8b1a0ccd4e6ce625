"""Where a run's records go: ``history.jsonl`` and, unless disabled, W&B, behind one :class:`RecordSinks`.

It also keeps what the summary needs of the records (the last one, and every value logged in the last 5% of the budget)
and the W&B run id: all three are resumable state (:mod:`repdyn.run_state` saves them), so a resumed run truncates its
history after the checkpoint's last record and keeps writing to the same W&B run.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from repdyn.paths import HISTORY_FILE, REPO_ROOT

TAIL_FRACTION = 0.95  # values logged from 95% of the budget on make the summary's ``last_5pct`` means


def git_commit() -> str | None:
    """The repository's HEAD commit, or None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


class RecordSinks:
    """The history and W&B sinks of the run in ``run_dir`` with a budget of ``total`` steps (env steps for
    ``repdyn.train``, student gradient steps for ``repdyn.distill``).

    Built before a resume restores ``last_record`` / ``tail`` / ``wandb_id``; :meth:`open` then opens the sinks."""

    def __init__(self, run_dir: Path, total: int) -> None:
        self.run_dir, self.total = run_dir, total
        self.last_record: dict[str, Any] = {}
        self.tail: dict[str, list[float]] = {}  # values logged in the last 5% of the budget, for the summary
        self.wandb_id: str | None = None
        self.logger: Any = None

    def open(
        self, resumed: bool, *, logger_cfg: Any, run_name: str, config: dict[str, Any], overrides: Sequence[str]
    ) -> None:
        """Open ``history.jsonl`` (a resumed run drops the records after its checkpoint's last one; a fresh run in a
        reused dir without a checkpoint starts a fresh history) and the W&B sink of the ``logger`` section, which
        receives ``config`` (already redacted) and the redacted ``overrides`` as tags."""
        from repdyn.loggers.history import History
        from repdyn.loggers.logger import Logger

        hist_path = self.run_dir / HISTORY_FILE
        if resumed:
            History.truncate_after(hist_path, self.last_record.get("_step", -1))
        elif hist_path.exists():
            hist_path.unlink()
        sinks = []
        if logger_cfg.backend == "wandb" and logger_cfg.mode != "disabled":
            sinks.append(self._wandb_sink(logger_cfg, run_name, config, overrides))
        self.logger = Logger(History(hist_path), sinks)

    def _wandb_sink(self, lc: Any, run_name: str, config: dict[str, Any], overrides: Sequence[str]) -> Any:
        from repdyn.loggers.logger import redact
        from repdyn.loggers.wandb_sink import WandbSink

        sink = WandbSink(
            str(self.run_dir),
            config,
            project=lc.project,
            entity=lc.entity,
            group=lc.group or run_name,
            name=f"{run_name}/{self.run_dir.name}",
            tags=redact(list(overrides)),
            mode=lc.mode,
            run_id=self.wandb_id,
        )
        self.wandb_id = sink.run_id
        return sink

    def log(self, step: int, record: dict[str, Any]) -> None:
        """Write ``record`` at env step ``step`` to every sink; raise :class:`repdyn.agents.base.Diverged` instead
        when a value (``perf/*`` timings aside) is not finite."""
        from repdyn.agents.base import Diverged
        from repdyn.loggers.logger import first_non_finite

        bad = first_non_finite({k: v for k, v in record.items() if not k.startswith("perf/")})
        if bad is not None:
            raise Diverged(bad)
        self.logger.log(step, record)
        self.last_record = {**record, "_step": step}
        if step >= TAIL_FRACTION * self.total:
            for k, v in record.items():
                self.tail.setdefault(k, []).append(float(v))

    def summary(self, status: str, *, counters: Mapping[str, Any], overrides: Sequence[str], **extra: Any) -> dict:
        """``summary.json``: the status, the run's ``counters`` (env steps, batches, wall time), the final record and
        the last-5% means."""
        final = {k: v for k, v in self.last_record.items() if not k.startswith("_")}
        return {
            "status": status,
            "env_steps": counters["env_steps"],
            "total_frames": self.total,
            "batches": counters["batches"],
            "wall_time": counters["wall_time"],
            "git_commit": git_commit(),
            "overrides": list(overrides),
            "final": final,
            "last_5pct": {k: float(np.mean(v)) for k, v in self.tail.items()},
            **extra,
        }

    def close(self, summary: Mapping[str, Any]) -> None:
        """Close the history and finish the W&B run with ``summary``."""
        if self.logger is not None:
            self.logger.close(summary)
