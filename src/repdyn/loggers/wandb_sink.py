"""W&B sink: mirrors the history records; never stops training or touches the local history when it fails.

Offline by default (``logger.mode=offline``): runs land in ``<run_dir>/wandb/`` and upload later with
``wandb sync <run_dir>/wandb/offline-run-*``. A resumed run reuses its W&B id (stored in the checkpoint), so a
requeued job continues the same W&B run.

Everything handed to W&B (config, name, group, tags, summary) is redacted first (:mod:`repdyn.loggers.secrets`): the
offline run is what ``wandb sync`` uploads.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Mapping
from typing import Any

from repdyn.loggers.secrets import redact, scrub

log = logging.getLogger(__name__)


class WandbSink:
    def __init__(
        self,
        run_dir: str,
        config: dict[str, Any],
        *,
        project: str,
        entity: str | None,
        group: str,
        name: str,
        tags: list[str],
        mode: str,
        run_id: str | None = None,
    ) -> None:
        self.run = None
        self.failures = 0
        self.run_id = run_id
        try:
            import wandb

            if mode == "online" and not (os.environ.get("WANDB_API_KEY") or _netrc_has_wandb()):
                raise RuntimeError("logger.mode=online but no WANDB_API_KEY / netrc credentials were found")
            self.run_id = run_id or uuid.uuid4().hex[:12]
            self.run = wandb.init(
                project=project,
                entity=entity,
                group=scrub(group),
                name=scrub(name),
                tags=redact(list(tags))[:64],
                config=redact(config),
                dir=run_dir,
                mode=mode,
                id=self.run_id,
                resume="allow",
                reinit="create_new",
                settings=wandb.Settings(init_timeout=60, silent=True, console="off"),
            )
        except Exception as e:  # W&B unavailable: report once, train on with the local history
            self._report(e)

    def _report(self, e: BaseException) -> None:
        self.failures += 1
        if self.failures == 1:
            log.warning("W&B sink disabled after an error (the local history is unaffected): %s", e)

    def log(self, step: int, record: Mapping[str, Any]) -> None:
        if self.run is None:
            return
        try:
            self.run.log(dict(record), step=step)
        except Exception as e:
            self._report(e)

    def finish(self, summary: Mapping[str, Any]) -> None:
        if self.run is None:
            return
        try:
            for k, v in redact(dict(summary)).items():
                if isinstance(v, (int, float, str, bool)):
                    self.run.summary[k] = v
            self.run.finish(exit_code=0 if summary.get("status") == "completed" else 1)
        except Exception as e:
            self._report(e)


def _netrc_has_wandb() -> bool:
    import netrc

    try:
        return any("wandb" in host for host in netrc.netrc().hosts)
    except (FileNotFoundError, netrc.NetrcParseError):
        return False
