"""``python -m repdyn.analyze <sweep dir | run dirs ...> [key=value ...]`` — collapse figures, dashboards and an HTML
report from run histories (local run dirs, or W&B with ``source=wandb``).

Options and their defaults live in ``conf/analyze.yaml`` (the one config tree); ``key=value`` arguments override
them with Hydra's dotted syntax (``group_by=agent.epochs metrics=[env/return,batch_start/actor/approx_rank]``). This
is a plain CLI rather than a ``@hydra.main`` app because its main argument is a list of paths, and because it must not
create a Hydra run dir of its own inside the sweep it reads.

Examples::

    python -m repdyn.analyze multirun/2025-01-01/12-00-00 group_by=agent.epochs
    python -m repdyn.analyze runs/a runs/b out=report/ formats=[png,pdf,svg] smooth=none
    python -m repdyn.analyze source=wandb entity=me project=repdyn group=phoenix-epochs group_by=agent.epochs

Training curves are smoothed with a centred moving average over ``smooth`` (default 0.02) of each run's budget in env
steps; ``smooth=none`` draws them raw. Raw points are always drawn faintly under the smoothed lines.

Outputs in ``out``: ``report.html`` (self-contained), ``figures/*.png|pdf``, ``final.csv`` (per-run last-5% values),
``groups.csv`` (per group and metric: runs, mean, std, standard error of those values),
``curves.csv`` (per-group mean/min/max curves), ``windows.csv`` (trust-region windows), ``table.csv`` (all runs'
histories, the aggregated table), ``rank_agreement.csv``, ``wandb_workspace.json`` (offline dashboard definition)
and ``report.png`` (headless-Chromium screenshot, when Chromium is installed).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from repdyn.paths import CONF_DIR

SOURCES = ("local", "wandb")
WORKSPACE_MODES = ("offline", "upload", "none")
SCREENSHOT_MODES = ("auto", "true", "false")


def _as_list(v: Any) -> list[str] | None:
    if v is None:
        return None
    if isinstance(v, ListConfig | list | tuple):
        return [str(x) for x in v]
    return [s for s in str(v).split(",") if s]


def parse_smooth(value: Any) -> float | None:
    """``smooth=none`` (also null / false / 0) → None, raw curves; ``smooth=0.05`` → 0.05, a window of 5% of the
    budget."""
    from repdyn.analysis.loader import AnalysisError

    if value is None or value is False or str(value).strip().lower() in ("none", "null", "false", "off", "0", "0.0"):
        return None
    try:
        frac = float(value)
    except (TypeError, ValueError):
        raise AnalysisError(f"smooth: must be none or a fraction of the budget in (0, 1], got {value!r}") from None
    if not 0 < frac <= 1:
        raise AnalysisError(f"smooth: must be none or a fraction of the budget in (0, 1], got {value!r}")
    return frac


def parse_args(argv: Sequence[str]) -> DictConfig:
    """Positional paths and ``key=value`` overrides → the merged config (defaults from ``conf/analyze.yaml``)."""
    from repdyn.analysis.loader import AnalysisError

    base = OmegaConf.load(CONF_DIR / "analyze.yaml")
    paths, dotlist = [], []
    for arg in argv:
        if arg in ("-h", "--help"):
            print(__doc__)
            raise SystemExit(0)
        key = arg.split("=", 1)[0]
        if "=" in arg and not Path(arg).exists():
            if key not in base:
                raise AnalysisError(f"unknown option {key!r}; allowed: {sorted(base.keys())}")
            dotlist.append(arg)
        else:
            paths.append(arg)
    cfg = OmegaConf.merge(base, OmegaConf.from_dotlist(dotlist))
    cfg.paths = list(_as_list(cfg.paths) or []) + paths
    for name in ("metrics", "rank_metrics", "formats", "compat_keys", "group_by"):
        cfg[name] = _as_list(cfg[name])
    cfg.screenshot = str(cfg.screenshot).lower()
    cfg.smooth = parse_smooth(cfg.smooth)
    if cfg.source not in SOURCES:
        raise AnalysisError(f"source: must be one of {SOURCES}, got {cfg.source!r}")
    if cfg.workspace not in WORKSPACE_MODES:
        raise AnalysisError(f"workspace: must be one of {WORKSPACE_MODES}, got {cfg.workspace!r}")
    if cfg.screenshot not in SCREENSHOT_MODES:
        raise AnalysisError(f"screenshot: must be one of {SCREENSHOT_MODES}, got {cfg.screenshot!r}")
    if cfg.source == "local" and not cfg.paths:
        raise AnalysisError("paths: give a sweep dir or run dirs (python -m repdyn.analyze <dir> ...)")
    return cfg


def _workspace(cfg: DictConfig, runset: Any, opts: Any, out: Path) -> Path | str:
    """The W&B dashboard mirroring the report: written offline to ``out`` or uploaded (``workspace=upload``)."""
    from repdyn.analysis import wandb_io
    from repdyn.analysis.report import RATIO_KEY

    first = next(iter(runset.configs.values()))
    project = cfg.project or OmegaConf.select(first, "logger.project", default=None) or "repdyn"
    entity = cfg.entity or OmegaConf.select(first, "logger.entity", default=None) or "YOUR_ENTITY"
    group = cfg.group or OmegaConf.select(first, "logger.group", default=None)
    curves = []
    for p in opts.curve_panels():
        keys = [k for k in p.keys if runset.has_metric(k).any()]  # only the networks the runs have
        if keys:
            curves.append((keys, p.title, p.smooth and opts.smooth is not None))
    spec = wandb_io.workspace_spec(
        entity=entity,
        project=project,
        group=group,
        group_by=runset.group_by,
        curve_panels=curves,
        scatter_x=[p.key for p in opts.scatter_panels()],
        ratio_key=RATIO_KEY,
        final_keys=[p.key for p in opts.final_panels()],
        rank_keys=[opts.key(m) for m in opts.rank_metrics],
        name=f"{opts.title} ({group or project})",
    )
    return wandb_io.write_workspace(spec, out / "wandb_workspace.json", upload=cfg.workspace == "upload")


def run(cfg: DictConfig) -> dict[str, Any]:
    """Load, compute, draw, write; returns what was written (paths and notes)."""
    from repdyn.analysis import browser, wandb_io
    from repdyn.analysis.loader import AnalysisError, load_runs
    from repdyn.analysis.report import ReportOptions, make_report, resolved

    opts = ReportOptions(
        curves=cfg.metrics,
        network=cfg.network,
        scope=cfg.scope,
        smooth=cfg.smooth,
        per_run=bool(cfg.per_run),
        last_frac=float(cfg.last_frac),
        window_frac=float(cfg.window_frac),
        n_windows=int(cfg.n_windows),
        excess_min_count=int(cfg.excess_min_count),
        rank_metrics=list(cfg.rank_metrics),
        formats=list(cfg.formats),
        title=str(cfg.title),
    )
    opts.validate()  # bad options fail before any loading
    common = dict(
        group_by=cfg.group_by,
        metrics=cfg.metrics,
        compat_keys=cfg.compat_keys or (),
        horizon_key=cfg.horizon_key,
        feature_width=cfg.feature_width,
        progress=bool(cfg.progress),
    )
    if cfg.source == "wandb":
        runset = wandb_io.load_wandb_runs(cfg.entity, cfg.project, cfg.group, **common)
        out = Path(cfg.out or "analysis")
    else:
        runset = load_runs(cfg.paths, **common)
        out = Path(cfg.out or (Path(cfg.paths[0]) / "analysis" if len(cfg.paths) == 1 else "analysis"))
    opts = resolved(runset, opts)  # network=auto: the network these runs log
    result = make_report(runset, out, opts)
    written: dict[str, Any] = {"html": result.html, "figures": result.figures, "csv": result.csv, "notes": result.notes}

    if cfg.workspace != "none":
        written["workspace"] = _workspace(cfg, runset, opts, out)

    if cfg.screenshot != "false":
        if browser.find_chromium() is None:
            if cfg.screenshot == "true":
                raise AnalysisError("screenshot=true but no chromium on PATH (run launch/install_chromium.sh)")
            written["screenshot"] = None
        else:
            shot = browser.render_page(result.html, out / "report.png")
            written["screenshot"] = shot
    return written


def main(argv: Sequence[str] | None = None) -> int:
    from repdyn.analysis.loader import AnalysisError

    try:
        cfg = parse_args(sys.argv[1:] if argv is None else argv)
        written = run(cfg)
    except AnalysisError as err:
        print(f"repdyn.analyze: error: {err}", file=sys.stderr)
        return 2
    print(f"report:    {written['html']}")
    for name, paths in written["figures"].items():
        print(f"figure:    {name}: {', '.join(str(p) for p in paths)}")
    for name, path in written["csv"].items():
        print(f"table:     {name}: {path}")
    if written.get("workspace"):
        print(f"workspace: {written['workspace']}")
    shot = written.get("screenshot")
    if shot is not None:
        status = (
            "ok" if shot.ok else f"{len(shot.console_errors)} console error(s), {shot.broken_images} broken image(s)"
        )
        print(f"rendered:  {shot.screenshot} ({status})")
        for err in shot.console_errors:
            print(f"  console: {err}", file=sys.stderr)
    for note in written["notes"]:
        print(f"note:      {note}")
    return 0 if shot is None or shot.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
