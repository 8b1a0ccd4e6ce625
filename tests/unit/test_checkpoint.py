"""Checkpoint files are never partial, and a corrupt ``last.pt`` falls back to the newest full ``step_<n>.pt``
(issue Reliability 6)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from repdyn import checkpoint as ckpt

# A writer that pauses for good halfway through its n-th torch.save, so the test can SIGKILL it at a known point.
_PAUSING_WRITER = """
import io, os, sys, time
import torch
from repdyn import checkpoint as ckpt

ckpt_dir, pause_at = sys.argv[1], int(sys.argv[2])
real_save, calls = torch.save, [0]

def pausing_save(obj, f, *args, **kwargs):
    calls[0] += 1
    if calls[0] != pause_at:
        return real_save(obj, f, *args, **kwargs)
    buf = io.BytesIO()
    real_save(obj, buf, *args, **kwargs)
    data = buf.getvalue()
    fh = open(f, "wb") if isinstance(f, (str, os.PathLike)) else f
    fh.write(data[: len(data) // 2])
    fh.flush()
    os.fsync(fh.fileno())
    print("PAUSED", flush=True)
    time.sleep(120)

torch.save = pausing_save
ckpt.save(ckpt_dir, {"tag": "new", "agent": {"w": torch.ones(1000)}, "counters": {"env_steps": 2}}, keep_step=2)
"""

_LARGE_WRITER = """
import sys
import torch
from repdyn import checkpoint as ckpt

print("START", flush=True)
ckpt.save(sys.argv[1], {"tag": "new", "agent": {"w": torch.ones(40_000_000)}, "counters": {}}, keep_step=2)
"""


def _state(tag: str, step: int) -> dict:
    return {"tag": tag, "agent": {"w": torch.full((1000,), float(step))}, "counters": {"env_steps": step}}


def _spawn(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True, env={**os.environ}
    )


def _assert_every_checkpoint_whole(ckpt_dir: Path) -> dict[str, str]:
    """Every ``*.pt`` in the folder loads; returns file name → tag."""
    tags = {}
    for p in sorted(ckpt_dir.glob("*.pt")):
        tags[p.name] = torch.load(p, weights_only=False).get("tag")  # raises on a partial file
    return tags


@pytest.mark.parametrize(("pause_at", "last_tag"), [(1, "old"), (2, "new")], ids=["in_last", "in_step_file"])
def test_killed_mid_save_leaves_only_whole_files(tmp_path, pause_at, last_tag):
    ckpt.save(tmp_path, _state("old", 1), keep_step=1)
    proc = _spawn(_PAUSING_WRITER, str(tmp_path), str(pause_at))
    try:
        assert proc.stdout.readline().strip() == "PAUSED"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    tags = _assert_every_checkpoint_whole(tmp_path)
    assert tags["last.pt"] == last_tag
    assert ckpt.load(tmp_path)["tag"] == last_tag
    ckpt.save(tmp_path, _state("later", 3), keep_step=3)  # a later save is not disturbed by the leftover temp file
    assert ckpt.load(tmp_path)["tag"] == "later"


def test_sigkill_during_a_large_save_keeps_last_valid(tmp_path):
    ckpt.save(tmp_path, _state("old", 1), keep_step=1)
    before = {p.name for p in tmp_path.iterdir()}
    proc = _spawn(_LARGE_WRITER, str(tmp_path))
    try:
        assert proc.stdout.readline().strip() == "START"
        deadline = time.time() + 30
        while time.time() < deadline:  # kill as soon as a new file has bytes in it: mid-write
            if any(p.name not in before and p.stat().st_size > 0 for p in tmp_path.iterdir()):
                break
            time.sleep(0.001)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    tags = _assert_every_checkpoint_whole(tmp_path)
    assert tags["last.pt"] in ("old", "new")


def _corrupt(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def test_corrupt_last_falls_back_to_newest_whole_step_file(tmp_path, caplog):
    for step in (1, 2, 3):
        ckpt.save(tmp_path, _state(f"s{step}", step), keep_step=step)
    _corrupt(tmp_path / "last.pt")
    _corrupt(tmp_path / "step_000000000003.pt")
    with caplog.at_level(logging.WARNING, logger="repdyn.checkpoint"):
        state = ckpt.load(tmp_path)
    assert state["tag"] == "s2"
    text = caplog.text
    assert "last.pt" in text and "step_000000000002.pt" in text and "step_000000000003.pt" in text, text


def test_corrupt_last_without_full_step_file_is_one_clear_error(tmp_path):
    ckpt.save(tmp_path, _state("s1", 1))
    torch.save({"agent": {"w": torch.ones(3)}, "counters": {}}, tmp_path / "step_000000000001.pt")  # networks only
    _corrupt(tmp_path / "last.pt")
    with pytest.raises(ckpt.CheckpointError) as err:
        ckpt.load(tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "last.pt") in msg and "step_000000000001.pt" in msg, msg


def test_no_checkpoint_is_none(tmp_path):
    assert ckpt.load(tmp_path) is None
