"""The report's plots, each drawn twice from the same data: a PNG (matplotlib) and an interactive figure (plotly)
inside ``index.html``, whose JavaScript is embedded once so the page opens offline.

    top1_vs_macs, top1_vs_params   the front highlighted, dominated trials and pruned ones dimmed, the baseline and
    (top1_vs_latency)              evaluated paper variants marked (hover: the ARCH); latency where it was measured
    (latency_vs_macs)              measured latency against MACs: what the MACs count misses
    hypervolume                    hypervolume of the front so far vs trial number
    placement_heatmap              blocks x choices: how often each choice appears on the front
    parallel_choices               per-block choices of every complete trial, coloured by top-1
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

from . import ReportData, baseline_latency, fmt, timed_latency
from ..models.arch import choice_rank
from ..search.records import COMPLETE, PRUNED

FRONT_COLOUR, DOMINATED_COLOUR, PRUNED_COLOUR, BASELINE_COLOUR = "#d62728", "#7f7f7f", "#bbbbbb", "#000000"
COST_AXES = {"macs": "MACs", "params": "parameters", "latency_ms": "latency"}


def _cost_axes(data: ReportData) -> dict[str, str]:
    """Column -> label of the accuracy-vs-cost plots: MACs, params, and latency where the run measured it."""
    return {c: label for c, label in COST_AXES.items() if c != "latency_ms" or timed_latency(data.table)}


def _plot_name(column: str) -> str:
    return f"top1_vs_{column.removesuffix('_ms')}"


def _axis_title(data: ReportData, column: str) -> str:
    if column == "latency_ms":
        latency = data.config.latency
        return f"latency (ms per image, batch {latency.batch_size}, {latency.device} device)"
    return f"{COST_AXES[column]} ({data.config.cost_convention} convention)"


def _baseline_cost(data: ReportData, column: str) -> float | None:
    """The baseline's cost: counted for MACs and params (run.json), measured for latency (None if never timed)."""
    if column != "latency_ms":
        return getattr(data.facts, f"baseline_{column}")
    return baseline_latency(data.table, data.facts)


def _choice_key(choice: str) -> tuple[int, int]:
    """Axis order of per-block choices: none, then inserts, then replaces, each by g."""
    return choice_rank(choice)


def _choice_order(data: ReportData, block: str) -> list[str]:
    return sorted(data.table[block].dropna().astype(str).unique(), key=_choice_key)


def _scatter_groups(data: ReportData) -> dict[str, pd.DataFrame]:
    table = data.table
    complete = table[(table["status"] == COMPLETE) & table["top1"].notna()].drop_duplicates("arch")
    on_front = complete["number"].isin(data.front["number"])
    return {"pruned": table[(table["status"] == PRUNED) & table["top1"].notna()],
            "dominated": complete[~on_front], "front": data.front}


def placement_frequencies(data: ReportData) -> pd.DataFrame:
    """blocks x choices: the share of the front that made each choice at each block."""
    columns = sorted({c for b in data.blocks for c in _choice_order(data, b)}, key=_choice_key)
    counts = pd.DataFrame(0.0, index=[b.replace("block_", "block ") for b in data.blocks], columns=columns)
    for block in data.blocks:
        shares = data.front[block].astype(str).value_counts(normalize=True)
        for choice, share in shares.items():
            counts.loc[block.replace("block_", "block "), choice] = share
    return counts


# --- matplotlib ----------------------------------------------------------------------------------------------

def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display on servers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    _pyplot().close(fig)


def write_pngs(data: ReportData, folder: Path) -> None:
    import matplotlib.ticker

    plt = _pyplot()

    def save(fig, name: str) -> None:
        _save(fig, folder / f"{name}.png")

    groups = _scatter_groups(data)
    for cost, label in _cost_axes(data).items():
        fig, ax = plt.subplots(figsize=(7, 4.5))
        ax.scatter(groups["pruned"][cost], groups["pruned"]["top1"], marker="x", color=PRUNED_COLOUR, s=18,
                   label=f"pruned ({len(groups['pruned'])}, top-1 when stopped)")
        ax.scatter(groups["dominated"][cost], groups["dominated"]["top1"], color=DOMINATED_COLOUR, alpha=0.55,
                   s=22, label=f"dominated ({len(groups['dominated'])})")
        front = groups["front"].sort_values(cost)
        ax.scatter(front[cost], front["top1"], color=FRONT_COLOUR, s=34, zorder=3, label=f"Pareto set ({len(front)})")
        if cost == "macs" and len(front):
            ax.step(front[cost], front["top1"].cummax(), where="post", color=FRONT_COLOUR, alpha=0.5)
        _mark_baseline_mpl(ax, data, cost)
        for _, row in front[front["paper_variant"] != ""].iterrows():
            ax.annotate(row["paper_variant"], (row[cost], row["top1"]), fontsize=7, xytext=(4, 4),
                        textcoords="offset points")
        ax.xaxis.set_major_formatter(matplotlib.ticker.EngFormatter())
        ax.set_xlabel(_axis_title(data, cost))
        ax.set_ylabel("top-1 accuracy (%)")
        ax.set_title(f"{data.name}: top-1 vs {label}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        save(fig, _plot_name(cost))

    if timed_latency(data.table):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        timed = _timed(data)
        ax.scatter(timed["macs"], timed["latency_ms"], c=timed["top1"], cmap="viridis", s=24, alpha=0.8)
        front = timed[timed["number"].isin(data.front["number"])]
        ax.scatter(front["macs"], front["latency_ms"], facecolors="none", edgecolors=FRONT_COLOUR, s=70,
                   label=f"Pareto set ({len(front)})")
        ax.xaxis.set_major_formatter(matplotlib.ticker.EngFormatter())
        ax.set_xlabel(_axis_title(data, "macs"))
        ax.set_ylabel(_axis_title(data, "latency_ms"))
        ax.set_title(f"{data.name}: measured latency vs MACs (colour: top-1)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        save(fig, "latency_vs_macs")

    fig, ax = plt.subplots(figsize=(7, 3.5))
    history = data.hypervolume_history
    ax.step(history["number"], history["hypervolume"], where="post", color=FRONT_COLOUR)
    ax.set_xlabel("trial number")
    ax.set_ylabel("hypervolume (normalised)")
    ax.set_title(f"{data.name}: hypervolume of the front so far")
    ax.grid(alpha=0.3)
    save(fig, "hypervolume")

    shares = placement_frequencies(data)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.7 * shares.shape[1] + 2), max(2.5, 0.4 * shares.shape[0] + 1.2)))
    image = ax.imshow(shares.to_numpy(), cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(shares.shape[1]), shares.columns)
    ax.set_yticks(range(shares.shape[0]), shares.index)
    for (i, j), share in np.ndenumerate(shares.to_numpy()):
        ax.text(j, i, f"{share:.0%}", ha="center", va="center", fontsize=7, color="white" if share < 0.6 else "black")
    fig.colorbar(image, ax=ax, label="share of the Pareto set")
    ax.set_title(f"{data.name}: choices on the front ({len(data.front)} trials)")
    save(fig, "placement_heatmap")

    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(data.blocks) + 3), 4))
    complete, axes = _parallel_axes(data)
    top1 = complete["top1"].to_numpy(dtype=float)
    low, high = (top1.min(), top1.max()) if len(top1) else (0.0, 100.0)
    scale = matplotlib.colors.Normalize(low, high if high > low else low + 1)
    accuracy_axis = scale(top1) if len(top1) else np.array([])
    for k in range(len(complete)):
        ax.plot(range(len(axes) + 1), [*(a["values"][k] for a in axes), accuracy_axis[k]],
                color=matplotlib.cm.viridis(scale(top1[k])), alpha=0.6, lw=1)
    for x, a in enumerate(axes):
        for tick, text in zip(a["tickvals"], a["ticktext"]):
            ax.annotate(text, (x, tick), fontsize=7, ha="left", xytext=(3, 0), textcoords="offset points")
    for value in (low, high):
        ax.annotate(f"{value:.1f}", (len(axes), scale(value)), fontsize=7, xytext=(3, 0), textcoords="offset points")
    ax.set_xticks(range(len(axes) + 1), [*(a["label"] for a in axes), "top-1 %"])
    ax.set_yticks([])
    for x in range(len(axes) + 1):
        ax.axvline(x, color="#444444", lw=0.6)
    fig.colorbar(matplotlib.cm.ScalarMappable(scale, "viridis"), ax=ax, label="top-1 (%)")
    ax.set_title(f"{data.name}: per-block choices of complete trials, coloured by top-1")
    save(fig, "parallel_choices")


def _timed(data: ReportData) -> pd.DataFrame:
    """Trials with a measured latency, one per ARCH."""
    return data.table[data.table["latency_ms"].notna()].drop_duplicates("arch")


def _mark_baseline_mpl(ax, data: ReportData, cost: str) -> None:
    value = _baseline_cost(data, cost)
    if value is None:
        return
    if data.baseline_top1 is not None:
        ax.scatter([value], [data.baseline_top1], marker="*", s=160, color=BASELINE_COLOUR, zorder=4,
                   label="baseline (no ULSAM)")
    else:
        ax.axvline(value, color=BASELINE_COLOUR, ls="--", lw=1, label="baseline cost (not trained)")


def _parallel_axes(data: ReportData) -> tuple[pd.DataFrame, list[dict]]:
    """Complete trials and, per block, their choice as an axis position (0..1) with tick labels."""
    complete = data.table[(data.table["status"] == COMPLETE) & data.table["top1"].notna()].drop_duplicates("arch")
    axes = []
    for block in data.blocks:
        order = _choice_order(data, block)
        position = {c: (i / (len(order) - 1) if len(order) > 1 else 0.5) for i, c in enumerate(order)}
        axes.append({"label": block.replace("block_", "block "),
                     "values": complete[block].astype(str).map(position).to_numpy(),
                     "tickvals": list(position.values()), "ticktext": list(position)})
    return complete, axes


# --- plotly and the page -------------------------------------------------------------------------------------

def figures(data: ReportData) -> dict[str, object]:
    import plotly.graph_objects as go

    figs = {}
    groups = _scatter_groups(data)
    for cost, label in _cost_axes(data).items():
        fig = go.Figure()
        for name, frame, style in (
                ("pruned", groups["pruned"], {"color": PRUNED_COLOUR, "symbol": "x", "size": 7}),
                ("dominated", groups["dominated"], {"color": DOMINATED_COLOUR, "size": 8, "opacity": 0.6}),
                ("Pareto set", groups["front"].sort_values(cost), {"color": FRONT_COLOUR, "size": 10})):
            fig.add_trace(go.Scatter(
                x=frame[cost], y=frame["top1"], mode="markers" if name != "Pareto set" else "markers+lines",
                name=f"{name} ({len(frame)})", marker=style, line={"shape": "hv", "width": 1},
                customdata=np.stack([frame["arch"], frame["number"]], axis=-1) if len(frame) else None,
                hovertemplate="%{customdata[0]}<br>trial %{customdata[1]}<br>top-1 %{y:.2f}%<br>"
                              + label + " %{x:,}<extra></extra>"))
        value = _baseline_cost(data, cost)
        if value is not None and data.baseline_top1 is not None:
            fig.add_trace(go.Scatter(x=[value], y=[data.baseline_top1], mode="markers", name="baseline (no ULSAM)",
                                     marker={"symbol": "star", "size": 16, "color": BASELINE_COLOUR},
                                     hovertext=[data.facts.baseline_arch], hoverinfo="text+x+y"))
        elif value is not None:
            fig.add_vline(x=value, line_dash="dash", annotation_text="baseline cost (not trained)")
        variants = groups["front"][groups["front"]["paper_variant"] != ""]
        for _, row in variants.iterrows():
            fig.add_annotation(x=row[cost], y=row["top1"], text=row["paper_variant"], showarrow=True, arrowsize=0.5,
                               font={"size": 10})
        fig.update_layout(title=f"top-1 vs {label}", xaxis_title=_axis_title(data, cost),
                          yaxis_title="top-1 (%)", template="plotly_white", height=460)
        figs[_plot_name(cost)] = fig

    if timed_latency(data.table):
        timed = _timed(data)
        on_front = timed["number"].isin(data.front["number"])
        fig = go.Figure(go.Scatter(
            x=timed["macs"], y=timed["latency_ms"], mode="markers", name="timed trials",
            marker={"color": timed["top1"], "colorscale": "Viridis", "showscale": True, "colorbar": {"title": "top-1"},
                    "size": 9, "line": {"color": np.where(on_front, FRONT_COLOUR, "rgba(0,0,0,0)"), "width": 2}},
            customdata=np.stack([timed["arch"], timed["number"]], axis=-1),
            hovertemplate="%{customdata[0]}<br>trial %{customdata[1]}<br>%{y:.3g} ms per image<br>MACs %{x:,}"
                          "<extra></extra>"))
        fig.update_layout(title="measured latency vs MACs (colour: top-1; ringed: Pareto set)",
                          xaxis_title=_axis_title(data, "macs"), yaxis_title=_axis_title(data, "latency_ms"),
                          template="plotly_white", height=460)
        figs["latency_vs_macs"] = fig

    history = data.hypervolume_history
    fig = go.Figure(go.Scatter(x=history["number"], y=history["hypervolume"], mode="lines+markers",
                               line={"shape": "hv", "color": FRONT_COLOUR}, name="hypervolume"))
    fig.update_layout(title="hypervolume of the front so far", xaxis_title="trial number",
                      yaxis_title="hypervolume (normalised)", template="plotly_white", height=360)
    figs["hypervolume"] = fig

    shares = placement_frequencies(data)
    fig = go.Figure(go.Heatmap(z=shares.to_numpy(), x=list(shares.columns), y=list(shares.index), zmin=0, zmax=1,
                               colorscale="Viridis", text=np.vectorize(lambda v: f"{v:.0%}")(shares.to_numpy()),
                               texttemplate="%{text}", colorbar={"title": "share"}))
    fig.update_layout(title=f"choices on the Pareto set ({len(data.front)} trials)", template="plotly_white",
                      height=max(300, 40 * len(shares) + 140), yaxis={"autorange": "reversed"})
    figs["placement_heatmap"] = fig

    complete, axes = _parallel_axes(data)
    dimensions = [{"label": a["label"], "values": a["values"], "tickvals": a["tickvals"], "ticktext": a["ticktext"],
                   "range": [0, 1]} for a in axes]
    dimensions.append({"label": "top-1 %", "values": complete["top1"].to_numpy()})
    fig = go.Figure(go.Parcoords(line={"color": complete["top1"].to_numpy(), "colorscale": "Viridis",
                                       "showscale": True, "colorbar": {"title": "top-1"}}, dimensions=dimensions))
    fig.update_layout(title="per-block choices of complete trials, coloured by top-1", height=420)
    figs["parallel_choices"] = fig
    return figs


def write_html(data: ReportData, info: dict, others: pd.DataFrame, path: Path, extra: str = "") -> None:
    """One self-contained page: summary, plots, the top of the front with commands, the rest, ``extra`` (an
    ablation's section), the config."""
    from plotly.offline import get_plotlyjs

    sections = [f'<div class="plot" id="plot-{name}">{fig.to_html(full_html=False, include_plotlyjs=False)}</div>'
                for name, fig in figures(data).items()]
    counts = ", ".join(f"{n} {s.lower()}" for s, n in info["counts"].items())
    rows = "".join(
        f"<tr><td>{int(r['number'])}{' (knee)' if r['number'] == data.knee else ''}</td>"
        f"<td><code>{html.escape(r['arch'])}</code> {html.escape(r['paper_variant'])}</td>"
        f"<td>{r['top1']:.2f}</td><td>{int(r['macs']):,}</td><td>{int(r['params']):,}</td>"
        f"<td>{fmt(r['d_top1'], signed=True)}</td><td>{fmt(r['d_macs_pct'], signed=True)}</td>"
        f"<td>{fmt(r['d_params_pct'], signed=True)}</td>"
        f"<td><code>{html.escape(r['command'])}</code></td></tr>"
        for _, r in data.front.sort_values("top1", ascending=False).head(20).iterrows())
    rest = "".join(f"<tr><td>{int(r['number'])}</td><td>{r['status']}</td><td><code>{html.escape(r['arch'])}</code>"
                   f"</td><td>{html.escape(str(r['reason']))}</td></tr>" for _, r in others.iterrows())
    reference = ", ".join(f"{o} {v:,.4g}" for o, v in data.reference.items())
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ulsam-search report: {html.escape(data.name)}</title>
<script type="text/javascript">{get_plotlyjs()}</script>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}} table{{border-collapse:collapse;
font-size:13px}} td,th{{border:1px solid #ddd;padding:3px 6px;text-align:left}} code{{font-size:12px}}
pre{{background:#f6f6f6;padding:1em;overflow:auto}}</style></head><body>
<h1>ulsam-search report: {html.escape(data.name)}</h1>
<p>{info['trials']} of {info['n_trials']} trials ({counts}). Pareto set: {len(data.front)} trials.
Hypervolume {data.hypervolume:.4f} (reference point {html.escape(reference)}; objectives normalised so the
reference is 1). Baseline <code>{html.escape(data.facts.baseline_arch)}</code>: {data.facts.baseline_macs:,} MACs,
{data.facts.baseline_params:,} params, top-1 {'n/a' if data.baseline_top1 is None else f'{data.baseline_top1:.2f}'}.</p>
{''.join(sections)}
<h2>Top of the Pareto set (by top-1)</h2>
<table><tr><th>#</th><th>ARCH</th><th>top-1 %</th><th>MACs</th><th>params</th><th>Δ top-1</th><th>Δ MACs %</th>
<th>Δ params %</th><th>reproduce</th></tr>{rows}</table>
<h2>Not on the front</h2>
<table><tr><th>#</th><th>status</th><th>ARCH</th><th>reason</th></tr>{rest}</table>
{extra}
<h2>Config</h2><pre>{html.escape(data.config_text)}</pre>
</body></html>
"""
    path.write_text(page)


# --- ablations -----------------------------------------------------------------------------------------------

def _ablation_series(stats: pd.DataFrame):
    """(baseline row, [(row label, its cells sorted by g)]) of the statistics table."""
    baseline = stats.iloc[0]
    cells = stats.iloc[1:]
    return baseline, [(label, group.sort_values("groups")) for label, group in cells.groupby("row", sort=False)]


def write_ablation_pngs(stats: pd.DataFrame, name: str, folder: Path) -> None:
    plt = _pyplot()
    baseline, rows = _ablation_series(stats)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if baseline["n"]:
        ax.axhline(baseline["top1_mean"], color=BASELINE_COLOUR, lw=1, label="baseline (mean)")
        if not np.isnan(baseline["top1_ci_low"]):
            ax.axhspan(baseline["top1_ci_low"], baseline["top1_ci_high"], color=BASELINE_COLOUR, alpha=0.1,
                       label="baseline 95% CI")
    for label, cells in rows:
        done = cells[cells["n"] > 0]
        errors = np.nan_to_num(np.vstack([done["top1_mean"] - done["top1_ci_low"],
                                          done["top1_ci_high"] - done["top1_mean"]]))
        ax.errorbar(done["groups"], done["top1_mean"], yerr=errors, marker="o", capsize=3, label=label)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(stats["groups"].dropna().unique()), [f"{int(g)}" for g in sorted(stats["groups"].dropna().unique())])
    ax.set_xlabel("subspaces g")
    ax.set_ylabel("top-1 (%), mean and 95% CI over seeds")
    ax.set_title(f"{name}: top-1 vs g")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best", ncol=2)
    _save(fig, folder / "ablation_top1_vs_g.png")

    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(rows) + 3), 4.5))
    groups = sorted(stats["groups"].dropna().unique())
    width = 0.8 / max(1, len(groups))
    for k, g in enumerate(groups):
        cells = [cells[cells["groups"] == g] for _, cells in rows]
        means = [c["d_top1"].iloc[0] if len(c) and "d_top1" in c else np.nan for c in cells]
        low = [c["d_top1_ci_low"].iloc[0] if len(c) and "d_top1_ci_low" in c else np.nan for c in cells]
        high = [c["d_top1_ci_high"].iloc[0] if len(c) and "d_top1_ci_high" in c else np.nan for c in cells]
        errors = np.nan_to_num(np.vstack([np.subtract(means, low), np.subtract(high, means)]))
        ax.bar(np.arange(len(rows)) + (k - (len(groups) - 1) / 2) * width, np.nan_to_num(means), width,
               yerr=errors, capsize=2, label=f"g={int(g)}")
    ax.axhline(0, color=BASELINE_COLOUR, lw=0.8)
    ax.set_xticks(range(len(rows)), [label for label, _ in rows], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("Δ top-1 vs baseline (points), paired, 95% CI")
    ax.set_title(f"{name}: Δ top-1 per placement")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    _save(fig, folder / "ablation_delta_top1.png")


def ablation_figures(stats: pd.DataFrame) -> dict[str, object]:
    import plotly.graph_objects as go

    baseline, rows = _ablation_series(stats)
    fig = go.Figure()
    for label, cells in rows:
        done = cells[cells["n"] > 0]
        fig.add_trace(go.Scatter(x=done["groups"], y=done["top1_mean"], mode="lines+markers", name=label,
                                 error_y={"type": "data", "symmetric": False,
                                          "array": np.nan_to_num(done["top1_ci_high"] - done["top1_mean"]),
                                          "arrayminus": np.nan_to_num(done["top1_mean"] - done["top1_ci_low"])},
                                 customdata=done["arch"], hovertemplate="%{customdata}<br>g=%{x}<br>top-1 %{y:.2f}"))
    if baseline["n"]:
        fig.add_hline(y=baseline["top1_mean"], line_dash="dash", annotation_text="baseline")
    groups = sorted(int(g) for g in stats["groups"].dropna().unique())
    fig.update_layout(title="top-1 vs g (mean, 95% CI over seeds)",
                      xaxis={"type": "log", "title": "g", "tickvals": groups, "ticktext": [str(g) for g in groups]},
                      yaxis_title="top-1 (%)", template="plotly_white", height=440)
    figures = {"ablation_top1_vs_g": fig}
    fig = go.Figure()
    for g in sorted(stats["groups"].dropna().unique()):
        cells = stats[(stats["groups"] == g)]
        if "d_top1" in cells:
            fig.add_trace(go.Bar(x=cells["row"], y=cells["d_top1"], name=f"g={int(g)}",
                                 error_y={"type": "data", "symmetric": False,
                                          "array": np.nan_to_num(cells["d_top1_ci_high"] - cells["d_top1"]),
                                          "arrayminus": np.nan_to_num(cells["d_top1"] - cells["d_top1_ci_low"])}))
    fig.update_layout(title="Δ top-1 vs baseline per placement (paired, 95% CI)", barmode="group",
                      yaxis_title="Δ top-1 (points)", template="plotly_white", height=440)
    figures["ablation_delta_top1"] = fig
    return figures
