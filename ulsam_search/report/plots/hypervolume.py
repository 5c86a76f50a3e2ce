"""hypervolume: the hypervolume of the front so far against the trial number (how the search progressed)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..collect import ReportData
from ._common import FRONT_COLOUR, pyplot


@dataclass(frozen=True)
class _HypervolumeHistoryInfo:
    run: str
    trial_numbers: np.ndarray
    values: np.ndarray


def _get_hypervolume_history_info(data: ReportData) -> _HypervolumeHistoryInfo:
    history = data.hypervolume_history
    return _HypervolumeHistoryInfo(data.name, history["number"].to_numpy(), history["hypervolume"].to_numpy())


def plotly_figure(info: _HypervolumeHistoryInfo):
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(x=info.trial_numbers, y=info.values, mode="lines+markers",
                               line={"shape": "hv", "color": FRONT_COLOUR}, name="hypervolume"))
    fig.update_layout(title="hypervolume of the front so far", xaxis_title="trial number",
                      yaxis_title="hypervolume (normalised)", template="plotly_white", height=360)
    return fig


def matplotlib_figure(info: _HypervolumeHistoryInfo):
    fig, ax = pyplot().subplots(figsize=(7, 3.5))
    ax.step(info.trial_numbers, info.values, where="post", color=FRONT_COLOUR)
    ax.set_xlabel("trial number")
    ax.set_ylabel("hypervolume (normalised)")
    ax.set_title(f"{info.run}: hypervolume of the front so far")
    ax.grid(alpha=0.3)
    return fig
