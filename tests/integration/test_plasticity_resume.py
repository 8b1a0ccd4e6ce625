"""The plasticity remedies on tiny real runs (PPO CartPole, DQN Acrobot): each resumes exactly from a checkpoint
(stored θ₀, generators, env-step counters and the injected heads included), each changes training, and bad settings
end the CLI with exit 2 naming the key."""

from __future__ import annotations

import pytest

from repdyn.config import validate
from repdyn.train import run
from tests.conftest import history, run_cli, strip_perf

PPO = ["env=classic/cartpole", "agent.epochs=1", "train.total_frames=2048"]  # 4 batches of 2 × 256
DQN = ["env=classic/acrobot", "agent=dqn", "env.num_envs=1", "env.frames_per_env=8", "train.total_frames=640"]
DQN += ["agent.learning_starts=64", "agent.minibatch_size=16", "agent.replay_ratio=0.25", "train.log_every=0.25"]
COMMON = ["logger=none", "metrics=none", "train.progress=false", "model.activation=relu"]
# Layer-level remedies together; periods put applications before and after the interruption (batch 2 of 4 for
# PPO, batch 40 of 80 for DQN): ReDo every batch or 64 steps, a reset before, S&P after the resume.
LAYERWISE = {
    "ppo": ["intervention=[redo,shrink_perturb,reset_layers,l2_init]", "intervention.redo.period=512"]
    + ["intervention.shrink_perturb.period=1536", "intervention.reset_layers.period=1024"],
    "dqn": ["intervention=[redo,shrink_perturb,reset_layers,l2_init]", "intervention.redo.period=64"]
    + ["intervention.shrink_perturb.period=480", "intervention.reset_layers.period=256"],
}
# The injected head under InFeR's and L2 Init's losses (InFeR's frozen copy holds the idle heads too).
INJECTION = ["intervention=[plasticity_injection,l2_init,infer]", "intervention.plasticity_injection.at=0.3"]
STOP = {"ppo": 2, "dqn": 40}


@pytest.mark.parametrize("agent", ["ppo", "dqn"])
@pytest.mark.parametrize("arm", ["layerwise", "injection"])
def test_remedies_resume_exactly_and_change_training(compose, tmp_path, agent, arm):
    base = [*(PPO if agent == "ppo" else DQN), *COMMON]
    ivs = LAYERWISE[agent] if arm == "layerwise" else INJECTION

    def cfg(*extra: str):
        c = compose([*base, *extra])
        validate(c)
        return c

    assert run(cfg(*ivs), tmp_path / "straight") == "completed"
    assert run(cfg(*ivs, f"debug.stop_after_batches={STOP[agent]}"), tmp_path / "resumed") == "interrupted"
    assert run(cfg(*ivs), tmp_path / "resumed") == "completed"
    assert run(cfg(), tmp_path / "plain") == "completed"
    straight, resumed = strip_perf(history(tmp_path / "straight")), strip_perf(history(tmp_path / "resumed"))
    assert straight == resumed
    plain = strip_perf(history(tmp_path / "plain"))
    assert straight[-1]["step"] == plain[-1]["step"]
    loss = "loss/policy" if agent == "ppo" else "loss/td"
    assert [r[loss] for r in straight if loss in r] != [r[loss] for r in plain if loss in r]
    assert straight[-1]["loss/l2_init"] > 0
    if arm == "injection":
        assert straight[-1]["loss/infer"] > 0


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["intervention=[redo]", "intervention.redo.period=0"], "intervention.redo: period must be ≥ 1"),
        (["intervention=[redo,shared_trunk]"], "intervention.redo: cannot be combined with shared_trunk"),
        (["model.activation=crelu", "model.hidden=[5]"], "model.hidden: crelu needs even widths"),
    ],
)
def test_incompatible_settings_exit_2_naming_the_key(tmp_path, args, needle):
    proc = run_cli("env=classic/cartpole", "logger=none", *args, f"hydra.run.dir={tmp_path / 'run'}", timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert needle in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
