"""Module structure: no import cycles in src/repdyn, low layers never import the run-level modules, and the agents
declare the protocol the loop relies on."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
LOW_LAYERS = ("repdyn.agents", "repdyn.metrics", "repdyn.envs", "repdyn.models")
RUN_LEVEL = ("repdyn.train", "repdyn.config", "repdyn.interventions")


def _modules() -> dict[str, Path]:
    out = {}
    for path in (SRC / "repdyn").rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """repdyn modules ``name`` imports anywhere in its file (function-local imports included: they hide cycles)."""

    def resolve(dotted: str) -> str | None:
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [resolve(a.name) for a in node.names if a.name.startswith("repdyn")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            if not base.startswith("repdyn"):
                continue
            targets = [resolve(f"{base}.{a.name}") for a in node.names]
        else:
            continue
        found.update(t for t in targets if t and t != name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_planted_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


def test_low_layers_do_not_import_run_level_modules() -> None:
    bad = [
        (name, target)
        for name, targets in _graph().items()
        if name.startswith(LOW_LAYERS)
        for target in targets
        if target.startswith(RUN_LEVEL)
    ]
    assert bad == []


@pytest.mark.parametrize(
    "overrides",
    [["env=classic/cartpole"], ["env=classic/acrobot", "agent=dqn", "model.activation=relu"]],
    ids=["ppo", "dqn"],
)
def test_agents_declare_the_protocol_and_metric_views(compose, overrides) -> None:
    from repdyn.agents import build_agent
    from repdyn.agents.base import Agent, CapacityProbed, NTKViews, UpdateRankViews
    from repdyn.envs.make import make_env

    cfg = compose([*overrides, "logger=none"])
    env = make_env(cfg.env, 0)
    agent = build_agent(cfg, env)
    env.close()
    for protocol in (Agent, CapacityProbed, NTKViews, UpdateRankViews):
        assert isinstance(agent, protocol), protocol.__name__
    assert not isinstance(object(), NTKViews)  # the check is not vacuous


MAX_FUNCTION_LINES = 60


def _long_functions(source: str, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, int]]:
    """(name, lines) of every function or method longer than ``limit`` lines, ``def`` to last line."""
    return [
        (node.name, node.end_lineno - node.lineno + 1)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > limit
    ]


def test_long_function_finder_finds_a_planted_one() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(60))
    assert _long_functions(f"def short():\n    pass\n\ndef planted():\n{body}\n") == [("planted", 61)]


def test_no_function_is_longer_than_sixty_lines() -> None:
    """Small functions named for what they do: a newcomer reads one screen at a time."""
    long = [
        f"{path.relative_to(SRC)}:{name} ({n} lines)"
        for path in sorted((SRC / "repdyn").rglob("*.py"))
        for name, n in _long_functions(path.read_text())
    ]
    assert long == []
