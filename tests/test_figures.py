"""mhd-sim plot, summarize, animate and report: what they draw matches the run directories."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from mhd_sim.cli import app
from mhd_sim.compare import figures, runs, summarize
from mhd_sim.record.animation import frames


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def swept(tmp_path_factory, tiny_for_module):
    """A finished sweep: ring vs complete × 2 seeds of the tiny scenario."""
    TINY = tiny_for_module
    tmp = tmp_path_factory.mktemp("sweep")
    sc = {**TINY, "duration": 8.0, "eval": {"every": 2.0}}
    (tmp / "tiny.yaml").write_text(yaml.safe_dump(sc))
    result = cli(
        "sweep",
        tmp / "tiny.yaml",
        "--grid",
        "network.topology.kind=ring,complete",
        "--seeds",
        2,
        "--jobs",
        2,
        "--out",
        tmp / "sw",
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    return tmp / "sw"


@pytest.fixture(scope="module")
def eventful(tmp_path_factory, tiny_for_module):
    """One run with churn and a link that goes down and comes back."""
    TINY = tiny_for_module
    tmp = tmp_path_factory.mktemp("run")
    sc = {
        **TINY,
        "agents": {**TINY["agents"], "churn": {"kind": "schedule", "offline": {2: [[4, 9]]}}},
        "network": {
            **TINY["network"],
            "loss": 0.0,
            "schedule": [{"kind": "link_down", "at": 3, "until": 12, "links": [[0, 1]]}],
        },
    }
    (tmp / "s.yaml").write_text(yaml.safe_dump(sc))
    result = cli("run", tmp / "s.yaml", "--out", tmp / "run", "--quiet")
    assert result.exit_code == 0, result.output
    return tmp / "run"


def test_communication_curves_end_at_the_runs_summary_figures(swept, tmp_path):
    out = tmp_path / "cmp.png"
    result = cli("plot", swept, "-o", out)
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:4] == b"\x89PNG"
    data = figures.plot([swept], out)  # the numbers drawn
    index = pd.read_csv(swept / "sweep.csv")
    assert set(data.group) == {"kind=ring", "kind=complete"}
    for kind, g in index.groupby("network.topology.kind"):
        last = data[data.group == f"kind={kind}"].iloc[-1]
        assert last.bytes == pytest.approx(g.bytes_sent.mean())
        assert last.value == pytest.approx(g.best_head_shared_acc.mean(), abs=1e-6)
        assert last.low == pytest.approx(g.best_head_shared_acc.min(), abs=1e-6)
    ring, complete = (
        index[index["network.topology.kind"] == k].bytes_sent.mean() for k in ("ring", "complete")
    )
    assert complete > ring  # 6 links against 4


@pytest.mark.parametrize("suffix, magic", [(".svg", b"<?xml"), (".pdf", b"%PDF")])
def test_the_extension_picks_the_format(swept, tmp_path, suffix, magic):
    out = tmp_path / f"f{suffix}"
    assert (
        cli(
            "plot", swept, "--x", "time", "--metric", "private_acc", "--head", "0", "-o", out
        ).exit_code
        == 0
    )
    assert out.read_bytes()[: len(magic)] == magic


def test_plot_explains_bad_requests(swept, tmp_path):
    for args, text in (
        (["-o", tmp_path / "f.jpg"], "extension picks the format"),
        (["-o", tmp_path / "f.png", "--by", "network.topolgy"], "not a setting of these runs"),
        (["-o", tmp_path / "f.png", "--head", "7"], "has no head 7"),
        (["-o", tmp_path / "f.png", "--x", "steps"], "choose bytes or time"),
    ):
        result = cli("plot", swept, *args)
        assert result.exit_code == 2 and text in result.output, result.output
    result = cli("plot", tmp_path, "-o", tmp_path / "f.png")
    assert result.exit_code == 2 and "no run directory" in result.output


def test_staleness_and_agent_figures_read_the_events_and_summaries(swept, tmp_path):
    run_dirs = runs.find_runs([swept])
    st = figures.plot([swept], tmp_path / "s.png", kind="staleness", by=["network.topology.kind"])
    ring = [r for r in run_dirs if "kind=ring" in r.name]
    pooled = pd.concat(
        [pd.read_csv(r / "events.csv").query("event == 'distill'").staleness for r in ring]
    )
    assert st.set_index("group").loc["kind=ring", "p50"] == pytest.approx(pooled.median())
    ag = figures.plot([swept], tmp_path / "a.png", kind="agents")
    assert len(ag) == 2 * 4  # two groups of four agents
    s = json.loads((ring[0] / "summary.json").read_text())
    best = s["final"]["best_head"]
    other = json.loads((ring[1] / "summary.json").read_text())
    mean0 = np.mean(
        [
            s["agents"][0]["shared_acc"][best],
            other["agents"][0]["shared_acc"][other["final"]["best_head"]],
        ]
    )
    assert ag[(ag.group == "kind=ring") & (ag.agent == 0)]["mean"].iloc[0] == pytest.approx(mean0)


def test_summarize_writes_the_figure_set_and_table(swept, tmp_path):
    written = summarize.summarize([swept], tmp_path / "sum")
    assert {p.name for p in written} == {f for f, *_ in summarize.FIGURES} | {"table.md"}
    table = (tmp_path / "sum" / "table.md").read_text()
    index = pd.read_csv(swept / "sweep.csv")
    ring = index[index["network.topology.kind"] == "ring"]
    assert f"| kind=ring | 2 | {ring.best_head_shared_acc.mean():.3f} ± " in table
    assert (
        swept / "summary" / "shared_vs_bytes.png"
    ).is_file()  # the sweep drew its set when it ended


def test_animation_frames_follow_churn_links_and_deliveries(eventful, tmp_path):
    f = frames(eventful, count=21)  # one frame a second over 20 s
    t = f["times"]
    assert not f["online"][(t > 4) & (t < 9), 2].any() and f["online"][(t < 4) | (t > 9), 2].all()
    assert f["online"][:, [0, 1, 3]].all()
    link = f["edges"].index((0, 1))
    assert (
        not f["link_up"][(t > 3) & (t < 12), link].any()
        and f["link_up"][(t < 3) | (t > 12), link].all()
    )
    events = pd.read_csv(eventful / "events.csv")
    assert f["traffic"].sum() == (events.event == "deliver").sum()
    metrics = pd.read_csv(eventful / "metrics.csv")
    best = json.loads((eventful / "summary.json").read_text())["final"]["best_head"]
    at10 = (
        metrics[(metrics.time == 10.0) & (metrics["head"] == best)].sort_values("agent").shared_acc
    )
    np.testing.assert_allclose(f["accuracy"][t.tolist().index(10.0)], at10)
    out = tmp_path / "run.gif"
    result = cli("animate", eventful, "-o", out, "--frames", 12)
    assert result.exit_code == 0, result.output
    with Image.open(out) as gif:
        assert gif.n_frames == 12
    result = cli("animate", eventful, "-o", tmp_path / "run.avi")
    assert result.exit_code == 2 and ".gif" in result.output


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_report_is_self_contained_and_renders_its_images(eventful, tmp_path):
    result = cli("report", eventful, "-o", tmp_path / "report.html")
    assert result.exit_code == 0, result.output
    page = (tmp_path / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == 6
    assert "http:" not in page and "https:" not in page  # nothing fetched from elsewhere
    summary = json.loads((eventful / "summary.json").read_text())
    assert f"{summary['bytes_sent'] / 1e6:,.2f} MB" in page
    browser = _chromium()
    if browser is None:
        pytest.skip(
            "no chromium: `make test` installs Debian's chromium package; it could not here"
        )
    # the page as shipped, plus a probe that writes how many images decoded into the DOM
    probe = (
        "<script>window.addEventListener('load',()=>{const i=[...document.images];"
        "document.body.setAttribute('data-rendered',i.filter(x=>x.complete&&x.naturalWidth>0).length+'/'+i.length)"
        "});</script>"
    )
    (tmp_path / "probe.html").write_text(page.replace("</body>", probe + "</body>"))
    dom = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            (tmp_path / "probe.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert 'data-rendered="6/6"' in dom, dom[:500]


def test_runs_of_several_scenarios_get_short_labels_and_a_title_naming_them(
    swept, eventful, tmp_path
):
    """Runs of two scenarios (a sweep's and another): one legend entry per scenario (settings
    that differ within one scenario beside its name, never every key the two differ in), the
    legend inside the figure, a title naming both, and no warning from matplotlib."""
    other = tmp_path / "other"
    shutil.copytree(eventful, other)
    scenario = yaml.safe_load((other / "scenario.yaml").read_text())
    scenario["name"] = "eventful"
    (other / "scenario.yaml").write_text(yaml.safe_dump(scenario))
    summary = json.loads((other / "summary.json").read_text())
    (other / "summary.json").write_text(json.dumps({**summary, "name": "eventful"}))
    out = tmp_path / "mixed.png"
    done = subprocess.run([sys.executable, "-m", "mhd_sim", "plot", str(swept), str(other), "-o",
                           str(out)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    fig, data = figures.figure([swept, other])
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert sorted(set(data.group)) == ["eventful, kind=ring", "tiny, kind=complete",
                                       "tiny, kind=ring"]  # fmt: skip
    assert all(len(line) <= 48 for lab in labels for line in lab.splitlines())
    assert fig.axes[0].get_title().startswith("tiny and eventful: ")
    fig.canvas.draw()
    box, legend = fig.bbox, fig.axes[0].get_legend().get_window_extent()
    assert box.x0 <= legend.x0 and legend.x1 <= box.x1 and box.y0 <= legend.y0 <= box.y1
