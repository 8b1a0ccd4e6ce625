"""Auxiliary-task interventions (Lyle et al. 2021, arXiv:2102.13089) on tiny real runs: each runs on DQN (Acrobot) and
PPO (CartPole) and logs a documented ``loss/aux_*``, a run interrupted and resumed in the same dir (heads, random
cumulant network, head optimizers) equals the uninterrupted run, and bad values exit 2 naming the key."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from repdyn.config import validate
from repdyn.train import run
from tests.conftest import history, run_cli, strip_perf, summary
from tests.integration.test_scheduled_metrics import METRICS_DOC, documented_patterns, undocumented

AUX = ["aux_random_cumulants", "aux_ensemble", "aux_multi_gamma"]
COMMON = ["logger=none", "metrics=none", "train.progress=false"]
DQN = ["env=classic/acrobot", "agent=dqn", "model.activation=relu", "env.num_envs=1", "env.frames_per_env=8"]
DQN += ["train.total_frames=128", "train.log_every=0.25", "agent.learning_starts=32", "agent.minibatch_size=16"]
PPO = ["env=classic/cartpole", "agent.epochs=1", f"train.total_frames={3 * 512}"]  # 3 batches of 2 × 256
AGENTS = {"dqn": (DQN, 8), "ppo": (PPO, 2)}  # overrides, batches before the interruption (of 16 and 3)


def _run(compose, run_dir: Path, overrides: list[str], status: str = "completed") -> list[dict]:
    cfg = compose([*COMMON, *overrides])
    validate(cfg)
    assert run(cfg, run_dir) == status, summary(run_dir).get("error")
    return history(run_dir)


@pytest.mark.parametrize("agent", sorted(AGENTS))
@pytest.mark.parametrize("name", AUX)
def test_each_aux_task_runs_and_logs_a_documented_loss(compose, tmp_path, agent, name):
    recs = _run(compose, tmp_path / "run", [*AGENTS[agent][0], f"intervention=[{name}]"])
    losses = [r[f"loss/{name}"] for r in recs if f"loss/{name}" in r]
    assert losses and all(math.isfinite(v) and v > 0 for v in losses)
    if agent == "ppo":  # the heads' own optimizer is stepped and clipped with the others
        assert recs[-1][f"opt/{name}/grad_norm"] > 0
    keys = set().union(*recs)
    assert undocumented(keys, documented_patterns(METRICS_DOC.read_text(encoding="utf-8"))) == []


@pytest.mark.parametrize("agent", sorted(AGENTS))
def test_resume_with_aux_heads_is_exact(compose, tmp_path, agent):
    """All three tasks (and InFeR) at once: interrupted after some batches and resumed in the same run dir, the
    history (perf/* aside) equals the uninterrupted run's, aux losses included."""
    overrides, stop = AGENTS[agent]
    overrides = [*overrides, f"intervention=[{','.join(AUX)},infer]"]
    straight = _run(compose, tmp_path / "straight", overrides)
    _run(compose, tmp_path / "resumed", [*overrides, f"debug.stop_after_batches={stop}"], status="interrupted")
    assert len(history(tmp_path / "resumed")) < len(straight)
    resumed = _run(compose, tmp_path / "resumed", overrides)
    assert all(f"loss/{n}" in straight[-1] for n in [*AUX, "infer"])
    assert strip_perf(resumed) == strip_perf(straight)


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (["agent=dqn", "intervention=[aux_multi_gamma]", "intervention.aux_multi_gamma.gammas=[]"], "aux_multi_gamma"),
        (["agent=dqn", "intervention=[aux_ensemble]", "intervention.aux_ensemble.networks=[critic]"], "aux_ensemble"),
    ],
)
def test_bad_aux_config_exits_2_naming_the_key(tmp_path, args, key):
    proc = run_cli("env=classic/acrobot", "logger=none", *args, f"hydra.run.dir={tmp_path / 'run'}", timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"intervention.{key}" in proc.stderr + proc.stdout
    assert not (tmp_path / "run" / "history.jsonl").exists()
