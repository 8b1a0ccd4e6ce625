"""Loading run dirs / sweep dirs into one table, and the clear errors of the analysis loader."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from repdyn.analysis.loader import AnalysisError, find_run_dirs, load_runs
from tests.synthetic_runs import write_synthetic_sweep


@pytest.fixture()
def sweep(tmp_path):
    root = tmp_path / "multirun"
    write_synthetic_sweep(root, n_logs=100, horizon=10_000)
    return root


def test_sweep_dir_groups_inferred_from_overrides(sweep):
    rs = load_runs(sweep, progress=False)
    assert rs.group_by == ["agent.epochs"]  # seed varies too but is never a group
    assert rs.runs["run"].tolist() == ["0", "1", "2", "3"]
    assert rs.runs["group"].tolist() == ["epochs=1", "epochs=1", "epochs=2", "epochs=2"]
    assert rs.runs["seed"].tolist() == [0, 1, 0, 1]
    assert rs.runs["horizon"].tolist() == [10_000.0] * 4
    assert rs.runs["width"].tolist() == [64.0] * 4  # model.hidden[-1]
    assert len(rs.history) == 400
    one = rs.run_frame("3")  # epochs 2, seed 1: approx_rank = 60 - 20u + 1
    assert one["step"].iloc[-1] == 10_000
    assert one["batch_start/actor/approx_rank"].iloc[-1] == pytest.approx(41.0)
    assert one["batch_start/actor/approx_rank"].iloc[49] == pytest.approx(51.0)  # u = 0.5


def test_explicit_group_by_and_list_of_run_dirs(sweep):
    rs = load_runs([sweep / "0", sweep / "2"], group_by="seed", progress=False)
    assert rs.runs["run"].tolist() == ["0", "2"]
    assert rs.groups == ["seed=0"]
    rs = load_runs(sweep, group_by=["agent.epochs", "seed"], progress=False)
    assert rs.groups == ["epochs=1, seed=0", "epochs=1, seed=1", "epochs=2, seed=0", "epochs=2, seed=1"]


def test_recursive_search_and_numeric_job_order(tmp_path):
    root = tmp_path / "outer" / "sweep"
    write_synthetic_sweep(root, epochs=(1, 2, 3, 4, 5, 6), seeds=(0, 1), n_logs=10, horizon=100)
    dirs = find_run_dirs([tmp_path / "outer"])
    assert [d.name for d in dirs] == [str(i) for i in range(12)]  # 10 and 11 after 9, not after 1


def test_recursive_search_skips_output_moved_aside(tmp_path):
    """train.overwrite=true moves an earlier run into <run dir>/previous_<time>/: not a member of the sweep."""
    root = tmp_path / "sweep"
    write_synthetic_sweep(root, epochs=(1,), seeds=(0, 1), n_logs=10, horizon=100)
    aside = root / "0" / "previous_2024-01-01_00-00-00"
    aside.mkdir()
    (aside / "history.jsonl").write_text('{"step": 1, "env/return": 0.0}\n')
    assert [d.name for d in find_run_dirs([root])] == ["0", "1"]
    assert find_run_dirs([aside]) == [aside.resolve()]  # named explicitly, it is read


def test_empty_dir_is_a_clear_error(tmp_path):
    with pytest.raises(AnalysisError, match="no history.jsonl under"):
        load_runs(tmp_path, progress=False)
    with pytest.raises(AnalysisError, match="does not exist"):
        load_runs(tmp_path / "nope", progress=False)


def test_requested_metric_missing_in_one_run(sweep):
    path = sweep / "3" / "history.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "ppo/entropy"}) + "\n" for r in rows))
    load_runs(sweep, metrics=["env/return"], progress=False)  # fine
    with pytest.raises(AnalysisError, match=r"'ppo/entropy': missing in 1/4 run\(s\) \['3'\]"):
        load_runs(sweep, metrics=["env/return", "ppo/entropy"], progress=False)
    with pytest.raises(AnalysisError, match="did you mean"):
        load_runs(sweep, metrics=["env/returns"], progress=False)


def test_mixed_env_is_an_error_unless_grouped_by_it(sweep):
    cfg = sweep / "3" / "config.yaml"
    cfg.write_text(cfg.read_text().replace("CartPole-v1", "Acrobot-v1"))
    with pytest.raises(AnalysisError, match="runs mix different env.id"):
        load_runs(sweep, progress=False)
    rs = load_runs(sweep, group_by="env.id", progress=False)
    assert rs.groups == ["id=Acrobot-v1", "id=CartPole-v1"]


def test_mixed_agent_is_an_error(tmp_path):
    write_synthetic_sweep(tmp_path / "a", epochs=(1,), n_logs=10, horizon=100)
    write_synthetic_sweep(tmp_path / "b", epochs=(1,), n_logs=10, horizon=100, agent="dqn")
    with pytest.raises(AnalysisError, match="agent.name"):
        load_runs(tmp_path, progress=False)


def test_group_by_key_absent_is_a_clear_error(sweep):
    with pytest.raises(AnalysisError, match="group_by: run '0' has no config key 'agent.nope'"):
        load_runs(sweep, group_by="agent.nope", progress=False)


def test_non_finite_values_and_torn_last_line(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "history.jsonl").write_text(
        '{"step": 10, "a": 1.0}\n{"step": 20, "a": "nan"}\n{"step": 30, "a": "inf"}\n{"step": 40, "a": 2'
    )
    rs = load_runs(run, progress=False)
    a = rs.run_frame("run")["a"].to_numpy()
    assert rs.run_frame("run")["step"].tolist() == [10, 20, 30]
    assert a[0] == 1.0 and math.isnan(a[1]) and np.isposinf(a[2])
    assert rs.runs["horizon"].iloc[0] == 30  # no config: the last logged step
    assert math.isnan(rs.runs["width"].iloc[0])
    assert not rs.has_metric("a").isna().any() and bool(rs.has_metric("a").iloc[0])


def _set_intervention(run_dir, value: str, overrides: list[str]) -> None:
    with open(run_dir / "config.yaml", "a", encoding="utf-8") as fh:
        fh.write(f"intervention: {value}\n")
    with open(run_dir / ".hydra" / "overrides.yaml", "a", encoding="utf-8") as fh:
        fh.writelines(f"- {o}\n" for o in overrides)


def test_config_group_values_are_labelled_by_the_override_that_chose_them(tmp_path):
    """group_by=intervention: the value is a mapping of whole intervention configs; the label is the swept override
    (`[pfo]`), unless runs with the same override differ in it (another override set a field): then the full value
    labels them and they are separate groups."""
    dirs = write_synthetic_sweep(tmp_path / "m", n_logs=10, horizon=1000)
    _set_intervention(dirs[0], "{}", ["intervention=[]"])
    _set_intervention(dirs[1], "{}", ["intervention=[]"])
    _set_intervention(dirs[2], "{pfo: {coef: 1.0}}", ["intervention=[pfo]"])
    _set_intervention(dirs[3], "{pfo: {coef: 1.0}}", ["intervention=[pfo]"])
    rs = load_runs(tmp_path / "m", group_by="intervention", progress=False)
    assert rs.runs["group"].tolist() == ["intervention=[]"] * 2 + ["intervention=[pfo]"] * 2
    assert set(rs.history["group"]) == {"intervention=[]", "intervention=[pfo]"}

    dirs = write_synthetic_sweep(tmp_path / "n", n_logs=10, horizon=1000)
    for d in dirs[:2]:
        _set_intervention(d, "{pfo: {coef: 1.0}}", ["intervention=[pfo]"])
    for d in dirs[2:]:
        _set_intervention(d, "{pfo: {coef: 10.0}}", ["intervention=[pfo]", "intervention.pfo.coef=10.0"])
    rs = load_runs(tmp_path / "n", group_by="intervention", progress=False)
    groups = rs.runs["group"].tolist()
    assert groups[0] == groups[1] != groups[2] == groups[3]
    assert "'coef': 10.0" in groups[2] and set(rs.history["group"]) == set(groups)
