"""The Dockerfile, environment.yml and pyproject describe the same environment (no Docker engine here to build it)."""

from __future__ import annotations

import re
import tomllib

import yaml

from repdyn.paths import REPO_ROOT


def _pins(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*((?:==|>=|<=|<|>|~=)[^;]*)$", line.strip())
        if m:
            out[m.group(1).lower().replace("_", "-")] = m.group(2).replace(" ", "")
    return out


def test_every_file_the_dockerfile_copies_exists():
    copies = [
        line.split()[1:-1] for line in (REPO_ROOT / "Dockerfile").read_text().splitlines() if line.startswith("COPY ")
    ]
    sources = [src for group in copies for src in group]
    assert "pyproject.toml" in sources and "src" in sources
    for src in sources:
        assert (REPO_ROOT / src).exists(), f"Dockerfile copies missing {src}"


def test_environment_yml_and_pyproject_pin_the_same_versions():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    py_pins = _pins(project["dependencies"] + project["optional-dependencies"]["dev"])
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    conda_pins = _pins([p for p in pip_section if not p.startswith("-e")])
    assert conda_pins == py_pins
    assert py_pins["torch"] == "==2.13.0"  # the CPU wheel; an open range would pull a CUDA build


def test_make_targets_and_ci_use_the_readme_commands():
    readme = (REPO_ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    assert "make test" in (REPO_ROOT / ".ci" / "run").read_text()
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert re.search(r"^run: install", makefile, re.M) and re.search(r"^test: install", makefile, re.M)
    assert "torch==2.13.0" in makefile
