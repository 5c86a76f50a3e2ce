"""top1_vs_<cost>: accuracy against one cost, the front highlighted, dominated trials and pruned ones dimmed, the
baseline and the paper variants on the front marked (hover: the ARCH)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ...search.objectives import get_objective
from ...search.records import PRUNED
from ..collect import ReportData
from ._common import (BASELINE_COLOUR, DOMINATED_COLOUR, FRONT_COLOUR, PRUNED_COLOUR, axis_title, baseline_cost,
                      complete_trials, pyplot)


@dataclass(frozen=True)
class _Top1VsCostInfo:
    run: str
    column: str  # the cost's column
    label: str  # the cost's name in titles
    axis_title: str
    pruned: pd.DataFrame  # with the top-1 they had when stopped
    dominated: pd.DataFrame
    front: pd.DataFrame  # sorted by the cost
    staircase: bool  # draw the front's staircase (the PNG)
    baseline_cost: float | None
    baseline_top1: float | None
    baseline_arch: str

    @property
    def variants(self) -> pd.DataFrame:
        return self.front[self.front["paper_variant"] != ""]


def _get_top1_vs_cost_info(data: ReportData, objective: str, staircase: bool = False) -> _Top1VsCostInfo:
    table, cost = data.table, get_objective(objective)
    complete = complete_trials(data)
    return _Top1VsCostInfo(
        run=data.name, column=cost.column, label=cost.label, axis_title=axis_title(data, objective),
        pruned=table[(table["status"] == PRUNED) & table["top1"].notna()],
        dominated=complete[~complete["number"].isin(data.front["number"])],
        front=data.front.sort_values(cost.column), staircase=staircase,
        baseline_cost=baseline_cost(data, objective), baseline_top1=data.baseline_top1,
        baseline_arch=data.facts.baseline_arch)


def plotly_figure(info: _Top1VsCostInfo):
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, frame, style in (
            ("pruned", info.pruned, {"color": PRUNED_COLOUR, "symbol": "x", "size": 7}),
            ("dominated", info.dominated, {"color": DOMINATED_COLOUR, "size": 8, "opacity": 0.6}),
            ("Pareto set", info.front, {"color": FRONT_COLOUR, "size": 10})):
        fig.add_trace(go.Scatter(
            x=frame[info.column], y=frame["top1"], mode="markers" if name != "Pareto set" else "markers+lines",
            name=f"{name} ({len(frame)})", marker=style, line={"shape": "hv", "width": 1},
            customdata=np.stack([frame["arch"], frame["number"]], axis=-1) if len(frame) else None,
            hovertemplate="%{customdata[0]}<br>trial %{customdata[1]}<br>top-1 %{y:.2f}%<br>"
                          + info.label + " %{x:,}<extra></extra>"))
    if info.baseline_cost is not None and info.baseline_top1 is not None:
        fig.add_trace(go.Scatter(x=[info.baseline_cost], y=[info.baseline_top1], mode="markers",
                                 name="baseline (no ULSAM)",
                                 marker={"symbol": "star", "size": 16, "color": BASELINE_COLOUR},
                                 hovertext=[info.baseline_arch], hoverinfo="text+x+y"))
    elif info.baseline_cost is not None:
        fig.add_vline(x=info.baseline_cost, line_dash="dash", annotation_text="baseline cost (not trained)")
    for _, row in info.variants.iterrows():
        fig.add_annotation(x=row[info.column], y=row["top1"], text=row["paper_variant"], showarrow=True,
                           arrowsize=0.5, font={"size": 10})
    fig.update_layout(title=f"top-1 vs {info.label}", xaxis_title=info.axis_title, yaxis_title="top-1 (%)",
                      template="plotly_white", height=460)
    return fig


def matplotlib_figure(info: _Top1VsCostInfo):
    import matplotlib.ticker

    fig, ax = pyplot().subplots(figsize=(7, 4.5))
    cost, front = info.column, info.front
    ax.scatter(info.pruned[cost], info.pruned["top1"], marker="x", color=PRUNED_COLOUR, s=18,
               label=f"pruned ({len(info.pruned)}, top-1 when stopped)")
    ax.scatter(info.dominated[cost], info.dominated["top1"], color=DOMINATED_COLOUR, alpha=0.55, s=22,
               label=f"dominated ({len(info.dominated)})")
    ax.scatter(front[cost], front["top1"], color=FRONT_COLOUR, s=34, zorder=3, label=f"Pareto set ({len(front)})")
    if info.staircase and len(front):
        ax.step(front[cost], front["top1"].cummax(), where="post", color=FRONT_COLOUR, alpha=0.5)
    if info.baseline_cost is not None and info.baseline_top1 is not None:
        ax.scatter([info.baseline_cost], [info.baseline_top1], marker="*", s=160, color=BASELINE_COLOUR, zorder=4,
                   label="baseline (no ULSAM)")
    elif info.baseline_cost is not None:
        ax.axvline(info.baseline_cost, color=BASELINE_COLOUR, ls="--", lw=1, label="baseline cost (not trained)")
    for _, row in info.variants.iterrows():
        ax.annotate(row["paper_variant"], (row[cost], row["top1"]), fontsize=7, xytext=(4, 4),
                    textcoords="offset points")
    ax.xaxis.set_major_formatter(matplotlib.ticker.EngFormatter())
    ax.set_xlabel(info.axis_title)
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(f"{info.run}: top-1 vs {info.label}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return fig
