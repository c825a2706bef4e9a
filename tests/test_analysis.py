"""analysis/paper_claims.py on a tiny grid: every point runs, the table and figures come out."""

import json

import pandas as pd
import pytest

from analysis import paper_claims
from mhd_sim.record.run_directory import METRIC_COLUMNS

TINY = [
    "--set",
    "data.dataset={kind: synthetic, classes: 4, dim: 8, train_size: 600, test_size: 200}",
    "--set",
    "duration=6",
    "--set",
    "eval.every=2",
]


def grid(out, algorithms, *extra):
    """paper_claims' command line for one seed, one skew and one auxiliary-head count."""
    base = ["--out", str(out), "--seeds", "1", "--skews", "0.9", "--aux", "1"]
    return paper_claims.main([*base, "--algorithms", algorithms, *extra, *TINY])


@pytest.mark.slow  # an analysis on tiny data: minutes
def test_paper_claims_grid_writes_table_and_figures(tmp_path):
    assert grid(tmp_path, "isolated,mhd,gossip", "--jobs", "2") == 0
    results = pd.read_csv(tmp_path / "results.csv")
    assert len(results) == 6
    mixed_gossip = results[(results.population == "mixed") & (results.algorithm == "gossip")]
    assert mixed_gossip.status.iloc[0].startswith("error: algorithm.name: gossip averages weights")
    assert (results.drop(mixed_gossip.index).status == "done").all()
    mhd = results[(results.algorithm == "mhd H=1") & (results.population == "homogeneous")].iloc[0]
    (run,) = (tmp_path / "runs").glob("homogeneous-skew0.9-mhd*")
    sent = json.loads((run / "summary.json").read_text())["bytes_sent"]
    assert mhd.mb_sent == sent / 1e6  # the run's own bytes, in MB
    assert mhd.mb_sent > 0 and 0 <= mhd.best_aux_shared <= 1 and mhd.best_aux_head == 1
    table = (tmp_path / "table.md").read_text()
    assert "| mhd H=1 |" in table and "Bytes to reach a shared accuracy" in table
    assert "gossip averages weights" in table
    for name in ("accuracy.png", "bytes_vs_accuracy.png"):
        assert (tmp_path / name).stat().st_size > 0
    # run again: finished points are skipped, not rerun
    summary = tmp_path / "runs" / "homogeneous-skew0.9-isolated-seed0" / "summary.json"
    stamp = summary.stat().st_mtime_ns
    assert grid(tmp_path, "isolated") == 0
    assert summary.stat().st_mtime_ns == stamp


def test_bytes_to_reach_reads_the_first_crossing(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    rows = []
    for t, acc, sent in ((0, 0.1, 0), (10, 0.35, 100), (20, 0.45, 300), (30, 0.52, 600)):
        for agent in range(2):
            rows += [
                (t, agent, 0, 0, 0.9, acc - 0.1, sent, 0, sent),
                (t, agent, 1, 0, 0.5, acc, sent, 0, sent),
            ]
    pd.DataFrame(rows, columns=METRIC_COLUMNS).to_csv(run / "metrics.csv", index=False)
    c = paper_claims.curve(run)
    assert c.bytes.tolist() == [0, 200, 600, 1200]  # summed over agents
    assert c.best_shared.round(2).tolist() == [0.1, 0.35, 0.45, 0.52]


@pytest.mark.slow  # an analysis on tiny data: minutes
def test_paper_figures_tables_put_the_posters_numbers_beside_ours(tmp_path, monkeypatch):
    from analysis import paper_figures, tables

    # a smaller recovery sweep: a setting of its own and one sharing the headline's runs
    monkeypatch.setattr(
        paper_figures, "SWEPT", {"200 s": ["mhd", "mhd-complete-1aux"], "600 s": ["mhd-complete"]}
    )

    tiny = ["--set", "data.dataset={kind: synthetic, classes: 10, dim: 8, train_size: 1200, "
            "test_size: 200}", "--set", "duration=4", "--set", "eval.every=2"]  # fmt: skip
    out = ["--out", str(tmp_path / "runs"), "--seeds", "1"]
    assert paper_figures.main([*out, *tiny]) == 0
    text = (tmp_path / "runs" / "tables.md").read_text()
    for section in ("## (a) Headline", "## (b) Heads", "## (c) Topology", "Recovery ratio R"):
        assert section in text
    assert "| mhd |" in text and "68.6" in text and "63.4" in text  # the poster's, beside ours
    assert "| islands, other island |" in text and "| complete |" in text
    assert "| 3 aux, ours |" in text and "| 4 aux, poster | 32.0 |" in text
    for image in ("headline", "heads", "topology"):
        assert (
            (tmp_path / "runs" / "images" / "paper_figures" / "mnist1d10" / f"{image}.png")
            .stat()
            .st_size
        )
    summary = tmp_path / "runs" / "noniid-mhd-0" / "summary.json"
    stamp = summary.stat().st_mtime_ns
    doc = tmp_path / "docs" / "paper_figures.md"
    doc.parent.mkdir()
    doc.write_text("old tables\n" + tables.READING + "\nour reading\n")
    # resumes (nothing rerun) and adds the recovery sweep; the doc keeps its reading
    assert paper_figures.main([*out, *tiny, "--recovery", "--doc", str(doc)]) == 0
    assert summary.stat().st_mtime_ns == stamp
    text = doc.read_text()
    assert "old tables" not in text and text.endswith("\nour reading\n")
    assert "| 600 s, mhd-complete |" in text and "| 200 s, mhd-complete-1aux |" in text
    assert (doc.parent / "images" / "paper_figures" / "mnist1d10" / "heads.png").exists()


TINY = ["--set", "data.dataset={kind: synthetic, classes: 10, dim: 8, train_size: 1200, "
        "test_size: 200}", "--set", "duration=4", "--set", "eval.every=2"]  # fmt: skip


@pytest.mark.slow  # an analysis on tiny data: minutes
def test_paper_regime_tables_and_images(tmp_path):
    from analysis import paper_regime

    parts = ["--set", "data.partition={kind: label_skew, skew: 0.95, classes_per_agent: 2}"]
    doc = tmp_path / "docs" / "paper_figures.md"
    doc.parent.mkdir()
    args = ["--out", str(tmp_path / "runs"), "--seeds", "1", *TINY, *parts, "--doc", str(doc)]
    assert paper_regime.main(args) == 0
    text = doc.read_text()
    for section in ("## (a) Headline", "## (b) Heads", "## (c) Topology", "Recovery ratio R"):
        assert section in text
    assert "| distill (one head) |" in text and "| 4 aux, poster | 32.0 |" in text
    assert "cycle: head 3 − head 2 on data 3 hops away (≥ 5)" in text
    for image in ("headline", "heads", "topology"):
        assert (doc.parent / "images" / "paper_figures" / f"{image}.png").stat().st_size


@pytest.mark.slow  # an analysis on tiny data: minutes
def test_failures_tables_diagnostics_and_families(tmp_path, monkeypatch):
    from analysis import failures

    monkeypatch.setattr(failures, "OPTIONS", {"margin": ["algorithm.confidence=margin"]})
    setups = {k: v for k, v in failures.SETUPS.items() if k != "paper_claims, ring"}
    monkeypatch.setattr(failures, "SETUPS", setups)
    args = ["--out", str(tmp_path / "runs"), "--seeds", "1", *TINY,
            "--images", str(tmp_path / "images")]  # fmt: skip
    assert failures.main(args) == 0
    text = (tmp_path / "runs" / "tables.md").read_text()
    assert "| digits, MLP, ring |" in text and "| MNIST-1D, MLP + CNN, complete |" in text
    assert "teacher right, last" in text and "right when chosen" in text
    for image in ("digits_teachers", "mixed_families", "teachers_predict"):
        assert (tmp_path / "images" / f"{image}.png").stat().st_size


@pytest.mark.slow  # an analysis on tiny data: minutes
def test_teacher_rules_table_and_diagnostics(tmp_path, monkeypatch):
    from analysis import failures, teacher_rules

    setups = {"digits, MLP, ring": (failures.BASE, *failures.SETUPS["digits, MLP, ring"])}
    monkeypatch.setattr(teacher_rules, "SETUPS", setups)
    kept = ("isolated", "distill", "mhd", "embedding", "hybrid", "gate", "fedmd")
    monkeypatch.setattr(teacher_rules, "CONFIGS", {c: teacher_rules.CONFIGS[c] for c in kept})
    args = ["--out", str(tmp_path / "runs"), "--seeds", "1", *TINY]
    assert teacher_rules.main(args) == 0
    text = (tmp_path / "runs" / "tables.md").read_text()
    for config in teacher_rules.CONFIGS:
        assert f"| digits, MLP, ring, {config} |" in text
    assert "with a teacher (vs mhd)" in text and "own classes" in text
    assert "| shared 0 | shared 1 | shared 2 | private 0 |" in text
