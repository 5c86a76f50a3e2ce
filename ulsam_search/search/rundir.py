"""A run directory: where each of its files lives, and the facts a run resolved when it started (``run.json``).

    runs/<name>/config.yaml   the frozen config          runs/<name>/optuna.log    Optuna JournalStorage
    runs/<name>/trials.csv    one row per finished trial  runs/<name>/ray/          Ray Tune experiment state
    runs/<name>/checkpoints/  per-trial training checkpoints (a resumed trial continues from its last epoch)
    runs/<name>/run.json      what the run resolved: input size, classes, small_input, the baseline's cost
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .._io import atomic_path
from ..errors import InvalidInput

STUDY_NAME = "ulsam-search"  # the one study in a run's optuna.log


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def trials(self) -> Path:
        return self.root / "trials.csv"

    @property
    def journal(self) -> Path:
        return self.root / "optuna.log"

    @property
    def ray(self) -> Path:
        return self.root / "ray"

    @property
    def facts(self) -> Path:
        return self.root / "run.json"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def latency(self) -> Path:
        return self.root / "latency.json"


@dataclass(frozen=True)
class RunFacts:
    """What a run resolved when it started (``run.json``): the data's shape and the baseline's cost."""

    input_size: int
    num_classes: int
    small_input: bool
    baseline_arch: str
    baseline_macs: int
    baseline_params: int

    def write(self, path: Path) -> None:
        with atomic_path(path) as temporary:
            temporary.write_text(json.dumps(self.__dict__, indent=2) + "\n")

    @classmethod
    def read(cls, path: Path) -> RunFacts:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as error:
            raise InvalidInput(f"{path}: unreadable run facts ({type(error).__name__}: {error})") from None
