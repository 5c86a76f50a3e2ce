"""Progress of a training run on stderr: a rich bar per epoch in a terminal, one line per epoch in a log."""

from __future__ import annotations

from .settings import EpochMetrics


class EpochProgress:
    """Progress on stderr: a rich bar per epoch in a terminal, one line per epoch in a log; or nothing (``enabled``
    off). ``description`` (the data set) is printed first."""

    def __init__(self, enabled: bool, description: str) -> None:
        self.enabled, self.description = enabled, description
        self.console = self.progress = self.task = None

    def __enter__(self) -> EpochProgress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.console = Console(stderr=True)
            self.console.print(self.description)
            if self.console.is_terminal:
                self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                         TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(),
                                         console=self.console)
                self.progress.__enter__()
        return self

    def start_epoch(self, epoch: int, epochs: int, steps: int) -> None:
        if self.progress is not None:
            self.task = self.progress.add_task(f"epoch {epoch}/{epochs}", total=steps, loss="-")

    def advance(self, step: int, loss: float) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=step, loss=f"{loss:.4f}")

    def end_epoch(self, m: EpochMetrics) -> None:
        summary = (f"epoch {m.epoch}: top-1 {m.top1:.2f}% top-5 {m.top5:.2f}% val loss {m.val_loss:.4f} "
                   f"({m.train_seconds:.1f} s, {m.images_per_second:.0f} img/s)")
        if self.progress is not None:
            self.progress.update(self.task, description=summary, loss=f"{m.train_loss:.4f}")
        elif self.console is not None:
            self.console.print(f"{summary}, train loss {m.train_loss:.4f}", highlight=False)

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)
