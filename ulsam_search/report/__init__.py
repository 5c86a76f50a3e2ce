"""Pareto reports: ``reports/<name>/`` from a run directory, while it runs or after it ends.

    pareto.csv, pareto.md   the front over the configured objectives (feasible COMPLETE trials), sorted by MACs,
                            with deltas against the baseline backbone; the trials that cannot be on it, with reasons
    trials.csv              every trial of the run
    summary.json            counts per status, hypervolume and its reference point, best per objective, the knee
    *.png, index.html       the figures (``plots``); the page embeds plotly's JavaScript and works offline
    ablation.csv, .md       a study's cell statistics and tables (``ulsam-search ablate``), with two more figures

The stages, each a module: ``collect`` (read and check the run, derive everything once), ``pareto`` (reference
point, hypervolume, knee), ``text`` (tables, markdown, summary.json), ``plots`` (one module per figure), ``html``
(the page) and ``write`` (the files, swapped in whole).
"""

from ..search.records import knee_point
from .collect import ReportData, collect, load_run, read_trials
from .pareto import hypervolume, hypervolume_history, normalised_losses, reference_point
from .write import write_report

__all__ = ["ReportData", "collect", "hypervolume", "hypervolume_history", "knee_point", "load_run",
           "normalised_losses", "read_trials", "reference_point", "write_report"]
