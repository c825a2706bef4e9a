"""One self-contained ``report.html`` per run: scenario, summary tables and every figure embedded
as data URIs, so it opens anywhere with no network and no other file."""

from __future__ import annotations

import base64
import html
from pathlib import Path

FIGURES = (  # plots/ file, caption
    (
        "accuracy_vs_time.png",
        "Accuracy vs simulated time, per head (line: mean over agents, band: min–max).",
    ),
    ("accuracy_vs_bytes.png", "Accuracy vs total bytes sent by all agents."),
    ("agents.png", "Per agent: steps, messages, age of its predictions when used, final accuracy."),
    ("topology.png", "The topology at t = 0, nodes coloured by final shared accuracy."),
    ("reach.png", "Final accuracy of each head on the data of the agents at each hop distance."),
    ("network.png", "Each uplink's utilization and queue over time."),
)
STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;
  margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em;margin-bottom:.2em}
h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left}
figure{margin:1em 0} figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.85em;color:#555}
pre{background:#f7f7f7;padding:1em;overflow-x:auto;font-size:.8em} .muted{color:#666}
"""


def _table(header: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows
    )
    thead = f"<thead><tr>{head}</tr></thead>" if any(header) else ""
    return f"<table>{thead}<tbody>{body}</tbody></table>"


def _num(v: float | None, fmt: str = ".3f") -> str:
    return "–" if v is None else format(v, fmt)


def _image(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (
        f'<figure><img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def write_report(run: str | Path, out: str | Path | None = None) -> Path:
    """Write ``report.html`` (default: inside the run directory); figures are drawn first when
    ``plots/`` lacks them."""
    from .reading import needs_summary

    run = Path(run)
    s = needs_summary(run, "a report")
    if not all((run / "plots" / f).is_file() for f, _ in FIGURES[2:]):
        from .plots import plot_run

        plot_run(run)
    final, msgs, stale = s["final"], s["messages"], s.get("staleness") or {}
    heads = [
        [f"{h}{' (best)' if h == final['best_head'] else ''}", _num(p), _num(sh)]
        for h, (p, sh) in enumerate(zip(final["mean_private_acc"], final["mean_shared_acc"]))
    ]
    totals = [
        ["simulated time", f"{s['sim_time']:.1f} s"],
        ["wall time", f"{s['wall_time_s']:.1f} s"],
        ["events", f"{s['events']:,}"],
        ["local steps", f"{s['steps']:,}"],
        [
            "messages sent / delivered / dropped",
            f"{msgs['sent']:,} / {msgs['delivered']:,} / {msgs['dropped']:,}",
        ],
        [
            "drops by reason",
            ", ".join(f"{k} {v:,}" for k, v in msgs["dropped_by_reason"].items()) or "none",
        ],
        ["bytes sent", f"{s['bytes_sent'] / 1e6:,.2f} MB"],
        [
            "staleness p50 / p90 / p99",
            " / ".join(_num(stale.get(q), ".1f") for q in ("p50", "p90", "p99")) + " s",
        ],
    ]
    best = final["best_head"]
    agents = [
        [
            a["agent"],
            a["group"],
            f"{a['speed']:.3g}",
            a["steps"],
            a["messages_sent"],
            f"{a['bytes_sent'] / 1e6:.2f}",
            _num(a.get("online_fraction"), ".2f"),
            _num(a["private_acc"][0] if a["private_acc"] else None),
            _num(a["shared_acc"][best] if a["shared_acc"] else None),
        ]
        for a in s["agents"]
    ]
    figures = "".join(
        _image(run / "plots" / f, cap) for f, cap in FIGURES if (run / "plots" / f).is_file()
    )
    scenario = (run / "scenario.yaml").read_text() if (run / "scenario.yaml").is_file() else ""
    timing = (
        "<p><b>Timing only</b>: the schedule ran without training, so there is no accuracy.</p>"
        if s.get("timing_only")
        else ""
    )
    interrupted = (
        "<p><b>Interrupted</b>: the figures cover the run up to that point.</p>"
        if s.get("interrupted")
        else ""
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(s["name"])}: mhd-sim report</title>
<style>{STYLE}</style></head><body>
<h1>{html.escape(s["name"])}</h1>
<p class="muted">algorithm {html.escape(s["algorithm"])}, seed {s["seed"]}, {
        len(s["agents"])
    } agents;
run directory {html.escape(str(run))}</p>{timing}{interrupted}
<h2>Final accuracy (mean over agents)</h2>{_table(["head", "private acc", "shared acc"], heads)}
<h2>Totals</h2>{_table(["", ""], totals)}
<h2>Figures</h2>{figures}
<h2>Agents</h2>{
        _table(
            [
                "agent",
                "group",
                "speed (FLOP/s)",
                "steps",
                "messages sent",
                "MB sent",
                "online",
                "private acc (head 0)",
                f"shared acc (head {best})",
            ],
            agents,
        )
    }
<h2>Scenario</h2><pre>{html.escape(scenario)}</pre>
</body></html>
"""
    out = Path(out) if out else run / "report.html"
    out.write_text(page)
    return out
