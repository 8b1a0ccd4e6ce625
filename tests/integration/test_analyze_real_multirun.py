"""End to end: a tiny real multirun (2 groups × 2 seeds) analysed by ``python -m repdyn.analyze`` (issue 7)."""

from __future__ import annotations

import base64
import io
import re
import subprocess
import sys

import pandas as pd
import pytest
from PIL import Image

from repdyn.analysis.browser import find_chromium
from tests.conftest import run_cli

FIGURES = ("curves", "signals", "trust_region", "final", "rank_agreement")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("analyze")
    sweep, out = root / "sweep", root / "report"
    proc = run_cli(
        "-m",
        "env=classic/cartpole",
        "logger=none",
        "train.total_frames=3072",
        "agent.epochs=1,2",
        "seed=0,1",
        f"hydra.sweep.dir={sweep}",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = subprocess.run(
        [sys.executable, "-m", "repdyn.analyze", str(sweep), "group_by=agent.epochs", f"out={out}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    # exit 0 also means: when Chromium is installed, the page rendered with no console error and no broken image
    assert proc.returncode == 0, proc.stderr[-3000:]
    (out / "analyze_stdout.txt").write_text(proc.stdout)
    return out


def test_every_figure_file_exists_and_decodes(report):
    for name in FIGURES:
        png = report / "figures" / f"{name}.png"
        with Image.open(png) as im:
            im.verify()
        with Image.open(png) as im:
            w, h = im.size
            assert w >= 600 and h >= 300, (name, im.size)
            assert len(set(im.convert("L").getdata())) > 10  # not a blank canvas
        pdf = report / "figures" / f"{name}.pdf"
        assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 5_000


def test_html_embeds_each_figure_and_is_self_contained(report):
    html = (report / "report.html").read_text()
    for name in FIGURES:
        m = re.search(rf'<img alt="{name}" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
        assert m, name
        with Image.open(io.BytesIO(base64.b64decode(m.group(1)))) as im:
            assert im.size[0] >= 600
    assert "http://" not in html and "https://" not in html.replace("https://wandb.ai", "")


def test_aggregated_table_has_the_four_runs_in_two_groups(report):
    final = pd.read_csv(report / "final.csv")
    assert len(final) == 4
    assert sorted(final["group"].unique()) == ["epochs=1", "epochs=2"]
    assert (final["status"] == "completed").all() and (final["last_step"] == 3072).all()
    assert final["env/return"].between(8, 500).all()  # CartPole episode returns
    dormant, dead = final["batch_start/actor/dormant_units_frac"], final["batch_start/actor/dead_units"]
    assert dormant.between(0, 1).all() and (dormant * 64 >= dead).all()  # dead units are dormant too (64 units)
    groups = pd.read_csv(report / "groups.csv").set_index(["group", "key"])
    for g, gdf in final.groupby("group"):  # the per-group mean ± SE of the same end values
        ret = groups.loc[(g, "env/return")]
        assert ret["n"] == 2 and ret["mean"] == pytest.approx(gdf["env/return"].mean())
        assert ret["se"] == pytest.approx(gdf["env/return"].std(ddof=1) / 2**0.5)


@pytest.mark.skipif(find_chromium() is None, reason="no chromium (CI installs it: launch/install_chromium.sh)")
def test_report_screenshot_rendered_without_console_errors(report):
    stdout = (report / "analyze_stdout.txt").read_text()
    assert f"rendered:  {report / 'report.png'} (ok)" in stdout, stdout
    with Image.open(report / "report.png") as im:
        assert im.size[0] >= 1000 and len(set(im.convert("L").getdata())) > 10
