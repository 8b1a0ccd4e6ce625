"""Scheduled metrics come from the registry: a metric registered at runtime runs at its cadence with no change to the
training loop, and every key a ``metrics=full`` run logs is documented in docs/metrics.md."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pytest
import torch

from repdyn.metrics import registry
from repdyn.metrics.registry import ScheduledMetric, register
from repdyn.metrics.scheduled import MetricContext
from tests.conftest import history, summary

METRICS_DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
CARTPOLE = ["env=classic/cartpole", "logger=none", "train.progress=false", "agent.epochs=1"]
BATCH = 2 * 256  # env.num_envs × env.frames_per_env of the cartpole preset


@runtime_checkable
class _NeverProvided(Protocol):
    def a_view_no_agent_has(self) -> None: ...


def _toy_setup(cfg: Any, run_dir: Path, env: Any) -> dict[str, int]:
    return {"records": 0}


def _toy_before(ctx: MetricContext) -> dict[str, float]:
    ctx.carry["params"] = [p.detach().clone() for p in ctx.agent.networks["critic"].parameters()]
    return {"toy/before_env_steps": float(ctx.env_steps)}


def _toy_record(ctx: MetricContext) -> dict[str, float]:
    ctx.state["records"] += 1
    after = list(ctx.agent.networks["critic"].parameters())
    moved = any(not torch.equal(a, b) for a, b in zip(ctx.carry["params"], after, strict=True))
    return {
        "toy/env_steps": float(ctx.env_steps),
        "toy/batch_states": float(ctx.batch.numel()),
        "toy/records": float(ctx.state["records"]),
        "toy/update_moved_critic": float(moved),
    }


@pytest.fixture
def toy_registry(monkeypatch):
    """A private copy of the registry holding two runtime-registered metrics: ``toy`` (setup, before_update, record)
    and ``toy_unsupported``, which needs a capability no agent provides."""
    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    register(ScheduledMetric("toy", _toy_record, "toy/<key>", "", setup=_toy_setup, before_update=_toy_before))
    register(ScheduledMetric("toy_unsupported", _toy_record, "toy/<key>", "", needs=_NeverProvided))
    with pytest.raises(ValueError, match="already registered"):
        register(ScheduledMetric("toy", _toy_record, "toy/<key>", ""))


def _run(compose, run_dir: Path, overrides: list[str]) -> list[dict]:
    from repdyn.train import run

    status = run(compose(overrides), run_dir)
    assert status == "completed", summary(run_dir).get("error")
    return history(run_dir)


def test_runtime_registered_metric_runs_at_its_cadence(compose, toy_registry, tmp_path) -> None:
    # 0.5 of 2048 env steps: due at the first batch end (512), at 1024 and at the end (2048), not at 1536
    overrides = [*CARTPOLE, "metrics=none", "train.total_frames=2048", "train.log_every=0.25"]
    recs = _run(compose, tmp_path / "run", [*overrides, "+metrics.scheduled.toy=0.5"])
    assert [r["step"] for r in recs] == [512, 1024, 1536, 2048]
    toy = [r for r in recs if "toy/env_steps" in r]
    assert [r["step"] for r in toy] == [r["toy/env_steps"] for r in toy] == [512, 1024, 2048]
    assert [r["toy/before_env_steps"] for r in toy] == [512, 1024, 2048]
    assert [r["toy/records"] for r in toy] == [1, 2, 3]  # one setup for the run, its state kept across records
    assert all(r["toy/batch_states"] == BATCH and r["toy/update_moved_critic"] == 1.0 for r in toy)
    assert not any(k.startswith("batch_") or k.startswith("capacity/") for r in recs for k in r)  # metrics=none


def test_metric_the_agent_cannot_provide_is_skipped(compose, toy_registry, tmp_path) -> None:
    overrides = [*CARTPOLE, "metrics=none", "train.total_frames=1024", "+metrics.scheduled.toy_unsupported=0.5"]
    recs = _run(compose, tmp_path / "run", overrides)
    assert [r["step"] for r in recs] == [512, 1024]
    assert not any(k.startswith("toy/") for r in recs for k in r)


# --- every logged key is documented --------------------------------------------------------------------------------

_PART = re.compile(r"(\{[^}]*\}|<\w+>)")


def _pattern(span: str, metric_names: str) -> re.Pattern:
    """A documented key pattern as a regex: ``{a,b}`` alternatives, ``<metric>`` / ``<key>`` one of the metric names
    of the representation section, any other ``<placeholder>`` (``<net>``, ``<optimizer>``) one name part."""
    out = []
    for part in _PART.split(span):
        if part.startswith("{"):
            out.append("(?:" + "|".join(re.escape(a) for a in part[1:-1].split(",")) + ")")
        elif part in ("<metric>", "<key>"):
            out.append(metric_names)
        elif part.startswith("<"):
            out.append(r"[a-z_]+")
        else:
            out.append(re.escape(part))
    return re.compile("".join(out))


def documented_patterns(text: str) -> list[re.Pattern]:
    """Every backticked key pattern of docs/metrics.md (a ``family/*`` wildcard documents nothing by itself)."""
    section = text.split("\n## Representation metrics", 1)[1].split("\n## ", 1)[0]
    names = "(?:" + "|".join(sorted(set(re.findall(r"`(\w+)`", section)))) + ")"
    spans = {s for s in re.findall(r"`([^`\s]+/[^`\s]+)`", text) if "*" not in s}
    return [_pattern(s, names) for s in sorted(spans)]


def undocumented(keys: set[str], patterns: list[re.Pattern]) -> list[str]:
    return sorted(k for k in keys if k != "step" and not any(p.fullmatch(k) for p in patterns))


def test_key_matcher_knows_documented_from_undocumented() -> None:
    patterns = documented_patterns(METRICS_DOC.read_text(encoding="utf-8"))
    good = {"batch_end/critic/effective_rank", "batch_start/actor/sv_2", "opt/actor/lr", "capacity/critic/loss"}
    bad = {"batch_end/critic/made_up_rank", "capacity/critic/gain", "ppo/made_up", "opt/actor"}
    assert undocumented(good | bad, patterns) == sorted(bad)


DQN_ACROBOT = [
    "env=classic/acrobot",
    "agent=dqn",
    "model.activation=relu",
    "logger=none",
    "train.progress=false",
    "env.num_envs=1",
    "env.frames_per_env=8",
    "train.total_frames=128",
    "train.log_every=0.5",
    "agent.learning_starts=32",
    "agent.minibatch_size=16",
    "metrics.replay_samples=64",
]
SMALL_PROBES = ["metrics.ntk_samples=64", "metrics.update_rank_k=16", "metrics.update_rank_probe=16"]
SMALL_PROBES += ["metrics.capacity_samples=128", "metrics.capacity_epochs=1"]


@pytest.mark.parametrize(
    "overrides",
    [[*CARTPOLE, "train.total_frames=1024"], DQN_ACROBOT],
    ids=["ppo_cartpole", "dqn_acrobot"],
)
def test_every_key_of_a_full_run_is_documented(compose, tmp_path, overrides) -> None:
    recs = _run(compose, tmp_path / "run", [*overrides, "metrics=full", *SMALL_PROBES])
    keys = set().union(*recs)
    assert {"ntk", "update_rank", "capacity", "batch_end"} <= {k.split("/")[0] for k in keys}  # the full set ran
    assert undocumented(keys, documented_patterns(METRICS_DOC.read_text(encoding="utf-8"))) == []
