"""No secret reaches the run dir (issue "Reliability" item 4): not in config.yaml, summary.json, Hydra's .hydra/*.yaml,
the job log or the offline W&B run that `wandb sync` would upload (its config, name, group, tags)."""

from __future__ import annotations

import secrets
from pathlib import Path

from tests.conftest import run_cli

TINY = ["env=classic/cartpole", "metrics=none", "train.total_frames=300", "agent.epochs=1"]


def _files_holding(root: Path, needle: str) -> list[str]:
    """Paths under ``root`` whose name or bytes contain ``needle``."""
    paths = [p for p in root.rglob("*") if needle in str(p.relative_to(root))]
    paths += [p for p in root.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]
    return [str(p.relative_to(root)) for p in paths]


def test_secret_from_the_environment_is_written_nowhere(tmp_path):
    """A key planted in WANDB_API_KEY and pulled into the config by interpolation (name, group, tags) is redacted in
    every file of the run dir, W&B offline run included."""
    planted = "plantedsecret" + secrets.token_hex(12)
    run_dir = tmp_path / "run"
    proc = run_cli(
        *TINY,
        "logger=wandb",
        "logger.mode=offline",
        "name=${oc.env:WANDB_API_KEY}",
        "logger.group=g-${oc.env:WANDB_API_KEY}",
        "logger.tags=[t,${oc.env:WANDB_API_KEY}]",
        f"hydra.run.dir={run_dir}",
        env={"WANDB_API_KEY": planted},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list((run_dir / "wandb").glob("offline-run-*/*.wandb")), "the offline W&B run was not written"
    assert _files_holding(run_dir, planted) == []
    assert planted not in proc.stdout + proc.stderr
    config = (run_dir / "config.yaml").read_text()
    assert "name: '***'" in config
    # by the way: a budget that is not whole batches is rounded up, with a warning (not an error)
    out = proc.stdout + proc.stderr  # Hydra's console log handler writes to stdout
    assert "train.total_frames=300 is not a multiple of the batch" in out
    assert "the run trains 512 env steps" in out and "total_frames: 512" in config


def test_secret_in_the_config_is_refused_before_any_file(tmp_path):
    """A credential given as a config key (literally or by interpolation) is refused with exit 2 and a pointer to the
    environment variable, before the run dir exists."""
    planted = "plantedsecret" + secrets.token_hex(12)
    for value in (planted, "${oc.env:WANDB_API_KEY}"):
        run_dir = tmp_path / "run"
        proc = run_cli(
            *TINY, f"+logger.api_key={value}", f"hydra.run.dir={run_dir}", env={"WANDB_API_KEY": planted}, timeout=120
        )
        assert proc.returncode == 2, proc.stderr[-3000:]
        assert "logger.api_key" in proc.stderr and "WANDB_API_KEY" in proc.stderr, proc.stderr[-3000:]
        assert "Traceback" not in proc.stderr and planted not in proc.stdout + proc.stderr
        assert not run_dir.exists()
