"""What the commands do, one stage after another: run or resume a search or an ablation, then report it.

The runner never imports the ablation stage: the space a run draws from is given to it (``_space_for``).
"""

from __future__ import annotations

import os

from .search import runner


def run_search(config, runs_dir: str | os.PathLike = "runs", *, progress: bool = True):
    """Run (or continue) the search or ablation ``config`` describes in ``runs_dir/<name>``; the trials table."""
    return runner.run_search(config, runs_dir, progress=progress)


def resume_search(run_dir: str | os.PathLike, *, progress: bool = True, address: str | None = None):
    """Continue the run in ``run_dir`` from its frozen config and Optuna journal."""
    return runner.resume_search(run_dir, progress=progress, address=address)
