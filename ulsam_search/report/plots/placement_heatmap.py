"""placement_heatmap: blocks x choices, how often each choice appears on the front."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ...models.arch import choice_rank
from ..collect import ReportData
from ._common import block_label, choice_order, pyplot


@dataclass(frozen=True)
class _PlacementHeatmapInfo:
    run: str
    shares: pd.DataFrame  # blocks x choices: the share of the front that made each choice at each block
    front_size: int


def _get_placement_heatmap_info(data: ReportData) -> _PlacementHeatmapInfo:
    columns = sorted({c for b in data.blocks for c in choice_order(data, b)}, key=choice_rank)
    shares = pd.DataFrame(0.0, index=[block_label(b) for b in data.blocks], columns=columns)
    for block in data.blocks:
        for choice, share in data.front[block].astype(str).value_counts(normalize=True).items():
            shares.loc[block_label(block), choice] = share
    return _PlacementHeatmapInfo(data.name, shares, len(data.front))


def plotly_figure(info: _PlacementHeatmapInfo):
    import plotly.graph_objects as go

    shares = info.shares
    fig = go.Figure(go.Heatmap(z=shares.to_numpy(), x=list(shares.columns), y=list(shares.index), zmin=0, zmax=1,
                               colorscale="Viridis", text=[[f"{v:.0%}" for v in row] for row in shares.to_numpy()],
                               texttemplate="%{text}", colorbar={"title": "share"}))
    fig.update_layout(title=f"choices on the Pareto set ({info.front_size} trials)", template="plotly_white",
                      height=max(300, 40 * len(shares) + 140), yaxis={"autorange": "reversed"})
    return fig


def matplotlib_figure(info: _PlacementHeatmapInfo):
    shares = info.shares
    fig, ax = pyplot().subplots(figsize=(max(4.0, 0.7 * shares.shape[1] + 2), max(2.5, 0.4 * shares.shape[0] + 1.2)))
    image = ax.imshow(shares.to_numpy(), cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(shares.shape[1]), shares.columns)
    ax.set_yticks(range(shares.shape[0]), shares.index)
    for (i, j), share in np.ndenumerate(shares.to_numpy()):
        ax.text(j, i, f"{share:.0%}", ha="center", va="center", fontsize=7, color="white" if share < 0.6 else "black")
    fig.colorbar(image, ax=ax, label="share of the Pareto set")
    ax.set_title(f"{info.run}: choices on the front ({info.front_size} trials)")
    return fig
