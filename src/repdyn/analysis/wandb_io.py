"""W&B side of the analysis: read runs into the same table as local runs, and define the collapse dashboard.

Reading uses the public API (``wandb.Api().runs``, ``run.scan_history``) and needs network access and a login; it
produces :class:`~repdyn.analysis.loader.RunRecord` objects, so :func:`~repdyn.analysis.loader.build_runset` gives the
very table the local loader gives. The step axis is the history's ``step`` key when the run logged one, else W&B's
``_step`` (the training logger passes env steps as W&B's step).

The dashboard is a ``wandb_workspaces`` Workspace (package ``wandb-workspaces``): sections mirroring the HTML report,
runs filtered to one W&B group (the sweep) and grouped by the ``group_by`` config keys, mean line with min/max band,
W&B's time-weighted exponential smoothing (weight 0.95, debiased, decaying with the x distance between points rather
than per point, raw points shown; the report's centred window in env steps is the closest local equivalent).
Offline (the default) the definition is written to JSON (the exact view payload W&B would store, via the package's
``_to_model()`` — the only serialiser it has); ``upload=True`` saves it to W&B instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from repdyn.analysis.loader import DEFAULT_COMPAT_KEYS, AnalysisError, RunRecord, RunSet, build_runset, history_frame
from repdyn.progress import progress_bar


def _config_from_wandb(raw: dict[str, Any]) -> DictConfig:
    """W&B run config (nested, or flattened with dotted keys, values possibly wrapped as {"value": v}) → DictConfig."""
    cfg = OmegaConf.create({})
    for key, value in raw.items():
        if str(key).startswith("_"):
            continue
        if isinstance(value, dict) and set(value) == {"value"}:
            value = value["value"]
        OmegaConf.update(cfg, str(key), value, force_add=True)
    return cfg


def _step_key(rows: list[dict[str, Any]]) -> str:
    return "step" if any("step" in r for r in rows) else "_step"


def wandb_run_record(run: Any) -> RunRecord:
    """One ``wandb.apis.public.Run`` (or anything with ``id``, ``config``, ``summary``, ``scan_history``) → record."""
    rows = list(run.scan_history())
    summary = getattr(run.summary, "_json_dict", None) or dict(run.summary)
    return RunRecord(
        run_id=str(run.id),
        location=str(getattr(run, "url", run.id)),
        config=_config_from_wandb(dict(run.config)),
        history=history_frame(rows, step_key=_step_key(rows)) if rows else history_frame([]),
        overrides=[],
        summary={"status": getattr(run, "state", "unknown"), **summary},
    )


def load_wandb_runs(
    entity: str | None,
    project: str,
    group: str | None = None,
    *,
    api: Any = None,
    group_by: str | Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    compat_keys: Sequence[str] = DEFAULT_COMPAT_KEYS,
    horizon_key: str = "train.total_frames",
    feature_width: float | None = None,
    progress: bool = True,
) -> RunSet:
    """Read the runs of ``entity/project`` (only W&B group ``group`` when given) into a :class:`RunSet`.

    ``api`` defaults to ``wandb.Api()``; pass a stand-in for tests. W&B runs have no Hydra overrides, so give
    ``group_by`` explicitly (otherwise all runs form one group)."""
    if not project:
        raise AnalysisError("project: required with source=wandb (and entity=..., group=... to select a sweep)")
    if api is None:
        import wandb

        api = wandb.Api()
    path = f"{entity}/{project}" if entity else project
    runs = list(api.runs(path, filters={"group": group} if group else None))
    if not runs:
        raise AnalysisError(f"no W&B runs in {path}" + (f" with group={group!r}" if group else ""))
    records = [wandb_run_record(r) for r in progress_bar(runs, enabled=progress, desc="loading W&B runs", unit="run")]
    return build_runset(
        records,
        group_by=group_by,
        metrics=metrics,
        compat_keys=compat_keys,
        horizon_key=horizon_key,
        feature_width=feature_width,
        source="wandb",
    )


def workspace_spec(
    *,
    entity: str,
    project: str,
    group: str | None,
    group_by: Sequence[str],
    curve_panels: Iterable[tuple[str | Sequence[str], str, bool]],
    scatter_x: Sequence[str],
    ratio_key: str,
    final_keys: Sequence[str],
    rank_keys: Sequence[str],
    name: str = "repdyn collapse analysis",
) -> Any:
    """A ``wandb_workspaces.workspaces.Workspace`` with the collapse panels.

    ``curve_panels`` are (key or keys, title, smoothed) like the HTML report's training curves; the trust-region
    section plots ``ratio_key`` against each of ``scatter_x`` (W&B scatter of logged values); the final-values section
    shows bar charts of ``final_keys`` per group; the rank section overlays ``rank_keys``."""
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws

    def line(keys: str | Sequence[str], title: str, smooth: bool) -> Any:
        return wr.LinePlot(
            title=title,
            x="Step",
            y=[keys] if isinstance(keys, str) else list(keys),
            groupby_aggfunc="mean",
            groupby_rangefunc="minmax",
            # W&B's time-weighted EMA weighs points by their x spacing and is debiased at the start, so like the
            # report's window it does not lag behind at short horizons; the raw points stay visible under it
            smoothing_type="exponentialTimeWeighted" if smooth else "none",
            smoothing_factor=0.95 if smooth else 0.0,
            smoothing_show_original=smooth,
        )

    sections = [
        ws.Section(name="Training curves", is_open=True, panels=[line(k, t, s) for k, t, s in curve_panels]),
        ws.Section(
            name="Trust region",
            panels=[line(ratio_key, "ratio below 1-eps (mean)", False)]
            + [wr.ScatterPlot(title=f"{ratio_key} vs {x}", x=x, y=ratio_key) for x in scatter_x],
        ),
        ws.Section(
            name="Final values (interventions)",
            panels=[
                wr.BarPlot(title=k, metrics=[k], groupby_aggfunc="mean", groupby_rangefunc="minmax") for k in final_keys
            ],
        ),
        ws.Section(name="Rank metrics", panels=[wr.LinePlot(title="rank metrics", x="Step", y=list(rank_keys))]),
    ]
    settings = ws.RunsetSettings(
        groupby=[ws.Config(k) for k in group_by],
        filters=[ws.Metric("Group") == group] if group else [],
    )
    return ws.Workspace(entity=entity, project=project, name=name, sections=sections, runset_settings=settings)


def workspace_payload(workspace: Any) -> dict[str, Any]:
    """The JSON view payload W&B would store for ``workspace`` (no network needed)."""
    return workspace._to_model().model_dump(by_alias=True, exclude_none=True, mode="json")


def write_workspace(workspace: Any, path: str | os.PathLike, *, upload: bool = False) -> Path | str:
    """Offline (default): write the workspace definition to ``path`` as JSON and return the path. ``upload=True``:
    save it to W&B (needs a login and network) and return its URL."""
    if upload:
        return str(workspace.save().url)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "_comment": "wandb-workspaces view definition; upload with python -m repdyn.analyze ... workspace=upload",
        "entity": workspace.entity,
        "project": workspace.project,
        "view": workspace_payload(workspace),
    }
    path.write_text(json.dumps(payload, indent=1))
    return path
