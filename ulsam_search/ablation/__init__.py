"""Ablations: controlled studies of placement and subspace count, run by the search runner (``design``), and the
statistics of their cells (``stats``). Their tables and figures are the report's (``ulsam_search.report``)."""

from .design import PAPER_RESULTS, Cell, CellSpace, Row, ablation_config, build_cell_space, study_cells, study_rows
from .stats import cell_statistics

__all__ = ["PAPER_RESULTS", "Cell", "CellSpace", "Row", "ablation_config", "build_cell_space", "cell_statistics",
           "study_cells", "study_rows"]
