"""The PPO benchmark runs and reports every measure (values are machine-dependent; only sanity is asserted)."""

from repdyn.bench.ppo import main


def test_bench_ppo_reports_all_measures():
    res = main(["--env", "classic/cartpole", "--batches", "1", "--e2e-frames", "1024"])
    expected = {
        "raw_env_fps",
        "collect_fps",
        "collect_gym_wrapper_fps",
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


def test_bench_metrics_rows_compare_equal_matrices():
    """Each fast row computes the same matrix as its loop (the bench prints the difference; it must be float noise)."""
    from repdyn.bench.metrics import bench_ntk, bench_update_rank

    rows = bench_ntk(24, 1) + bench_update_rank(16, 12, 1)
    fast = [r for r in rows if r[2] is not None]
    assert [r[0] for r in fast] == [
        "eNTK ntk_gram(method='auto')",
        "eNTK ntk_gram(method='jacobian')",
        "update matrix, tanh critic V: update_matrix()",
        "update matrix, ReLU Q-net, q_max: update_matrix()",
    ]
    assert all(r[1] > 0 and r[2] > 0 and r[3] < 1e-4 for r in fast), fast
