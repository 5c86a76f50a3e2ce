"""ablation_top1_vs_g: a study's top-1 against g, a line per row (mean and 95% CI over seeds), the baseline's
mean and CI as a band. Only for studies."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..collect import ReportData
from ._common import BASELINE_COLOUR, pyplot


@dataclass(frozen=True)
class _Top1VsGInfo:
    run: str
    baseline: pd.Series  # the baseline's statistics (n, top1_mean, top1_ci_low, top1_ci_high)
    rows: list[tuple[str, pd.DataFrame]]  # (row label, its finished cells sorted by g)
    groups: list[int]  # every g of the study


def applies(data: ReportData) -> bool:
    """A study with g columns (an archs study has none)."""
    return data.ablation is not None and bool(data.ablation["groups"].notna().any())


def _get_top1_vs_g_info(data: ReportData) -> _Top1VsGInfo:
    stats = data.ablation
    rows = [(label, cells.sort_values("groups")) for label, cells in stats.iloc[1:].groupby("row", sort=False)]
    return _Top1VsGInfo(data.name, stats.iloc[0], [(label, cells[cells["n"] > 0]) for label, cells in rows],
                        sorted(int(g) for g in stats["groups"].dropna().unique()))


def plotly_figure(info: _Top1VsGInfo):
    import plotly.graph_objects as go

    fig = go.Figure()
    for label, done in info.rows:
        fig.add_trace(go.Scatter(x=done["groups"], y=done["top1_mean"], mode="lines+markers", name=label,
                                 error_y={"type": "data", "symmetric": False,
                                          "array": np.nan_to_num(done["top1_ci_high"] - done["top1_mean"]),
                                          "arrayminus": np.nan_to_num(done["top1_mean"] - done["top1_ci_low"])},
                                 customdata=done["arch"], hovertemplate="%{customdata}<br>g=%{x}<br>top-1 %{y:.2f}"))
    if info.baseline["n"]:
        fig.add_hline(y=info.baseline["top1_mean"], line_dash="dash", annotation_text="baseline")
    fig.update_layout(title="top-1 vs g (mean, 95% CI over seeds)",
                      xaxis={"type": "log", "title": "g", "tickvals": info.groups,
                             "ticktext": [str(g) for g in info.groups]},
                      yaxis_title="top-1 (%)", template="plotly_white", height=440)
    return fig


def matplotlib_figure(info: _Top1VsGInfo):
    fig, ax = pyplot().subplots(figsize=(7, 4.5))
    baseline = info.baseline
    if baseline["n"]:
        ax.axhline(baseline["top1_mean"], color=BASELINE_COLOUR, lw=1, label="baseline (mean)")
        if not np.isnan(baseline["top1_ci_low"]):
            ax.axhspan(baseline["top1_ci_low"], baseline["top1_ci_high"], color=BASELINE_COLOUR, alpha=0.1,
                       label="baseline 95% CI")
    for label, done in info.rows:
        errors = np.nan_to_num(np.vstack([done["top1_mean"] - done["top1_ci_low"],
                                          done["top1_ci_high"] - done["top1_mean"]]))
        ax.errorbar(done["groups"], done["top1_mean"], yerr=errors, marker="o", capsize=3, label=label)
    ax.set_xscale("log", base=2)
    ax.set_xticks(info.groups, [str(g) for g in info.groups])
    ax.set_xlabel("subspaces g")
    ax.set_ylabel("top-1 (%), mean and 95% CI over seeds")
    ax.set_title(f"{info.run}: top-1 vs g")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best", ncol=2)
    return fig
