"""What the figures share: colours, matplotlib's file-only backend, axis titles, the baseline's cost, block labels
and the order of per-block choices."""

from __future__ import annotations

import pandas as pd

from ...models.arch import choice_rank
from ...search.objectives import baseline_latency, get_objective
from ...search.records import COMPLETE
from ...search.space import PARAM_PREFIX
from ..collect import ReportData

FRONT_COLOUR, DOMINATED_COLOUR, PRUNED_COLOUR, BASELINE_COLOUR = "#d62728", "#7f7f7f", "#bbbbbb", "#000000"


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display on servers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def counted(objective: str) -> bool:
    """Whether a cost is counted before training (MACs, params) rather than measured (latency)."""
    return get_objective(objective).worst is None


def axis_title(data: ReportData, objective: str) -> str:
    """A cost axis: counted costs name the cost convention, a measured one how it was measured."""
    if not counted(objective):
        latency = data.config.latency
        return f"latency (ms per image, batch {latency.batch_size}, {latency.device} device)"
    return f"{get_objective(objective).label} ({data.config.cost_convention} convention)"


def baseline_cost(data: ReportData, objective: str) -> float | None:
    """The baseline's cost: counted ones from run.json, a measured one from the trial that timed it (None if none
    did)."""
    if counted(objective):
        return getattr(data.facts, f"baseline_{get_objective(objective).column}")
    return baseline_latency(data.table, data.facts)


def block_label(column: str) -> str:
    """``block_12`` -> ``block 12``."""
    return f"block {column.removeprefix(PARAM_PREFIX)}"


def choice_order(data: ReportData, block: str) -> list[str]:
    """The choices made at ``block`` in axis order: none, then inserts, then replaces, each by g."""
    return sorted(data.table[block].dropna().astype(str).unique(), key=choice_rank)


def complete_trials(data: ReportData) -> pd.DataFrame:
    """Complete trials with a top-1, one per ARCH."""
    table = data.table
    return table[(table["status"] == COMPLETE) & table["top1"].notna()].drop_duplicates("arch")
