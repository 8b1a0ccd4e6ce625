"""W&B side: the W&B loader builds the same table as the local loader (API replaced by a stand-in holding the same
runs), and the offline workspace definition carries the sweep filter, the grouping and the panels."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from repdyn.analysis.loader import AnalysisError, load_runs, read_run
from repdyn.analysis.wandb_io import load_wandb_runs, workspace_spec, write_workspace
from tests.synthetic_runs import write_synthetic_sweep


class _FakeRun:
    def __init__(self, run_id, config, rows, state="finished"):
        self.id, self.config, self._rows, self.state = run_id, config, rows, state
        self.summary = {"env/return": rows[-1]["env/return"]}
        self.url = f"https://wandb.invalid/{run_id}"

    def scan_history(self):
        return iter(self._rows)


class _FakeApi:
    def __init__(self, runs):
        self._runs, self.calls = runs, []

    def runs(self, path, filters=None):
        self.calls.append((path, filters))
        return self._runs


def _flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


@pytest.fixture()
def sweep(tmp_path):
    root = tmp_path / "sweep"
    write_synthetic_sweep(root, n_logs=100, horizon=10_000)
    return root


def test_wandb_loader_gives_the_local_table(sweep):
    from omegaconf import OmegaConf

    fakes = []
    for i, job in enumerate(("0", "1", "2", "3")):
        rec = read_run(sweep / job)
        rows = [
            {"_step": int(r["step"]), "_runtime": 1.0, **{k: v for k, v in r.items() if k != "step" and v == v}}
            for r in rec.history.to_dict("records")
        ]
        cfg = OmegaConf.to_container(rec.config)
        # half the runs come back with W&B's flattened dotted keys, half nested: both must parse
        fakes.append(_FakeRun(job, _flatten(cfg) if i % 2 else cfg, rows))
    api = _FakeApi(fakes)
    remote = load_wandb_runs("me", "repdyn", "sweep-1", api=api, group_by="agent.epochs", progress=False)
    local = load_runs(sweep, group_by="agent.epochs", progress=False)
    assert api.calls == [("me/repdyn", {"group": "sweep-1"})]
    assert remote.source == "wandb"
    cols = ["run", "group", "seed", "horizon", "width"]
    pd.testing.assert_frame_equal(remote.runs[cols], local.runs[cols])
    keys = sorted(local.metric_keys)
    assert sorted(remote.metric_keys) == keys
    np.testing.assert_allclose(
        remote.history[["step", *keys]].to_numpy(float), local.history[["step", *keys]].to_numpy(float)
    )


def test_wandb_loader_errors():
    with pytest.raises(AnalysisError, match="no W&B runs in me/p with group='g'"):
        load_wandb_runs("me", "p", "g", api=_FakeApi([]), progress=False)
    with pytest.raises(AnalysisError, match="project"):
        load_wandb_runs("me", "", api=_FakeApi([]), progress=False)


def test_offline_workspace_spec(tmp_path):
    ws = workspace_spec(
        entity="me",
        project="repdyn",
        group="phoenix-epochs",
        group_by=["agent.epochs"],
        curve_panels=[("env/return", "return", True), ("capacity/actor/loss", "capacity", False)],
        scatter_x=["batch_start/actor/dead_units"],
        ratio_key="trust_region/ratio_below_mean",
        final_keys=["env/return"],
        rank_keys=["batch_start/actor/approx_rank", "batch_start/actor/srank"],
    )
    path = write_workspace(ws, tmp_path / "ws.json")
    spec = json.loads(path.read_text())
    assert (spec["entity"], spec["project"]) == ("me", "repdyn")
    text = json.dumps(spec["view"])
    assert '"name": "group"' in text and '"value": "phoenix-epochs"' in text  # the sweep filter
    assert "agent.value.epochs" in text  # W&B's config path of the grouping key
    sections = spec["view"]["spec"]["section"]["panelBankConfig"]["sections"]
    assert [s["name"] for s in sections] == [
        "Training curves",
        "Trust region",
        "Final values (interventions)",
        "Rank metrics",
    ]
    curves = sections[0]["panels"]
    assert len(curves) == 2
    cfgs = [p["config"] for p in curves]
    assert cfgs[0]["smoothingWeight"] == pytest.approx(0.95) and cfgs[0]["smoothingType"] == "exponentialTimeWeighted"
    assert cfgs[0]["showOriginalAfterSmoothing"] is True  # the raw points stay visible, as in the report
    assert cfgs[1].get("smoothingType") == "none"  # capacity loss is not smoothed
