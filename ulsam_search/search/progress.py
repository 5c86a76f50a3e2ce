"""The progress view on stderr: trial counts by status, the Pareto set and the time left."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

from .records import COMPLETE, FAILED, INFEASIBLE, PRUNED, pareto_set

if TYPE_CHECKING:
    from ..config import SearchConfig


class Progress:
    """A terminal gets a live table; a log (no terminal, where rich's live view would print only at the end) gets a
    line each time a trial finishes and the front's table once at the end. Disabled, it shows nothing.
    """

    def __init__(self, enabled: bool, config: SearchConfig) -> None:
        self.enabled, self.config = enabled, config
        self.started = time.perf_counter()
        self.console = self.live = self.view = None
        self.running = self.reported = 0

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.console import Console
            from rich.live import Live

            self.console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)  # logs: whole ARCHs
            if self.console.is_terminal:
                self.live = Live(console=self.console, refresh_per_second=2, transient=False)
                self.live.__enter__()
        return self

    def update(self, table, resumed_from: int, budget: int) -> None:
        """``budget``: the trials the run will hold (n_trials, plus the retries of failed ones)."""
        if self.console is None:
            return
        from rich.table import Table

        counts = {status: int((table["status"] == status).sum()) for status in (COMPLETE, PRUNED, FAILED, INFEASIBLE)}
        done = len(table)
        elapsed = time.perf_counter() - self.started
        new = done - resumed_from
        remaining = budget - done
        eta = f"{elapsed / new * remaining:.0f} s" if new > 0 and remaining > 0 else "-"
        front = pareto_set(table, self.config.objectives)
        title = (f"{self.config.name}: {done}/{budget} trials done, {self.running} running, "
                 f"{counts[COMPLETE]} complete, {counts[PRUNED]} pruned, {counts[FAILED]} failed, "
                 f"{counts[INFEASIBLE]} infeasible; Pareto set {len(front)}; elapsed {elapsed:.0f} s, ETA {eta}")
        self.view = Table(title=title, title_justify="left")
        for column in ("MACs", "params", "top-1 %", "ARCH"):
            self.view.add_column(column, justify="left" if column == "ARCH" else "right")
        for row in front.head(10).itertuples():
            self.view.add_row(f"{row.macs:,.0f}", f"{row.params:,.0f}", f"{row.top1:.2f}", row.arch)
        if self.live is not None:
            self.live.update(self.view)
        elif done > self.reported:
            self.reported = done
            self.console.print(title, highlight=False)

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)
        elif self.view is not None:
            self.console.print(self.view)

    def __getstate__(self) -> dict:  # Tune pickles the searcher with its experiment state
        return {**self.__dict__, "console": None, "live": None, "view": None}
