"""A corrupt history gives one message naming the file and the line, in resume and in analysis (issue Reliability 6).

A torn final line (a crash mid-append) is still skipped: it is the one damage the append-only writer can cause.
"""

from __future__ import annotations

import json

import pytest

from repdyn import analyze
from repdyn.loggers.history import History, HistoryError, read_history

GOOD = '{"step": 10, "a": 1.0}\n{"step": 20, "a": 2.0}\n'
BAD = {
    "no_step": (GOOD + '{"a": 3.0}\n{"step": 40, "a": 4.0}\n', 3, "no 'step'"),
    "binary": (GOOD.encode() + b'\x00\xff\xfe{"st\x89\n{"step": 40}\n', 3, "not UTF-8"),
    "garbage": (GOOD + "not json at all\n" + '{"step": 40}\n', 3, "not valid JSON"),
    "step_text": (GOOD + '{"step": "x"}\n', 3, "'step'"),
    "not_object": (GOOD + "[1, 2]\n", 3, "not a JSON object"),
}


def _write(path, content) -> None:
    path.write_bytes(content if isinstance(content, bytes) else content.encode())


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_record_names_file_and_line(tmp_path, case):
    content, line, needle = BAD[case]
    path = tmp_path / "history.jsonl"
    _write(path, content)
    with pytest.raises(HistoryError) as err:
        read_history(path)
    msg = str(err.value)
    assert f"{path}:{line}" in msg and needle in msg, msg
    before = path.read_bytes()
    with pytest.raises(HistoryError, match=f"{path}:{line}"):
        History.truncate_after(path, 10)  # the reader used by resume
    assert path.read_bytes() == before  # nothing rewritten


def test_torn_final_line_is_still_skipped(tmp_path):
    path = tmp_path / "history.jsonl"
    _write(path, GOOD + '{"step": 30, "a": 3')
    assert [r["step"] for r in read_history(path)] == [10, 20]
    assert History.truncate_after(path, 10) == 1
    assert [json.loads(x)["step"] for x in path.read_text().splitlines()] == [10]


def test_analyze_cli_exits_2_naming_file_and_line(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    _write(run / "history.jsonl", BAD["no_step"][0])
    rc = analyze.main([str(run), "screenshot=false", "progress=false"])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"{run / 'history.jsonl'}:3" in err and "Traceback" not in err, err
