"""confirmed_top1_vs_macs: the confirm stage's top-1 (mean over new seeds, 95% CI bars) against MACs for the
baseline and each confirmed member, with the search's single run of each faint beside it: how far one run was
from the mean, and which differences the intervals leave standing. Only for runs with a confirm stage."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..collect import ReportData
from ._common import BASELINE_COLOUR, FRONT_COLOUR, PRUNED_COLOUR, axis_title, pyplot

_VERDICT_COLOURS = {"better": "#2ca02c", "worse": FRONT_COLOUR, "not distinguishable": "#1f77b4"}


@dataclass(frozen=True)
class _ConfirmedInfo:
    run: str
    stats: pd.DataFrame  # one row per ARCH, the baseline first: macs, top1_mean, CI, search_top1, verdict
    seeds: int
    epochs: int
    macs_title: str

    def colour(self, i: int) -> str:
        return BASELINE_COLOUR if i == 0 else _VERDICT_COLOURS.get(self.stats["verdict"].iloc[i], PRUNED_COLOUR)

    def label(self, i: int) -> str:
        """The legend's entry: the ARCH's placements (the backbone is the baseline's) and the verdict."""
        if i == 0:
            return "baseline"
        placements = self.stats["arch"].iloc[i].partition(":")[2]
        return f"{placements} ({self.stats['verdict'].iloc[i]})"


def applies(data: ReportData) -> bool:
    return data.confirmed is not None


def _get_confirmed_info(data: ReportData) -> _ConfirmedInfo:
    confirmed = data.confirmed
    return _ConfirmedInfo(data.name, confirmed.stats.reset_index(drop=True), len(confirmed.seeds), confirmed.epochs,
                          axis_title(data, "macs"))


def _errors(stats: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(below, above) the mean: half-widths of the 95% CI, 0 where a single seed gives none."""
    return (np.nan_to_num(stats["top1_mean"] - stats["top1_ci_low"]),
            np.nan_to_num(stats["top1_ci_high"] - stats["top1_mean"]))


def plotly_figure(info: _ConfirmedInfo):
    import plotly.graph_objects as go

    stats = info.stats
    below, above = _errors(stats)
    fig = go.Figure(go.Scatter(x=stats["macs"], y=stats["search_top1"], mode="markers", name="search (1 run each)",
                               marker={"color": PRUNED_COLOUR, "symbol": "circle-open", "size": 9},
                               hovertext=stats["arch"], hoverinfo="text+x+y"))
    for i in range(len(stats)):
        fig.add_trace(go.Scatter(x=[stats["macs"].iloc[i]], y=[stats["top1_mean"].iloc[i]], mode="markers",
                                 name=info.label(i),
                                 marker={"color": info.colour(i), "size": 11, "symbol": "star" if i == 0 else "circle"},
                                 error_y={"type": "data", "symmetric": False, "array": [above[i]],
                                          "arrayminus": [below[i]]}))
    fig.update_layout(title=f"confirmed top-1 ({info.seeds} new seeds, {info.epochs} epochs; 95% CI) vs MACs",
                      xaxis_title=info.macs_title, yaxis_title="top-1 (%)", template="plotly_white", height=460)
    return fig


def matplotlib_figure(info: _ConfirmedInfo):
    stats = info.stats
    below, above = _errors(stats)
    fig, ax = pyplot().subplots(figsize=(7, 4.5))
    ax.scatter(stats["macs"], stats["search_top1"], facecolors="none", edgecolors=PRUNED_COLOUR, s=40,
               label="search (1 run each)")
    for i in range(len(stats)):
        ax.errorbar(stats["macs"].iloc[i], stats["top1_mean"].iloc[i], yerr=[[below[i]], [above[i]]],
                    fmt="*" if i == 0 else "o", color=info.colour(i), markersize=11 if i == 0 else 7, capsize=4,
                    label=info.label(i))
    ax.legend(fontsize=7)
    ax.set_xlabel(info.macs_title)
    ax.set_ylabel("top-1 (%)")
    ax.set_title(f"{info.run}: confirmed top-1, {info.seeds} new seeds x {info.epochs} epochs (95% CI)")
    ax.grid(alpha=0.3)
    return fig
