"""``train.threads`` resolution: explicit values win; otherwise 1 for MLPs and every available CPU for the CNN."""

from repdyn.train import available_cpus, torch_threads


def test_explicit_threads_win() -> None:
    assert torch_threads(3, "cnn", cpus=2) == 3
    assert torch_threads(2, "mlp", cpus=8) == 2


def test_auto_threads_by_model() -> None:
    assert torch_threads(None, "mlp", cpus=8) == 1
    assert torch_threads(None, "cnn", cpus=8) == 8


def test_slurm_allocation_caps_available_cpus() -> None:
    assert available_cpus({"SLURM_CPUS_PER_TASK": "1"}) == 1
    assert available_cpus({}) >= 1
