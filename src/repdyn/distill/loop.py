"""One distillation run in a run dir: build (teacher, student, envs, replay) → fill the replay with the teacher's
data → train the student on the objective, logging records and checkpointing → summary.

The step axis of the history is the student's gradient steps. Step 0 holds the teacher's record (returns, ranks,
probes) beside the untrained student's. A checkpoint holds everything a resume needs (student, target, Adam, replay,
probe batch, collection env state and carried observation, RNG states, counters), so a run stopped by SIGTERM resumes
to exactly the history of an uninterrupted run.
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from repdyn import checkpoint as ckpt
from repdyn.distill import data
from repdyn.distill.evaluate import evaluate_returns
from repdyn.distill.measures import ProbeBatch, agreement_record, network_record, student_update_rank
from repdyn.distill.objectives import double_q_target, objective_loss
from repdyn.distill.student import build_optimizer, build_student, student_kind
from repdyn.distill.teacher import act_fn, load_teacher
from repdyn.paths import CHECKPOINT_DIR
from repdyn.record_sinks import RecordSinks, git_commit
from repdyn.stop_signal import StopRequest

log = logging.getLogger("repdyn.distill")


def every(total: int, fraction: float) -> int:
    """Steps between two events of a cadence given as a fraction of ``total`` (at least 1)."""
    return max(1, round(total * fraction))


class Distillation:
    """``build()``, then ``load_state_dict()`` or ``start()``, ``open_sinks()``, ``train()``, ``summary()``."""

    def __init__(self, cfg: DictConfig, teacher_cfg: DictConfig, run_dir: Path, overrides: list[str]) -> None:
        self.cfg, self.teacher_cfg, self.run_dir, self.overrides = cfg, teacher_cfg, run_dir, overrides
        # plain values: an OmegaConf lookup costs ~0.1 ms, and a gradient step makes a dozen (measured 17% of a step)
        self.d = SimpleNamespace(**OmegaConf.to_container(cfg.distill))
        self.objective = str(cfg.objective)
        self.gamma = float(teacher_cfg.agent.gamma)
        d = self.d
        self.total = int(d.steps)
        self.cadence = {k: every(self.total, getattr(d, f"{k}_every")) for k in ("log", "eval", "checkpoint")}
        self.kind = student_kind(cfg.objective)
        self.variations = {k: dict(v) for k, v in cfg.env.variations.items()}
        self.step = 0
        self.losses: list[float] = []
        self.data_record: dict[str, float] = {}
        # history + W&B, and what the summary and a resume need of the records (last one, last 5%, W&B run id)
        self.sinks = RecordSinks(run_dir, self.total)
        self.wall_start, self.wall_before = time.time(), 0.0
        self.interrupted = False
        self.probe: ProbeBatch | None = None
        self.probe_gen = torch.Generator().manual_seed(int(cfg.seed) + 1)

    # --- build ---------------------------------------------------------------------------------------------
    def build(self) -> None:
        from repdyn.envs.make import make_env
        from repdyn.lean_collector import LeanCollector

        cfg, d = self.cfg, self.cfg.distill
        torch.set_num_threads(int(d.threads))
        np.random.seed(int(cfg.seed))
        torch.manual_seed(int(cfg.seed))
        self.teacher = load_teacher(cfg.teacher, self.teacher_cfg)
        model_cfg = cfg.model if cfg.model is not None else self.teacher_cfg.model
        t = self.teacher
        self.student = build_student(model_cfg, t.obs_shape, t.n_actions, self.kind, int(cfg.seed))
        self.target = copy.deepcopy(self.student).requires_grad_(False)  # double_q's target network
        self.optimizer = build_optimizer(self.student, float(d.lr))
        self.env = make_env(self.teacher_cfg.env, int(cfg.seed), num_envs=int(cfg.env.num_envs))
        self.collector = LeanCollector(self.env, act_fn(t.net, t.kind, float(d.teacher_eps)), int(cfg.env.num_envs))
        self.buffer = data.make_buffer(int(d.buffer_size), int(d.minibatch_size))

    def start(self) -> None:
        """A fresh run: fill the replay with the teacher's data and fix the probe batch."""
        self.data_record = data.collect(self.collector, self.buffer, int(self.cfg.distill.collect_frames))
        states = data.probe_states(self.buffer, int(self.cfg.probes.states), self.probe_gen)
        self.probe = ProbeBatch.of(states, self.probe_gen)

    # --- checkpoint -----------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        from repdyn.collection import collector_state
        from repdyn.envs.state import get_env_state

        return {
            "student": self.student.state_dict(),
            "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "replay": self.buffer.state_dict(),
            "probe": self.probe.state_dict(),
            "counters": {
                "step": self.step,
                "losses": list(self.losses),
                "data_record": dict(self.data_record),
                "probe_gen": self.probe_gen.get_state(),
                "last_record": dict(self.sinks.last_record),
                "tail": {k: list(v) for k, v in self.sinks.tail.items()},
                "wall_time": self.wall_time(),
            },
            "rng": ckpt.rng_state(),
            "env_sim": get_env_state(self.env),
            "carrier": collector_state(self.collector),
            "wandb_id": self.sinks.wandb_id,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from repdyn.collection import load_collector_state
        from repdyn.envs.state import set_env_state

        self.student.load_state_dict(state["student"])
        self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.buffer.load_state_dict(state["replay"])
        self.probe = ProbeBatch.from_state(state["probe"])
        c = state["counters"]
        self.step, self.losses, self.data_record = c["step"], c["losses"], c["data_record"]
        self.probe_gen.set_state(c["probe_gen"])
        self.sinks.last_record, self.sinks.tail, self.wall_before = c["last_record"], c["tail"], c["wall_time"]
        exact = set_env_state(self.env, state["env_sim"])
        if not exact:  # ALE: the simulator is not captured; re-seed deterministically from (seed, step), as train does
            self.env.set_seed(int(self.cfg.seed) + self.step)
        load_collector_state(self.collector, state["carrier"] if exact else None)
        ckpt.set_rng_state(state["rng"])
        self.sinks.wandb_id = state["wandb_id"]

    def save_checkpoint(self, keep: bool) -> None:
        ckpt.save(self.run_dir / CHECKPOINT_DIR, self.state_dict(), keep_step=self.step if keep else None)

    def wall_time(self) -> float:
        return self.wall_before + time.time() - self.wall_start

    # --- optimisation ---------------------------------------------------------------------------------------
    def _double_q_targets(self, mb: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            nxt = mb["next_observation"]
            q_online, q_target = self.student(nxt)[0], self.target(nxt)[0]
        return double_q_target(mb["reward"], mb["terminated"], q_online, q_target, self.gamma)

    def _teacher_out(self, obs: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        # double_q learns from the teacher's transitions alone: no teacher outputs (a placeholder of the same shape)
        return like.detach() if self.objective == "double_q" else self.teacher.outputs(obs)

    def loss(self, mb: dict[str, torch.Tensor]) -> torch.Tensor:
        """The objective on one minibatch of teacher transitions."""
        out = self.student(mb["observation"])[0]
        y = self._double_q_targets(mb) if self.objective == "double_q" else None
        teacher_out = self._teacher_out(mb["observation"], out)
        return objective_loss(self.objective, out, teacher_out, mb, entropy_coef=self.d.entropy_coef, double_q_y=y)

    def gradient_step(self) -> None:
        d = self.d
        loss = self.loss(data.minibatch_tensors(self.buffer.sample()))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.student.parameters(), d.max_grad_norm, foreach=True)
        self.optimizer.step()
        self.step += 1
        self.losses.append(float(loss.detach()))
        if self.objective == "double_q" and self.step % d.target_update_interval == 0:
            self.target.load_state_dict(self.student.state_dict())
        if d.online and self.step % int(d.online_every) == 0:
            self.data_record.update(data.collect(self.collector, self.buffer, d.online_frames))

    # --- records --------------------------------------------------------------------------------------------
    def _returns(self, net: torch.nn.Module, kind: str, prefix: str) -> dict[str, float]:
        d = self.cfg.distill
        eps = float(d.eval_eps) if kind == "q" else 0.0  # policies are evaluated by sampling
        seed = int(self.cfg.seed) + 100_000  # the same start states and draws at every evaluation
        return evaluate_returns(
            self.teacher_cfg.env,
            act_fn(net, kind, eps, torch.Generator().manual_seed(seed)),
            self.variations,
            episodes=int(d.eval_episodes),
            seed=seed,
            max_steps=int(d.eval_max_steps),
            prefix=prefix,
        )

    def _network_record(self, net: torch.nn.Module, prefix: str) -> dict[str, float]:
        p = self.cfg.probes
        scales, ts = list(p.noise_scales), list(p.interp_t)
        return network_record(prefix, net, self.probe, scales, ts, float(p.rank_delta), int(self.cfg.seed) + 2)

    def _update_rank(self) -> dict[str, float]:
        p = self.cfg.probes
        samples = data.sample_transitions(self.buffer, int(p.update_rank_k), self.probe_gen)
        with torch.no_grad():
            out = self.student(samples["observation"])[0]
            samples["teacher_out"] = self._teacher_out(samples["observation"], out)
            double = self.cfg.objective == "double_q"
            samples["target"] = self._double_q_targets(samples) if double else torch.zeros(out.shape[0])
        rank = student_update_rank(
            self.student,
            self.optimizer,
            self.cfg.objective,
            samples,
            self.probe.states[: int(p.update_rank_probe)],
            output="q_max" if self.kind == "q" else "policy",
            entropy_coef=float(self.cfg.distill.entropy_coef),
        )
        return {"update_rank/student/rank": rank}

    def teacher_record(self) -> dict[str, float]:
        t = self.teacher
        return {**self._returns(t.net, t.kind, "eval/teacher"), **self._network_record(t.net, "teacher")}

    def student_record(self) -> dict[str, float]:
        rec = {
            **self._returns(self.student, self.kind, "eval/student"),
            **self._network_record(self.student, "student"),
        }
        if self.cfg.probes.update_rank:
            rec.update(self._update_rank())
        return rec

    def record(self) -> dict[str, Any]:
        """The record due at this step: training scalars always, evaluations at their cadence, the teacher at the
        start and the end."""
        rec: dict[str, Any] = {"distill/replay_size": float(len(self.buffer))}
        if self.losses:
            rec["distill/loss"] = float(np.mean(self.losses))
            self.losses = []
        rec.update(agreement_record(self.student, self.teacher.net, self.probe.states))
        rec.update(self.data_record)
        self.data_record = {}
        end = self.step == self.total
        if self.step % self.cadence["eval"] == 0 or end:
            rec.update(self.student_record())
        if self.step == 0 or end:
            rec.update(self.teacher_record())
            if "eval/student/return" in rec:
                rec["eval/return_gap"] = rec["eval/teacher/return"] - rec["eval/student/return"]
        rec["perf/wall_time"] = self.wall_time()
        return rec

    # --- logging --------------------------------------------------------------------------------------------
    def open_sinks(self, resumed: bool) -> None:
        """The local history (truncated to the checkpoint's last record on resume) and the W&B mirror, as
        ``repdyn.train`` opens them (:class:`repdyn.record_sinks.RecordSinks`)."""
        from repdyn.config import to_container
        from repdyn.loggers.logger import redact

        config = redact(to_container(self.cfg))
        lc = self.cfg.logger
        self.sinks.open(resumed, logger_cfg=lc, run_name=str(self.cfg.name), config=config, overrides=self.overrides)

    def _log(self, record: dict[str, Any]) -> None:
        """Write ``record`` at this gradient step (Diverged on a non-finite value, ``perf/*`` aside)."""
        self.sinks.log(self.step, record)

    # --- loop -----------------------------------------------------------------------------------------------
    def train(self, stop: StopRequest) -> None:
        """Gradient steps to ``distill.steps``; SIGTERM/SIGUSR2 (or ``debug.stop_after_steps``) checkpoint at the
        end of the step under way (a step is milliseconds) and return with ``interrupted`` set."""
        from repdyn.progress import progress_bar

        stop_after = self.cfg.debug.stop_after_steps
        bar = progress_bar(total=self.total, initial=self.step, unit="step", enabled=self.cfg.distill.progress)
        if not self.sinks.last_record:  # step 0: the teacher and the untrained student
            self._log(self.record())
        while self.step < self.total:
            self.gradient_step()
            if self.step % self.cadence["log"] == 0 or self.step == self.total:
                self._log(self.record())
            bar.update(1)
            keep = self.step % self.cadence["checkpoint"] == 0
            planted = stop_after is not None and self.step >= stop_after
            if keep or stop.signum is not None or planted:
                self.save_checkpoint(keep=keep)
                if stop.signum is not None or planted:
                    self.interrupted = True
                    bar.close()
                    return
        bar.close()
        self.save_checkpoint(keep=True)

    def summary(self, status: str, **extra: Any) -> dict[str, Any]:
        return {
            "status": status,
            "steps": self.step,
            "env_steps": self.step,  # the step axis, under the key the sweep tools read
            "total_steps": self.total,
            "teacher": str(self.cfg.teacher),
            "objective": str(self.cfg.objective),
            "wall_time": self.wall_time(),
            "git_commit": git_commit(),
            "overrides": self.overrides,
            "final": {k: v for k, v in self.sinks.last_record.items() if not k.startswith("_")},
            "last_5pct": {k: float(np.mean(v)) for k, v in self.sinks.tail.items()},
            **extra,
        }
