"""latency_vs_macs: measured latency against MACs, coloured by top-1, the front ringed: what the MACs count
misses. Only for runs that measured latency."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ...search.objectives import get_objective
from ..collect import ReportData
from ._common import FRONT_COLOUR, axis_title, pyplot


@dataclass(frozen=True)
class _LatencyVsMacsInfo:
    run: str
    macs: str  # columns
    latency: str
    timed: pd.DataFrame  # trials with a measured latency, one per ARCH
    on_front: np.ndarray  # per timed trial
    macs_title: str
    latency_title: str


def applies(data: ReportData) -> bool:
    return data.latency_timed


def _get_latency_vs_macs_info(data: ReportData) -> _LatencyVsMacsInfo:
    latency = get_objective("latency").column
    timed = data.table[data.table[latency].notna()].drop_duplicates("arch")
    return _LatencyVsMacsInfo(run=data.name, macs=get_objective("macs").column, latency=latency, timed=timed,
                              on_front=timed["number"].isin(data.front["number"]).to_numpy(),
                              macs_title=axis_title(data, "macs"), latency_title=axis_title(data, "latency"))


def plotly_figure(info: _LatencyVsMacsInfo):
    import plotly.graph_objects as go

    timed = info.timed
    fig = go.Figure(go.Scatter(
        x=timed[info.macs], y=timed[info.latency], mode="markers", name="timed trials",
        marker={"color": timed["top1"], "colorscale": "Viridis", "showscale": True, "colorbar": {"title": "top-1"},
                "size": 9, "line": {"color": np.where(info.on_front, FRONT_COLOUR, "rgba(0,0,0,0)"), "width": 2}},
        customdata=np.stack([timed["arch"], timed["number"]], axis=-1),
        hovertemplate="%{customdata[0]}<br>trial %{customdata[1]}<br>%{y:.3g} ms per image<br>MACs %{x:,}"
                      "<extra></extra>"))
    fig.update_layout(title="measured latency vs MACs (colour: top-1; ringed: Pareto set)",
                      xaxis_title=info.macs_title, yaxis_title=info.latency_title, template="plotly_white",
                      height=460)
    return fig


def matplotlib_figure(info: _LatencyVsMacsInfo):
    import matplotlib.ticker

    fig, ax = pyplot().subplots(figsize=(7, 4.5))
    timed = info.timed
    ax.scatter(timed[info.macs], timed[info.latency], c=timed["top1"], cmap="viridis", s=24, alpha=0.8)
    front = timed[info.on_front]
    ax.scatter(front[info.macs], front[info.latency], facecolors="none", edgecolors=FRONT_COLOUR, s=70,
               label=f"Pareto set ({len(front)})")
    ax.xaxis.set_major_formatter(matplotlib.ticker.EngFormatter())
    ax.set_xlabel(info.macs_title)
    ax.set_ylabel(info.latency_title)
    ax.set_title(f"{info.run}: measured latency vs MACs (colour: top-1)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return fig
