"""Run-loop presentation and resources: `train.threads` resolution, and the progress bar only on a terminal."""

from repdyn.run_parts import available_cpus, torch_threads


def test_explicit_threads_win() -> None:
    assert torch_threads(3, "cnn", cpus=2) == 3
    assert torch_threads(2, "mlp", cpus=8) == 2


def test_auto_threads_by_model() -> None:
    assert torch_threads(None, "mlp", cpus=8) == 1
    assert torch_threads(None, "cnn", cpus=8) == 8


def test_slurm_allocation_caps_available_cpus() -> None:
    assert available_cpus({"SLURM_CPUS_PER_TASK": "1"}) == 1
    assert available_cpus({}) >= 1


def test_progress_bar_only_on_a_terminal() -> None:
    import io

    from repdyn.progress import show_progress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert show_progress(True, Tty())
    assert not show_progress(False, Tty())
    assert not show_progress(True, io.StringIO())  # a Slurm .err file, a CI log, a pipe


def test_every_bar_is_off_when_stderr_is_not_a_terminal(monkeypatch) -> None:
    """repdyn.progress.progress_bar (used by training, probes, studies, analysis and benchmarks) draws nothing into a
    log file, and draws on a terminal unless switched off."""
    import io

    from repdyn.progress import progress_bar

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert progress_bar(range(3)).disable
    monkeypatch.setattr("sys.stderr", Tty())
    assert not progress_bar(range(3)).disable
    assert progress_bar(range(3), enabled=False).disable
