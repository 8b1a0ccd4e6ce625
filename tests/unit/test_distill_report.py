"""``python -m repdyn.distill.report``: teacher and students side by side from run dirs (synthetic ones here)."""

from __future__ import annotations

import json
from pathlib import Path

from repdyn.distill.report import main
from repdyn.loggers.history import History


def _run(root: Path, name: str, objective: str, student_return: float, status: str = "completed") -> None:
    d = root / name
    d.mkdir(parents=True)
    final = {
        "eval/teacher/return": 100.0,
        "eval/student/return": student_return,
        "update_rank/student/rank": 5.0,
        "robustness/teacher/perturb_agree/noise_0": 1.0,
        "robustness/teacher/perturb_agree/noise_0.1": 0.5,
        "robustness/student/perturb_agree/noise_0": 1.0,
        "robustness/student/perturb_agree/noise_0.1": 0.9,
        "distill/agreement": 0.8,
    }
    summary = {"status": status, "objective": objective, "teacher": "t", "final": final}
    (d / "summary.json").write_text(json.dumps(summary))
    h = History(d / "history.jsonl")
    h.append(0, {"eval/student/return": 10.0, "update_rank/student/rank": 2.0})
    h.append(100, final)
    h.close()


def test_report_puts_teacher_and_students_side_by_side(tmp_path, capsys) -> None:
    _run(tmp_path, "0", "q_regression", 80.0)
    _run(tmp_path, "1", "q_regression", 90.0)
    _run(tmp_path, "2", "double_q", 40.0)
    _run(tmp_path, "3", "double_q", 0.0, status="diverged")
    main([str(tmp_path), "--out", str(tmp_path / "out")])
    table = (tmp_path / "out" / "table.md").read_text()
    assert "| teacher | 100 ± 0 |" in table
    assert "| q_regression | 85 ± 7.1 |" in table and "| double_q | 40 |" in table
    assert "status diverged, left out" in table
    assert (tmp_path / "out" / "robustness.png").stat().st_size > 0
    assert (tmp_path / "out" / "curves.png").stat().st_size > 0
