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
