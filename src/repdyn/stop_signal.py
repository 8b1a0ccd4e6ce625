"""Stop signals during training: SIGTERM (Slurm requeue or preemption, ``kill``) and SIGUSR2 (submitit's pre-timeout
warning) make a run checkpoint and exit, then hand over to the handler that was there before (submitit's requeue).

Slurm follows a requeue's or preemption's SIGTERM with SIGKILL after the cluster's KillWait (10-30 s), shorter than a
long PPO batch, so the loop may declare a batch abandonable (it holds a copy of the batch's start state): a signal
then raises :class:`BatchAborted` at once and the loop writes that start state (README "Resume").
"""

from __future__ import annotations

import signal
import sys
import time
from typing import Any


class BatchAborted(Exception):
    """A stop signal arrived while the loop could abandon the batch under way (see :class:`StopRequest`)."""


class StopRequest:
    """Records SIGTERM/SIGUSR2 so the loop can checkpoint at a safe point, then hands over to the previous handler.

    While ``abortable`` (set by the loop with :meth:`arm` during a batch whose start state it holds), the signal
    raises :class:`BatchAborted` at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.received = 0.0  # time.time() of the signal
        self.abortable = False
        self.previous: dict[int, Any] = {}
        for s in (signal.SIGTERM, signal.SIGUSR2):
            self.previous[s] = signal.signal(s, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum, self.received = signum, time.time()
        self.arm(self.abortable)

    def arm(self, abortable: bool) -> None:
        """Allow (or forbid) abandoning the batch; a signal that came in meanwhile abandons it now."""
        self.abortable = abortable
        if abortable and self.signum is not None:
            self.abortable = False
            raise BatchAborted

    def hand_over(self) -> None:
        """After the checkpoint: call the previous handler (submitit requeues), then exit with 128 + signal."""
        prev = self.previous.get(self.signum)
        if callable(prev):  # e.g. submitit's handler: requeues the job and exits
            # submitit's handler runs `scontrol requeue`, and Slurm answers a requeue with SIGTERM to every process of
            # the job, that scontrol call included, which then fails the job ("died with SIGTERM") if the signal wins
            # the race. An ignored signal stays ignored across fork/exec, so scontrol finishes; the checkpoint is
            # already written, and Slurm's SIGKILL after KillWait still ends this process if it lingers.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            prev(self.signum, None)
        sys.exit(128 + int(self.signum))

    def restore(self) -> None:
        for s, h in self.previous.items():
            signal.signal(s, h)
