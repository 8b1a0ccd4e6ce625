"""Capacity-loss probe (docs/metrics.md#capacity-loss; Moalla et al. 2024 §2, App. B.2), in training and offline.

The per-run state of the ``capacity`` entry of :data:`repdyn.metrics.registry.REGISTRY` (its ``setup``).

Per run, once: a target agent with the agent's architecture, freshly initialised from a seed-derived generator, and a
dataset of observations from rolling out the *target's* policy (``env.capacity_samples`` agent steps over
``env.capacity_num_envs`` envs; observations normalised with the run's frozen obs-norm stats). Both are saved to
``<run_dir>/capacity_target.pt`` so a resumed run and the offline CLI use the very same target and data.
At each probe, every network the agent exposes (actor: forward KL, critic: L2) is copied and fitted with a fresh
optimizer of the training settings (:func:`repdyn.metrics.capacity.fit_to_target`); the loss at the end of the budget
is logged as ``capacity/<net>/loss``. Probes run inside ``torch.random.fork_rng`` so they never change training.

Offline: ``python -m repdyn.capacity run_dir=<dir>`` (a thin entry point calling :func:`main`) probes every
``checkpoints/step_*.pt`` and merges the results into the run's ``history.jsonl`` at the checkpoints' steps.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from repdyn.metrics.capacity import fit_to_target
from repdyn.paths import CHECKPOINT_DIR, CONFIG_FILE, HISTORY_FILE

TARGET_FILE = "capacity_target.pt"
_TARGET_SEED_OFFSET = 7919  # target init / dataset rollout seeds are derived from the run seed, never equal to it


@dataclass(frozen=True)
class FitOptimizer:
    """The training optimizer settings each fit uses: the agent section's (the probe measures how well the network
    can still be trained the way it is trained)."""

    minibatch_size: int
    lr: float
    betas: tuple[float, float]
    eps: float
    max_grad_norm: float

    @classmethod
    def of(cls, agent_cfg: Any) -> FitOptimizer:
        """The settings of an ``agent`` config section (PPO or DQN)."""
        return cls(
            minibatch_size=int(agent_cfg.minibatch_size),
            lr=float(agent_cfg.lr),
            betas=(float(agent_cfg.betas[0]), float(agent_cfg.betas[1])),
            eps=float(agent_cfg.adam_eps),
            max_grad_norm=float(agent_cfg.max_grad_norm),
        )


class CapacityProbe:
    """The target agent and its dataset of one run, built once (or loaded from ``<run_dir>/capacity_target.pt``).

    Reads its own ``metrics`` section (``capacity_samples``, ``capacity_epochs``) with the ``env`` section's family
    defaults, and the env section to roll out the target; everything else is explicit: the run ``seed``, the training
    ``optimizer`` settings and ``build_target``, a factory of a fresh agent of the run's architecture (called once,
    under the probe's seed). :meth:`of_run` maps a run config to these arguments."""

    def __init__(
        self,
        mcfg: Any,
        env_cfg: Any,
        run_dir: str | Path,
        env: Any,
        *,
        seed: int,
        optimizer: FitOptimizer,
        build_target: Callable[[], Any],
    ) -> None:
        self.env_cfg, self.seed, self.optimizer = env_cfg, int(seed), optimizer
        self.samples = int(mcfg.capacity_samples or env_cfg.capacity_samples)
        self.epochs = int(mcfg.capacity_epochs or env_cfg.capacity_epochs)
        path = Path(run_dir) / TARGET_FILE
        with torch.random.fork_rng():
            torch.manual_seed(self.seed + _TARGET_SEED_OFFSET)
            self.target = build_target()
            if path.exists():
                saved = torch.load(path, weights_only=False)
                for name, sd in saved["networks"].items():
                    self.target.networks[name].load_state_dict(sd)
                self.obs = saved["obs"]
            else:
                self.obs = self._collect(env)
                nets = {k: m.state_dict() for k, m in self.target.networks.items()}
                torch.save({"networks": nets, "obs": self.obs}, path)

    @classmethod
    def of_run(cls, cfg: DictConfig, run_dir: str | Path, env: Any) -> CapacityProbe:
        """The probe of a composed run config (the registry entry's ``setup``, the offline CLI, the benchmark): the
        one place that maps the root config to the probe's sections and explicit values."""
        from repdyn.agents import build_agent

        return cls(
            cfg.metrics,
            cfg.env,
            run_dir,
            env,
            seed=cfg.seed,
            optimizer=FitOptimizer.of(cfg.agent),
            build_target=lambda: build_agent(cfg, env),
        )

    @torch.no_grad()
    def _collect(self, train_env: Any) -> torch.Tensor:
        """Roll out the target's policy; the obs-norm transform state is copied from the training env."""
        from repdyn.envs.make import make_env
        from repdyn.envs.obs_norm import add_frozen_obs_norm

        e = self.env_cfg
        env = make_env(e, self.seed + _TARGET_SEED_OFFSET, num_envs=e.capacity_num_envs)
        if e.obs_norm:
            add_frozen_obs_norm(env, 1)  # placeholder stats, overwritten by the training env's frozen ones
            env.transform.load_state_dict(train_env.transform.state_dict())
            env.reset()
        steps = max(1, self.samples // e.capacity_num_envs)
        rollout = env.rollout(steps, policy=self.target.policy, break_when_any_done=False)
        env.close()
        obs = rollout["observation"]
        return obs.reshape(-1, *obs.shape[2:]).clone()

    def probe(self, agent: Any, step: int) -> dict[str, float]:
        """Fit a copy of each of ``agent``'s networks to the target's; returns ``capacity/<net>/loss``.

        The minibatch order is seeded by (run seed, ``step``, network), so the offline CLI reproduces in-training
        values."""
        opt = self.optimizer
        out = {}
        with torch.random.fork_rng():
            for i, (name, kind) in enumerate(agent.capacity_kinds().items()):
                gen = torch.Generator().manual_seed(hash((self.seed, int(step), i)) % (2**63))
                out[f"capacity/{name}/loss"] = fit_to_target(
                    agent.networks[name],
                    self.target.networks[name],
                    self.obs,
                    kind=kind,
                    epochs=self.epochs,
                    minibatch_size=opt.minibatch_size,
                    lr=opt.lr,
                    betas=opt.betas,
                    eps=opt.eps,
                    max_grad_norm=opt.max_grad_norm,
                    generator=gen,
                )
        return out


def _step_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    files = sorted((run_dir / CHECKPOINT_DIR).glob("step_*.pt"))
    return [(int(p.stem.split("_")[1]), p) for p in files]


def probe_run_dir(run_dir: str | Path) -> dict[int, dict[str, float]]:
    """Offline: probe every saved ``step_*.pt`` of a run and merge ``capacity/*`` into its history."""
    from repdyn.agents import build_agent
    from repdyn.envs.make import make_env
    from repdyn.envs.obs_norm import add_frozen_obs_norm
    from repdyn.loggers.history import merge_records
    from repdyn.progress import progress_bar

    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).exists():
        raise FileNotFoundError(f"{run_dir} is not a repdyn run dir (no {CONFIG_FILE})")
    ckpts = _step_checkpoints(run_dir)
    if not ckpts:
        raise FileNotFoundError(f"no checkpoints/step_*.pt in {run_dir}")
    cfg = OmegaConf.load(run_dir / CONFIG_FILE)
    env = make_env(cfg.env, cfg.seed)
    if cfg.env.obs_norm:
        add_frozen_obs_norm(env, 1)
        last = torch.load(run_dir / CHECKPOINT_DIR / "last.pt", weights_only=False)
        env.transform.load_state_dict(last["env_transform"])
    agent = build_agent(cfg, env)
    probe = CapacityProbe.of_run(cfg, run_dir, env)
    results = {}
    for step, path in progress_bar(ckpts, desc="capacity probes"):
        state = torch.load(path, weights_only=False)
        agent.load_state_dict(state["agent"])
        results[step] = probe.probe(agent, step)
    merge_records(run_dir / HISTORY_FILE, results)
    return results


def main(argv: list[str] | None = None) -> None:
    """``python -m repdyn.capacity run_dir=<dir>``: probe a finished run's checkpoints and print the values."""
    args = dict(a.split("=", 1) for a in (sys.argv[1:] if argv is None else argv) if "=" in a)
    if "run_dir" not in args:
        sys.exit("usage: python -m repdyn.capacity run_dir=<path to a repdyn run dir>")
    try:
        results = probe_run_dir(args["run_dir"])
    except FileNotFoundError as e:
        sys.exit(f"repdyn.capacity: {e}")
    for step, rec in results.items():
        print(step, " ".join(f"{k}={v:.5g}" for k, v in rec.items()))
