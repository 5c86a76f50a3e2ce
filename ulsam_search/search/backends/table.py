"""Tabular benchmarks: every architecture of a small space trained once per seed, stored epoch by epoch in a CSV.

``ulsam-search bench build-table`` makes one (``benchmarks/build_table.py``); a search config with
``backend: {name: table, table: PATH}`` then answers its trials from the table instead of training them, through
the same Ray Tune + Optuna runner (results epoch by epoch, so ``mo-asha`` works too). A whole search takes seconds,
so samplers and schedulers can be compared over many seeds on equal terms.

    arch, seed, epoch, top1, top5, val_loss, train_seconds, macs, params, latency_ms     one row per epoch
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ..._io import read_csv, require_columns, require_numbers
from ...errors import InvalidInput
from ...train import EpochMetrics
from .base import TrialRun

if TYPE_CHECKING:
    from ...config import SearchConfig
    from ..space import SearchSpace
    from ..trial import TrialJob

TABLE_COLUMNS = ("arch", "seed", "epoch", "top1", "top5", "val_loss", "train_seconds", "macs", "params",
                 "latency_ms")


@dataclass(frozen=True)
class TabularTrial:
    """What the table recorded for one (ARCH, seed): its epochs in order, and the ARCH's measured latency."""

    epochs: tuple[EpochMetrics, ...]
    latency_ms: float


class Table:
    """A tabular benchmark, indexed by (ARCH, seed)."""

    def __init__(self, frame: pd.DataFrame, source: str) -> None:
        self.frame, self.source = frame, source
        self.trials = {key: rows.sort_values("epoch") for key, rows in frame.groupby(["arch", "seed"], sort=False)}
        self.archs = frozenset(frame["arch"])
        self.seeds = tuple(sorted(int(s) for s in frame["seed"].unique()))
        self.epochs = int(frame.groupby(["arch", "seed"])["epoch"].max().min())  # every trial has at least these

    def answer(self, arch: str, seed: int, epochs: int) -> TabularTrial:
        """The first ``epochs`` epochs the table holds for ``arch`` trained with ``seed``."""
        rows = self.trials.get((arch, seed))
        if rows is None:
            raise LookupError(f"{arch} with seed {seed} is not in the table {self.source}")
        if len(rows) < epochs:
            raise LookupError(f"the table {self.source} holds {len(rows)} epochs of {arch}, the budget asks {epochs}")
        records = tuple(EpochMetrics(epoch=int(r.epoch), train_loss=math.nan, val_loss=float(r.val_loss),
                                     top1=float(r.top1), top5=float(r.top5), lr=math.nan,
                                     train_seconds=float(r.train_seconds), images_per_second=math.nan)
                        for r in rows.head(epochs).itertuples())
        return TabularTrial(records, float(rows["latency_ms"].iloc[0]))


def read_table(path: str | os.PathLike) -> Table:
    """Read and check a tabular benchmark; a missing or malformed file is bad input naming what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"backend.table: {path} does not exist; build one with `ulsam-search bench build-table`")
    return check_table(read_csv(path, f"backend.table: {path} is not a tabular benchmark"), path)


def check_table(frame: pd.DataFrame, path: Path) -> Table:
    """``read_table``'s checks of a table already read from ``path`` (``bench seed-noise`` reads either a trials
    table or a tabular benchmark, and tells which by the columns)."""
    require_columns(frame, TABLE_COLUMNS, f"backend.table: {path} is not a tabular benchmark")
    if frame.empty:
        raise InvalidInput(f"backend.table: {path} is not a tabular benchmark (no rows)")
    require_numbers(frame, [c for c in TABLE_COLUMNS if c != "arch"],
                    f"backend.table: {path} has rows with missing or non-numeric values")
    repeated = frame[frame.duplicated(["arch", "seed", "epoch"])]
    if len(repeated):
        first = repeated.iloc[0]
        raise InvalidInput(f"backend.table: {path} has {len(repeated)} repeated (arch, seed, epoch) row(s), the first "
                           f"{first['arch']} seed {first['seed']} epoch {first['epoch']}")
    return Table(frame, str(path))


@lru_cache(maxsize=4)
def load_table(path: str) -> Table:
    """``read_table``, once per process (a Ray worker answers many trials from one table)."""
    return read_table(path)


class TableBackend:
    def check(self, config: SearchConfig, space: SearchSpace) -> None:
        """Refuse a table that cannot answer this config's trials (seeds, epochs, backbone and width)."""
        path = Path(config.backend.table)  # made absolute with the config's other paths
        table = read_table(path)
        seeds = config.study.seed_list if config.study else (config.training.seed,)
        missing_seeds = sorted(set(seeds) - set(table.seeds))
        if missing_seeds:
            raise InvalidInput(f"backend.table: {path.name} holds seeds {', '.join(map(str, table.seeds))}, not "
                               f"{', '.join(map(str, missing_seeds))} (training.seed / study.seeds)")
        if config.training.epochs > table.epochs:
            raise InvalidInput(f"backend.table: {path.name} holds {table.epochs} epochs per trial; training.epochs "
                               f"is {config.training.epochs}")
        if str(space.cheapest().baseline) not in table.archs:
            raise InvalidInput(f"backend.table: {path.name} does not hold {space.cheapest().baseline}: it was built "
                               f"for another backbone or width")

    def start(self, trial_config: dict, job: TrialJob, device: str, seed: int) -> TrialRun:
        recorded = load_table(job.table).answer(trial_config["arch"], seed, job.config.training.epochs)
        return TrialRun(iter(recorded.epochs), lambda: recorded.latency_ms)
