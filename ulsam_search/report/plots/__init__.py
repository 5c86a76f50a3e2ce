"""The report's figures. Each is computed once from ``ReportData`` as a small info object and drawn from it twice:
a PNG (matplotlib) and an interactive figure (plotly) inside ``index.html``. ``FIGURES`` is the one list of them:
add a figure there and both the PNGs and the page show it.

    top1_vs_macs, top1_vs_params   the front highlighted, dominated trials and pruned ones dimmed, the baseline and
    (top1_vs_latency)              evaluated paper variants marked (hover: the ARCH); latency where it was measured
    (latency_vs_macs)              measured latency against MACs: what the MACs count misses
    hypervolume                    hypervolume of the front so far vs trial number
    placement_heatmap              blocks x choices: how often each choice appears on the front
    parallel_choices               per-block choices of every complete trial, coloured by top-1
    (confirmed_top1_vs_macs)       the confirm stage's mean top-1 with 95% CIs, the search's single runs faint
    (ablation_top1_vs_g)           a study's top-1 against g per row
    (ablation_delta_top1)          a study's paired difference from the baseline per row and g
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from ...search.objectives import get_objective
from ..collect import ReportData
from . import (ablation_delta_top1, ablation_top1_vs_g, confirmed_top1_vs_macs, hypervolume, latency_vs_macs,
               parallel_choices, placement_heatmap, top1_vs_cost)
from ._common import pyplot

FRONT, CONFIRMED, ABLATION = "front", "confirmed", "ablation"  # the page's sections


@dataclass(frozen=True)
class Figure:
    """One figure: where it goes, whether it applies to a report, its info, and the two renderers of that info."""

    name: str  # the PNG's stem and the page's plot id
    section: str  # FRONT, CONFIRMED or ABLATION
    info: Callable[[ReportData], object]
    plotly: Callable[[object], object]
    matplotlib: Callable[[object], object]
    applies: Callable[[ReportData], bool] = lambda data: True

    @property
    def png(self) -> str:
        return f"{self.name}.png"


def _top1_vs(objective: str, staircase: bool = False) -> Figure:
    """Top-1 against one cost objective; a measured cost only where the run measured it."""
    column = get_objective(objective).column
    return Figure(f"top1_vs_{objective}", FRONT, partial(top1_vs_cost._get_top1_vs_cost_info, objective=objective,
                                                          staircase=staircase),
                  top1_vs_cost.plotly_figure, top1_vs_cost.matplotlib_figure,
                  lambda data: column in data.table and bool(data.table[column].notna().any()))


FIGURES: tuple[Figure, ...] = (
    _top1_vs("macs", staircase=True),
    _top1_vs("params"),
    _top1_vs("latency"),
    Figure("latency_vs_macs", FRONT, latency_vs_macs._get_latency_vs_macs_info, latency_vs_macs.plotly_figure,
           latency_vs_macs.matplotlib_figure, latency_vs_macs.applies),
    Figure("hypervolume", FRONT, hypervolume._get_hypervolume_history_info, hypervolume.plotly_figure,
           hypervolume.matplotlib_figure),
    Figure("placement_heatmap", FRONT, placement_heatmap._get_placement_heatmap_info, placement_heatmap.plotly_figure,
           placement_heatmap.matplotlib_figure),
    Figure("parallel_choices", FRONT, parallel_choices._get_parallel_choices_info, parallel_choices.plotly_figure,
           parallel_choices.matplotlib_figure),
    Figure("confirmed_top1_vs_macs", CONFIRMED, confirmed_top1_vs_macs._get_confirmed_info,
           confirmed_top1_vs_macs.plotly_figure, confirmed_top1_vs_macs.matplotlib_figure, confirmed_top1_vs_macs.applies),
    Figure("ablation_top1_vs_g", ABLATION, ablation_top1_vs_g._get_top1_vs_g_info, ablation_top1_vs_g.plotly_figure,
           ablation_top1_vs_g.matplotlib_figure, ablation_top1_vs_g.applies),
    Figure("ablation_delta_top1", ABLATION, ablation_delta_top1._get_delta_top1_info,
           ablation_delta_top1.plotly_figure, ablation_delta_top1.matplotlib_figure, ablation_delta_top1.applies),
)


@dataclass(frozen=True)
class Drawn:
    """A figure that applies to a report, with its info computed once for both renderers."""

    figure: Figure
    info: object


def prepare(data: ReportData) -> list[Drawn]:
    """The figures of ``data`` in page order, each with its info."""
    return [Drawn(figure, figure.info(data)) for figure in FIGURES if figure.applies(data)]


def write_pngs(drawn: list[Drawn], folder: Path) -> None:
    """Every figure's PNG into ``folder``."""
    plt = pyplot()
    for item in drawn:
        fig = item.figure.matplotlib(item.info)
        fig.savefig(folder / item.figure.png, dpi=110, bbox_inches="tight")
        plt.close(fig)


def plotly_figures(drawn: list[Drawn], section: str) -> dict[str, object]:
    """Plot id -> plotly figure of one section of the page."""
    return {item.figure.name: item.figure.plotly(item.info) for item in drawn if item.figure.section == section}
