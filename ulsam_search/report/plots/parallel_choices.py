"""parallel_choices: the per-block choices of every complete trial as parallel axes, coloured by top-1."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..collect import ReportData
from ._common import block_label, choice_order, complete_trials, pyplot


@dataclass(frozen=True)
class _Axis:
    label: str
    values: np.ndarray  # each trial's choice as a position in 0..1
    tickvals: list[float]
    ticktext: list[str]


@dataclass(frozen=True)
class _ParallelChoicesInfo:
    run: str
    axes: list[_Axis]  # one per block
    top1: np.ndarray  # per complete trial


def _get_parallel_choices_info(data: ReportData) -> _ParallelChoicesInfo:
    complete = complete_trials(data)
    axes = []
    for block in data.blocks:
        order = choice_order(data, block)
        position = {c: (i / (len(order) - 1) if len(order) > 1 else 0.5) for i, c in enumerate(order)}
        axes.append(_Axis(block_label(block), complete[block].astype(str).map(position).to_numpy(),
                          list(position.values()), list(position)))
    return _ParallelChoicesInfo(data.name, axes, complete["top1"].to_numpy(dtype=float))


def plotly_figure(info: _ParallelChoicesInfo):
    import plotly.graph_objects as go

    dimensions = [{"label": a.label, "values": a.values, "tickvals": a.tickvals, "ticktext": a.ticktext,
                   "range": [0, 1]} for a in info.axes]
    dimensions.append({"label": "top-1 %", "values": info.top1})
    fig = go.Figure(go.Parcoords(line={"color": info.top1, "colorscale": "Viridis", "showscale": True,
                                       "colorbar": {"title": "top-1"}}, dimensions=dimensions))
    fig.update_layout(title="per-block choices of complete trials, coloured by top-1", height=420)
    return fig


def matplotlib_figure(info: _ParallelChoicesInfo):
    import matplotlib

    axes, top1 = info.axes, info.top1
    fig, ax = pyplot().subplots(figsize=(max(5.0, 1.2 * len(axes) + 3), 4))
    low, high = (top1.min(), top1.max()) if len(top1) else (0.0, 100.0)
    scale = matplotlib.colors.Normalize(low, high if high > low else low + 1)
    accuracy_axis = scale(top1) if len(top1) else np.array([])
    for k in range(len(top1)):
        ax.plot(range(len(axes) + 1), [*(a.values[k] for a in axes), accuracy_axis[k]],
                color=matplotlib.cm.viridis(scale(top1[k])), alpha=0.6, lw=1)
    for x, a in enumerate(axes):
        for tick, text in zip(a.tickvals, a.ticktext):
            ax.annotate(text, (x, tick), fontsize=7, ha="left", xytext=(3, 0), textcoords="offset points")
    for value in (low, high):
        ax.annotate(f"{value:.1f}", (len(axes), scale(value)), fontsize=7, xytext=(3, 0), textcoords="offset points")
    ax.set_xticks(range(len(axes) + 1), [*(a.label for a in axes), "top-1 %"])
    ax.set_yticks([])
    for x in range(len(axes) + 1):
        ax.axvline(x, color="#444444", lw=0.6)
    fig.colorbar(matplotlib.cm.ScalarMappable(scale, "viridis"), ax=ax, label="top-1 (%)")
    ax.set_title(f"{info.run}: per-block choices of complete trials, coloured by top-1")
    return fig
