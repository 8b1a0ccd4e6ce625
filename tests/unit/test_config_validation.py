"""Config gaps of issue "Reliability" item 5: each bad value fails the pre-run check (what the CLI runs before Hydra
creates the run dir) with one ConfigError naming the key, and no run dir appears. In-process, nothing trains."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from repdyn.config import ConfigError, round_budget, validate
from repdyn.preflight import check_job, overrides_of

CARTPOLE = ["env=classic/cartpole", "logger=none"]

CASES = [
    (["agent.adam_eps=-1"], "agent.adam_eps"),
    (["agent=dqn", "agent.adam_eps=0"], "agent.adam_eps"),
    (["seed=4294967296"], "seed"),  # numpy's seed range
    (["env=atari/phoenix", "seed=2147483000"], "seed"),  # ale-py seeds are 32-bit C ints
    (["env.capacity_num_envs=0"], "env.capacity_num_envs"),
    (["env.capacity_samples=0"], "env.capacity_samples"),
    (["env.id=Blackjack-v1"], "env.id"),  # tuple observations
    (["env=atari/phoenix", "env.id=ALE/Nonexistent-v5"], "env.id"),
    (["env=atari/phoenix", "env.atari.frameskip=0"], "env.atari.frameskip"),
    (["env=atari/phoenix", "+env.atari.frame_skip=4"], "env.atari.frame_skip"),
    (["model.hidden=[1000000,1000000]"], "model.hidden"),  # ~1e12 parameters: more than any RAM
    (["agent.lr=inf"], "agent.lr"),
    (["agent.entropy_coef=nan"], "agent.entropy_coef"),
    (["agent.entropy_coef=-0.01"], "agent.entropy_coef"),
    (["agent.value_coef=-1"], "agent.value_coef"),
    (["intervention=[icm]", "intervention.icm.beta=-1"], "intervention.icm"),
    (["env.max_episode_steps=-1"], "env.max_episode_steps"),
    (["agent=dqn", "train.total_frames=1000", "agent.learning_starts=1024"], "agent.learning_starts"),
    (["intervention=[pfo,pfo]"], "intervention"),
    (["+agent.foo=1"], "agent.foo"),
    (["+foo=1"], "foo"),
    (["+metrics.foo=1"], "metrics.foo"),
    (["agent.lr=???"], "agent.lr"),
    (["+intervention.pfo.coef=1"], "intervention.pfo.coef"),  # would switch pfo on behind intervention=[]
    (["agent.lr=${nonexistent}"], "agent.lr"),
    (["name=../../x"], "name"),
    (["name=/etc"], "name"),
    (["+logger.api_key=abc"], "logger.api_key"),
    (["+hydra.job.env_set.WANDB_API_KEY=abc"], "hydra.job.env_set.WANDB_API_KEY"),
    (["device=cuda:7"], "device"),
]


@pytest.mark.parametrize(("overrides", "key"), CASES, ids=[" ".join(o) for o, _ in CASES])
def test_bad_value_fails_before_the_run_dir_exists(compose_hydra, tmp_path, overrides, key):
    if overrides == ["device=cuda:7"] and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 CUDA devices")
    run_dir = tmp_path / "run"
    cfg = compose_hydra([*CARTPOLE, *overrides, f"hydra.run.dir={run_dir}"])
    with pytest.raises(ConfigError) as err:
        check_job(cfg, Path(cfg.hydra.run.dir))
    assert str(err.value).startswith(f"{key}: "), str(err.value)
    assert "\n" not in str(err.value)  # one message
    assert not run_dir.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_refused(compose_hydra, tmp_path):
    cfg = compose_hydra([*CARTPOLE, "device=cuda", f"hydra.run.dir={tmp_path / 'run'}"])
    with pytest.raises(ConfigError, match="^device: 'cuda' but CUDA is not available"):
        check_job(cfg, tmp_path / "run")


def test_secret_in_the_run_dir_path_is_refused(compose_hydra, tmp_path, monkeypatch):
    """``name`` may carry a secret into config values (redacted there), but not into a path."""
    monkeypatch.setenv("WANDB_API_KEY", "plantedsecret0123456789")
    cfg = compose_hydra([*CARTPOLE, "name=${oc.env:WANDB_API_KEY}", f"hydra.run.dir={tmp_path}/${{name}}"])
    with pytest.raises(ConfigError, match=r"^name: the run dir path would hold the value of \$WANDB_API_KEY"):
        check_job(cfg, Path(cfg.hydra.run.dir))
    cfg = compose_hydra([*CARTPOLE, "name=${oc.env:WANDB_API_KEY}", f"hydra.run.dir={tmp_path / 'run'}"])
    check_job(cfg, Path(cfg.hydra.run.dir))  # fine: the value is redacted wherever it is written
    literal = compose_hydra([*CARTPOLE, "logger.tags=[plantedsecret0123456789]"])
    with pytest.raises(ConfigError, match=r"^logger.tags: the override holds the value of \$WANDB_API_KEY"):
        validate(literal, overrides_of(literal))


def test_budget_is_rounded_up_to_whole_batches_with_a_warning(compose_hydra):
    cfg = compose_hydra([*CARTPOLE, "train.total_frames=1000"])  # batch: 2 envs × 256 steps
    check_job(cfg, Path("unused"))  # not an error
    note = round_budget(cfg)
    assert note is not None and "train.total_frames=1000" in note and "the run trains 1024 env steps" in note
    assert cfg.train.total_frames == 1024 and round_budget(cfg) is None


def test_agent_networks_are_built_on_the_configured_device(compose):
    """``device`` is read where the agent is built: its networks are created there (meta: no memory, any machine)."""
    from repdyn.agents import build_agent
    from repdyn.envs.make import make_env

    cfg = compose([*CARTPOLE, "env.num_envs=1"])
    env = make_env(cfg.env, 0)
    try:
        cfg.device = "meta"
        agent = build_agent(cfg, env)
        assert {p.device.type for net in agent.networks.values() for p in net.parameters()} == {"meta"}
    finally:
        env.close()
