"""The PPO benchmark runs and reports every measure (values are machine-dependent; only sanity is asserted)."""

from repdyn.bench.ppo import main


def test_bench_ppo_reports_all_measures():
    res = main(["--env", "classic/cartpole", "--batches", "1", "--e2e-frames", "1024"])
    expected = {
        "raw_env_fps",
        "collect_fps",
        "update_grad_steps_per_s",
        "update_fps",
        "clipppoloss_grad_steps_per_s",
        "e2e_fps",
    }
    assert set(res) == expected
    assert all(v > 0 for v in res.values())
    assert res["collect_fps"] < res["raw_env_fps"]  # the wrapper cannot beat the bare env


def test_bench_metric_share_is_a_fraction():
    from repdyn.bench.metric_share import main as share

    res = share(["--env", "classic/cartpole", "--repeats", "1", "--budget", "100000"])
    assert 0 < res["share_default"] <= res["share_full"] < 1
    assert all(res[f"t_{k}"] > 0 for k in ("batch", "representation", "capacity", "ntk", "update_rank"))
