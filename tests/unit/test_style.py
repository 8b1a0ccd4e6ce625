"""The code base stays ruff-clean (lint and format) with the settings in pyproject.toml."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from repdyn.paths import REPO_ROOT

RUFF = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")


@pytest.mark.skipif(RUFF is None, reason="ruff is installed by `make test` (dev extra)")
@pytest.mark.parametrize("args", [["check", "src", "tests"], ["format", "--check", "src", "tests"]])
def test_ruff(args):
    proc = subprocess.run([RUFF, *args], cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-1000:]
