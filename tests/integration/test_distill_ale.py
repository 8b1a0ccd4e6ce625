"""``python -m repdyn.distill`` with an ALE teacher: held-out game modes/difficulties (``env.variations``) that the
teacher's game does not offer are refused with exit 2 naming the key, before the run dir exists."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from repdyn.paths import CHECKPOINT_DIR, CONFIG_FILE
from tests.integration.test_distill import TINY, distill_cli


@pytest.fixture(scope="module")
def ale_teacher(tmp_path_factory) -> Path:
    """A NameThisGame DQN teacher run dir: the resolved config of ``env=atari/namethisgame agent=dqn_atari`` and an
    empty checkpoint file. Enough here: the checks refuse before any checkpoint is read (training a CNN teacher
    would only add minutes)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from repdyn.config import register_configs
    from repdyn.paths import CONF_DIR

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["env=atari/namethisgame", "agent=dqn_atari", "logger=none"])
    GlobalHydra.instance().clear()
    run_dir = tmp_path_factory.mktemp("ale_teacher")
    OmegaConf.save(OmegaConf.create(OmegaConf.to_container(cfg, resolve=True)), run_dir / CONFIG_FILE)
    (run_dir / CHECKPOINT_DIR).mkdir()
    (run_dir / CHECKPOINT_DIR / "last.pt").touch()
    return run_dir


# (override, the message after "config error: "); every message is unit-tested in tests/unit/test_distill_config.py
REFUSED = [
    ("+env.variations.hard.mode=7", "env.variations.hard.mode: NameThisGame has modes [8, 24, 40], got 7"),
    ("+env.variations.fast.speed=2", "env.variations.fast.speed: an ALE variation sets only mode and difficulty"),
]


@pytest.mark.parametrize(("override", "message"), REFUSED, ids=[o.split(".", 2)[2] for o, _ in REFUSED])
def test_unavailable_modes_and_difficulties_are_refused_naming_the_key(tmp_path, ale_teacher, override, message):
    run_dir = tmp_path / "run"
    proc = distill_cli(*TINY, override, f"teacher={ale_teacher}", "objective=q_regression", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"config error: {message}" in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not run_dir.exists()
