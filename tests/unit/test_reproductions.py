"""docs/reproductions.md names only commands and configs that exist: every config option (``experiment=<name>``,
``theory=<name>``, ``env=<group>/<name>``, ...), ``--config-name``, ``python -m repdyn.<module>`` and ``conf/*.yaml``
path in the page resolves to a file in the repository, and the page has a row per claim."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "reproductions.md"
GROUPS = ("experiment", "theory", "supervised", "env", "agent", "model", "metrics", "logger")
OPTION = re.compile(r"(?<![\w.])(" + "|".join(GROUPS) + r")=([\w/]+)")
INTERVENTIONS = re.compile(r"(?<![\w.])intervention=\[([\w, ]*)\]")
CONFIG_NAME = re.compile(r"--config-name[ =]([\w/]+)")
MODULE = re.compile(r"python -m (repdyn(?:\.\w+)+)")
CONF_PATH = re.compile(r"\bconf/[\w/]+\.yaml\b")


def referenced_files(text: str) -> dict[str, Path]:
    """Every file the text's commands and config names point at: {the reference as written: the file it needs}."""
    refs: dict[str, Path] = {}
    for group, name in OPTION.findall(text):
        refs[f"{group}={name}"] = ROOT / "conf" / group / f"{name}.yaml"
    for names in INTERVENTIONS.findall(text):
        for name in filter(None, (n.strip() for n in names.split(","))):
            refs[f"intervention={name}"] = ROOT / "conf" / "intervention" / f"{name}.yaml"
    for name in CONFIG_NAME.findall(text):
        refs[f"--config-name {name}"] = ROOT / "conf" / f"{name}.yaml"
    for module in MODULE.findall(text):
        refs[f"python -m {module}"] = ROOT / "src" / Path(*module.split(".")).with_suffix(".py")
    for path in CONF_PATH.findall(text):
        refs[path] = ROOT / path
    return refs


def missing(text: str) -> list[str]:
    return sorted(ref for ref, path in referenced_files(text).items() if not path.is_file())


def test_every_named_preset_config_and_module_exists() -> None:
    text = PAGE.read_text(encoding="utf-8")
    refs = referenced_files(text)
    assert any(r.startswith("experiment=") for r in refs) and any(r.startswith("python -m") for r in refs)
    assert missing(text) == []


def test_a_planted_bad_name_is_caught() -> None:
    text = (
        "`python -m repdyn.train experiment=ppo_collapse_atarii` and `--config-name theory/td_ntk_papr`, "
        "`theory=no_such_study`, `intervention=[pfo, no_such_fix]`, `python -m repdyn.theory.no_such`, "
        "`conf/theory/nope.yaml`; fine: `experiment=ppo_collapse_atari`, `--config-name theory/td_ntk_paper`."
    )
    assert missing(text) == [
        "--config-name theory/td_ntk_papr",
        "conf/theory/nope.yaml",
        "experiment=ppo_collapse_atarii",
        "intervention=no_such_fix",
        "python -m repdyn.theory.no_such",
        "theory=no_such_study",
    ]


VERDICTS = {"reproduced", "not reproduced", "not testable at this budget"}


def test_one_row_per_claim_with_a_verdict() -> None:
    rows = [line for line in PAGE.read_text(encoding="utf-8").splitlines() if re.match(r"^\| *\d+ *\|", line)]
    assert len(rows) >= 10
    for row in rows:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", row.strip())[1:-1]]  # split on unescaped pipes
        assert len(cells) == 6 and all(cells), row
        assert cells[-1] in VERDICTS, row
