"""A W&B sink that raises on every call neither stops a run nor changes its history (issue 2)."""

from __future__ import annotations

import pytest

from repdyn.train import run
from tests.conftest import history, strip_perf, summary


class _Boom:
    def __getattr__(self, name):
        raise RuntimeError("W&B is down")


def test_raising_wandb_sink_does_not_change_history(tmp_path, compose, monkeypatch, caplog):
    import wandb

    calls = {"log": 0}

    class Run:
        summary = _Boom()

        def log(self, *a, **k):
            calls["log"] += 1
            raise RuntimeError("W&B log failed")

        def finish(self, *a, **k):
            raise RuntimeError("W&B finish failed")

    monkeypatch.setattr(wandb, "init", lambda **kw: Run())
    base = ["env=classic/cartpole", "train.total_frames=1536", "train.progress=false", "agent.epochs=1"]
    assert run(compose([*base, "logger=wandb"]), tmp_path / "a") == "completed"
    assert calls["log"] == 4  # the sink was really called at every log step
    assert sum("W&B sink disabled" in r.message for r in caplog.records) == 1  # reported once
    assert run(compose([*base, "logger=none"]), tmp_path / "b") == "completed"
    assert strip_perf(history(tmp_path / "a")) == strip_perf(history(tmp_path / "b"))
    assert summary(tmp_path / "a")["status"] == "completed"


def test_wandb_init_failure_is_survived(tmp_path, compose, monkeypatch):
    import wandb

    def fail(**kw):
        raise TimeoutError("could not reach W&B")

    monkeypatch.setattr(wandb, "init", fail)
    cfg = compose(["env=classic/cartpole", "train.total_frames=512", "train.progress=false", "logger=wandb"])
    assert run(cfg, tmp_path / "a") == "completed"
    assert [r["step"] for r in history(tmp_path / "a")] == [0, 512]


@pytest.mark.parametrize("mode", ["online"])
def test_online_without_credentials_falls_back_to_local(tmp_path, compose, monkeypatch, mode):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = compose(["env=classic/cartpole", "train.total_frames=512", "train.progress=false", f"logger.mode={mode}"])
    assert run(cfg, tmp_path / "a") == "completed"
    assert [r["step"] for r in history(tmp_path / "a")] == [0, 512]
