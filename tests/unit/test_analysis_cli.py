"""``python -m repdyn.analyze``: argument parsing, outputs and exit codes (in-process, on a small synthetic sweep)."""

from __future__ import annotations

import json

import pytest

from repdyn import analyze
from repdyn.analysis.browser import find_chromium
from repdyn.analysis.loader import AnalysisError
from tests.synthetic_runs import write_synthetic_sweep


def test_parse_args_paths_and_overrides(tmp_path):
    argv = [str(tmp_path), "group_by=agent.epochs", "metrics=[env/return,ppo/entropy]", "formats=png"]
    cfg = analyze.parse_args(argv)
    assert cfg.paths == [str(tmp_path)]
    assert cfg.group_by == ["agent.epochs"] and cfg.metrics == ["env/return", "ppo/entropy"] and cfg.formats == ["png"]
    cfg = analyze.parse_args([str(tmp_path), "metrics=env/return,ppo/entropy"])
    assert cfg.metrics == ["env/return", "ppo/entropy"]


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["x", "colour=red"], "unknown option 'colour'"),
        (["x", "source=s3"], "source: must be one of"),
        (["x", "workspace=cloud"], "workspace: must be one of"),
        (["screenshot=maybe", "x"], "screenshot: must be one of"),
        ([], "paths: give a sweep dir"),
    ],
)
def test_parse_args_errors(argv, match):
    with pytest.raises(AnalysisError, match=match):
        analyze.parse_args(argv)


def test_cli_end_to_end_on_synthetic_sweep(tmp_path, capsys):
    root = tmp_path / "sweep"
    write_synthetic_sweep(root, n_logs=200, horizon=20_000)
    shot = "true" if find_chromium() else "false"
    rc = analyze.main([str(root), "formats=[png]", f"screenshot={shot}", "progress=false"])
    out = capsys.readouterr().out
    assert rc == 0, out
    dest = root / "analysis"
    assert f"report:    {dest / 'report.html'}" in out
    for name in ("curves", "trust_region", "final", "rank_agreement"):
        assert (dest / "figures" / f"{name}.png").stat().st_size > 10_000
    for name in ("final", "curves", "windows", "table", "rank_agreement"):
        assert (dest / f"{name}.csv").stat().st_size > 100
    spec = json.loads((dest / "wandb_workspace.json").read_text())
    assert spec["project"] == "repdyn" and "agent.value.epochs" in json.dumps(spec)
    if shot == "true":
        assert "(ok)" in out and (dest / "report.png").stat().st_size > 50_000


def test_cli_missing_metric_exit_code(tmp_path, capsys):
    root = tmp_path / "sweep"
    write_synthetic_sweep(root, epochs=(1,), seeds=(0,), n_logs=10, horizon=100)
    rc = analyze.main([str(root), "metrics=[env/return,capacity/critic/loss]", "screenshot=false"])
    assert rc == 2
    assert "capacity/critic/loss" in capsys.readouterr().err
