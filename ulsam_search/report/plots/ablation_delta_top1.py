"""ablation_delta_top1: per row of a study, bars by g of the paired top-1 difference from the baseline with its
95% CI. Only for studies."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..collect import ReportData
from ._common import BASELINE_COLOUR, pyplot

_DELTA = ["d_top1", "d_top1_ci_low", "d_top1_ci_high"]


@dataclass(frozen=True)
class _DeltaTop1Info:
    run: str
    rows: list[str]  # row labels, the baseline left out
    bars: list[tuple[int, pd.DataFrame]]  # (g, its cells: row and the delta columns)
    paired: bool  # whether any cell was paired with the baseline (else there are no delta columns)


def applies(data: ReportData) -> bool:
    """A study with g columns (an archs study has none)."""
    return data.ablation is not None and bool(data.ablation["groups"].notna().any())


def _get_delta_top1_info(data: ReportData) -> _DeltaTop1Info:
    stats = data.ablation
    paired = "d_top1" in stats
    columns = ["row", *(_DELTA if paired else [])]
    return _DeltaTop1Info(data.name, list(stats.iloc[1:]["row"].unique()),
                          [(int(g), stats.loc[stats["groups"] == g, columns])
                           for g in sorted(stats["groups"].dropna().unique())], paired)


def plotly_figure(info: _DeltaTop1Info):
    import plotly.graph_objects as go

    fig = go.Figure()
    for g, cells in info.bars if info.paired else ():
        fig.add_trace(go.Bar(x=cells["row"], y=cells["d_top1"], name=f"g={g}",
                             error_y={"type": "data", "symmetric": False,
                                      "array": np.nan_to_num(cells["d_top1_ci_high"] - cells["d_top1"]),
                                      "arrayminus": np.nan_to_num(cells["d_top1"] - cells["d_top1_ci_low"])}))
    fig.update_layout(title="Δ top-1 vs baseline per placement (paired, 95% CI)", barmode="group",
                      yaxis_title="Δ top-1 (points)", template="plotly_white", height=440)
    return fig


def matplotlib_figure(info: _DeltaTop1Info):
    rows = info.rows
    fig, ax = pyplot().subplots(figsize=(max(6.0, 0.6 * len(rows) + 3), 4.5))
    width = 0.8 / max(1, len(info.bars))
    for k, (g, cells) in enumerate(info.bars):
        delta = cells.set_index("row").reindex(rows, columns=_DELTA)  # NaN where a row has no cell at g
        means, low, high = (delta[c].to_numpy(dtype=float) for c in _DELTA)
        errors = np.nan_to_num(np.vstack([means - low, high - means]))
        ax.bar(np.arange(len(rows)) + (k - (len(info.bars) - 1) / 2) * width, np.nan_to_num(means), width,
               yerr=errors, capsize=2, label=f"g={g}")
    ax.axhline(0, color=BASELINE_COLOUR, lw=0.8)
    ax.set_xticks(range(len(rows)), rows, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("Δ top-1 vs baseline (points), paired, 95% CI")
    ax.set_title(f"{info.run}: Δ top-1 per placement")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    return fig
