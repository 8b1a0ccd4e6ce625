"""The docs resolve: no citation of files outside the repository, every docs page reachable from the README, and every
``docs/<page>.md#<anchor>`` link in code, configs and docs pointing at an existing heading (GitHub anchor rules)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
THIS = Path(__file__).resolve()

# Citations of documents that are not part of the repository (a design note, a spec, numbered paper text files).
# The patterns are split so that this file does not match them itself.
FORBIDDEN = {
    "spec document": re.compile(r"\bSP" + r"EC\b"),
    "design document": re.compile(r"\bDES" + r"IGN\b"),
    "numbered seed paper": re.compile(r"\bseeds?[ _/]+0" + r"\d\d", re.IGNORECASE),
    "seed folder": re.compile(r"\bseed" + r"s/", re.IGNORECASE),
    "seed file name": re.compile(r"\b00\d_[0-9a-f]{16}\b"),
}
DOCS_LINK = re.compile(r"docs/([\w-]+)\.md(?:#([\w-]+))?")
RELATIVE_LINK = re.compile(r"\]\((?:\./)?([\w-]+\.md)?(?:#([\w-]+))?\)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def _files() -> Iterator[Path]:
    """Sources, configs, tests and the README: everything a user reads next to the docs."""
    yield ROOT / "README.md"
    for pattern in ("src/**/*.py", "conf/**/*.yaml", "tests/**/*.py"):
        for path in sorted(ROOT.glob(pattern)):
            if path.resolve() != THIS:
                yield path


def _slug(heading: str) -> str:
    """GitHub's heading anchor: lowercase, punctuation dropped (letters, digits, ``_``, ``-`` kept), spaces → ``-``."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    """Anchors of every heading outside fenced code blocks, with GitHub's ``-1``, ``-2`` suffixes for repeats."""
    seen: dict[str, int] = {}
    anchors = set()
    fenced = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        m = None if fenced else HEADING.match(line)
        if m:
            slug = _slug(m.group(2))
            anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
            seen[slug] = seen.get(slug, 0) + 1
    return anchors


def _pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def test_docs_exist() -> None:
    names = {p.name for p in _pages()}
    assert {"architecture.md", "metrics.md", "interventions.md", "experiments.md"} <= names


def test_no_citations_of_files_outside_the_repo() -> None:
    hits = []
    for path in [*_files(), *_pages()]:
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for what, pattern in FORBIDDEN.items():
                if pattern.search(line):
                    hits.append(f"{path.relative_to(ROOT)}:{i}: {what}: {line.strip()[:100]}")
    assert not hits, "cite a paper or a docs/ page instead:\n" + "\n".join(hits)


def test_every_docs_page_is_linked_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [p.name for p in _pages() if f"](docs/{p.name}" not in readme]
    assert not missing, f"README.md does not link {missing}"


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.name)
def test_relative_links_inside_docs_resolve(page: Path) -> None:
    bad = []
    for target, anchor in RELATIVE_LINK.findall(page.read_text(encoding="utf-8")):
        dest = DOCS / target if target else page
        if not dest.exists():
            bad.append(f"{target}: no such page")
        elif anchor and anchor not in _anchors(dest):
            bad.append(f"{target or page.name}#{anchor}: no such heading")
    assert not bad, f"{page.name}: " + "; ".join(bad)


def test_docs_links_in_code_configs_and_readme_resolve() -> None:
    anchors = {p.stem: _anchors(p) for p in _pages()}
    bad = []
    for path in [*_files(), *_pages()]:
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for page, anchor in DOCS_LINK.findall(line):
                if page not in anchors:
                    bad.append(f"{path.relative_to(ROOT)}:{i}: docs/{page}.md does not exist")
                elif anchor and anchor not in anchors[page]:
                    bad.append(f"{path.relative_to(ROOT)}:{i}: docs/{page}.md has no heading #{anchor}")
    assert not bad, "\n".join(bad)


def test_slug_follows_github_rules() -> None:
    assert _slug("Feature rank") == "feature-rank"
    assert _slug("Roy and Vetterli 2007") == "roy-and-vetterli-2007"
    assert _slug("Moalla et al. 2024") == "moalla-et-al-2024"
    assert _slug("PFO on all layers (`pfo_all`)") == "pfo-on-all-layers-pfo_all"
