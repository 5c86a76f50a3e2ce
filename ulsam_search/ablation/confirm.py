"""The confirm stage: retrain a search's selected front members and the baseline with new seeds at the final
budget, and say which differences hold beyond seed noise.

A search ranks architectures by one run each at a proxy budget, so its front mixes real differences with seed
noise, and its best members are the ones the noise favoured (the winner's curse). Confirming retrains them from
scratch with seeds the search did not use (the search's seed + 1, + 2, ...), the baseline with the same seeds, and
compares each member with the baseline seed by seed (``stats.compare_with_baseline``: paired t-test, Holm across
the members, a verdict). It runs as an ``archs`` study in ``runs/<name>/confirm/`` (its own config, Optuna journal
and Ray Tune experiment, so it resumes and never retrains a finished ARCH and seed); ``runs/<name>/confirm.csv``
holds one row per ARCH and seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .._io import atomic_path, read_csv, require_columns, require_numbers
from ..config import ConfirmConfig, SearchConfig
from ..errors import InvalidInput
from ..search.objectives import get_objective
from ..search.records import COMPLETE, crowding_distance, knee_point, pareto_mask, scaled_to_range
from .design import ablation_config
from .stats import ALPHA, BETTER, WORSE, compare_with_baseline

CONFIRM_DIR = "confirm"  # runs/<name>/confirm/: the confirm stage's own run directory
CONFIRM_CSV = "confirm.csv"
CONFIRM_COLUMNS = ("arch", "role", "seed", "epochs", "top1", "top5", "val_loss", "macs", "params", "latency_ms",
                   "status", "search_trial", "search_top1")
BASELINE, MEMBER = "baseline", "member"


def confirm_seeds(config: SearchConfig, count: int) -> tuple[int, ...]:
    """New seeds: the search's training seed + 1, + 2, ... (the search's own seed would favour its winners)."""
    return tuple(range(config.training.seed + 1, config.training.seed + 1 + count))


def _losses(frame: pd.DataFrame, objectives) -> np.ndarray:
    """The objectives as columns to minimise (accuracy negated)."""
    columns = [frame[get_objective(o).column].to_numpy(dtype=float) * (-1 if get_objective(o).direction == "max"
                                                                         else 1) for o in objectives]
    return np.column_stack(columns)


def confirmable(front: pd.DataFrame, baseline_arch: str) -> bool:
    """Whether the front holds an architecture besides the baseline."""
    return bool((front["arch"] != baseline_arch).any())


def select_members(front: pd.DataFrame, objectives, baseline_arch: str, top: int, select: str) -> list[str]:
    """The ``top`` front members (the baseline aside) to confirm, in order: ``front`` the most accurate first,
    ``knee`` the knee and then its nearest neighbours (each objective scaled to the front's range), ``crowding``
    the most isolated first (NSGA-II's crowding distance, the extremes first)."""
    if front.empty:
        raise InvalidInput("the run has no Pareto set yet (no complete, feasible trial): nothing to confirm")
    if not confirmable(front, baseline_arch):
        raise InvalidInput("the run's Pareto set holds no architecture besides the baseline: nothing to confirm")
    members = front[front["arch"] != baseline_arch].drop_duplicates("arch").reset_index(drop=True)
    accuracy = -members["top1"].to_numpy(dtype=float)
    if select == "front":
        order = np.lexsort((members["macs"].to_numpy(), accuracy))
    else:
        losses = _losses(members, objectives)
        if select == "knee":
            scaled = scaled_to_range(losses)
            key = np.linalg.norm(scaled - scaled[knee_point(losses)], axis=1)
        else:
            key = -crowding_distance(losses)
        order = np.lexsort((accuracy, key))
    return members["arch"].iloc[order[:top]].tolist()


def confirm_config(parent: SearchConfig, members: list[str], settings: ConfirmConfig) -> SearchConfig:
    """The config of the confirm stage's run: the search's settings, an ``archs`` study of the members (the
    baseline is always a cell) with new seeds, at ``settings.epochs`` (default: the search's budget)."""
    data = parent.model_dump()
    # no constraints: a noisy latency timing must not make one seed of a pair infeasible
    data.update(name=CONFIRM_DIR, confirm=None, constraints={},
                study={"kind": "archs", "archs": members, "seeds": list(confirm_seeds(parent, settings.seeds))})
    data["training"]["epochs"] = settings.epochs or parent.training.epochs
    return ablation_config(SearchConfig.model_validate(data))


def describe(config: SearchConfig) -> str:
    """A confirm run's settings in words, for the refusal to change them."""
    return (f"{len(config.study.archs)} members ({', '.join(config.study.archs)}), seeds "
            f"{', '.join(map(str, config.study.seed_list))}, {config.training.epochs} epochs")


def confirm_rows(confirmed: pd.DataFrame, search: pd.DataFrame, baseline_arch: str) -> pd.DataFrame:
    """confirm.csv: one row per ARCH and seed the confirm run finished, with the search's single run beside it."""
    done = confirmed[confirmed["status"] == COMPLETE].drop_duplicates(["arch", "seed"])
    first = search[search["status"] == COMPLETE].sort_values("number").drop_duplicates("arch").set_index("arch")
    rows = done.assign(role=np.where(done["arch"] == baseline_arch, BASELINE, MEMBER), epochs=done["epochs_done"],
                       search_trial=done["arch"].map(first["number"]), search_top1=done["arch"].map(first["top1"]))
    order = rows.assign(_base=rows["role"] != BASELINE).sort_values(["_base", "arch", "seed"])
    return order.reindex(columns=CONFIRM_COLUMNS).reset_index(drop=True)


def write_confirm_csv(run_dir: Path, rows: pd.DataFrame) -> None:
    with atomic_path(run_dir / CONFIRM_CSV) as temporary:
        rows.to_csv(temporary, index=False)


@dataclass(frozen=True)
class Confirmation:
    """What a confirm stage measured: per ARCH (baseline first) its statistics, costs, the search's single run and
    its place on the confirmed front; the pooled seed noise of top-1."""

    stats: pd.DataFrame
    seeds: tuple[int, ...]
    epochs: int
    noise_std: float  # pooled within-ARCH sample std of top-1 (points)
    baseline_arch: str

    @property
    def members(self) -> pd.DataFrame:
        return self.stats[self.stats["arch"] != self.baseline_arch]


def read_confirmation(run_dir: Path, objectives) -> Confirmation | None:
    """The confirm stage's results of ``run_dir`` (None without ``confirm.csv``)."""
    path = Path(run_dir) / CONFIRM_CSV
    if not path.is_file():
        return None
    rows = _read_rows(path)
    baseline = rows.loc[rows["role"] == BASELINE, "arch"]
    if baseline.empty:
        raise InvalidInput(f"{path}: no baseline row; run `ulsam-search confirm {run_dir}` again")
    baseline_arch = baseline.iloc[0]
    stats = compare_with_baseline(rows, baseline_arch, rows["arch"].unique().tolist())
    first = rows.drop_duplicates("arch").set_index("arch")
    extra = ["macs", "params", "search_trial", "search_top1"]
    stats = stats.join(first[extra], on="arch")
    if "latency" in objectives:
        stats = stats.join(rows.groupby("arch")["latency_ms"].mean(), on="arch")
    return Confirmation(confirmed_front(stats, objectives), tuple(sorted(rows["seed"].unique().tolist())),
                        int(rows["epochs"].max()), pooled_std(rows), baseline_arch)


def _read_rows(path: Path) -> pd.DataFrame:
    """confirm.csv, refused as bad input (naming the file) when it is not one."""
    numeric = ("seed", "epochs", "top1", "top5", "macs", "params")
    rows = read_csv(path, f"{path}: not a confirm table", dtype={"arch": str, "role": str, "status": str})
    require_columns(rows, ("arch", "role", *numeric), f"{path}: not a confirm table",
                    "; run `ulsam-search confirm` on the run again")
    require_numbers(rows, numeric, f"{path}: a row is truncated or corrupt (a missing or non-numeric value)")
    return rows


def pooled_std(rows: pd.DataFrame) -> float:
    """The seed noise of top-1 pooled over ARCHs: sqrt(sum (n_i - 1) s_i^2 / sum (n_i - 1))."""
    grouped = rows.groupby("arch")["top1"]
    dof = (grouped.count() - 1).clip(lower=0)
    if dof.sum() == 0:
        return math.nan
    return float(math.sqrt((grouped.var(ddof=1).fillna(0) * dof).sum() / dof.sum()))


def confirmed_front(stats: pd.DataFrame, objectives) -> pd.DataFrame:
    """``stats`` with ``front``: whether the ARCH is on the front of the confirmed means; ``dominated_by``: the most
    accurate ARCH dominating it (by the means) and ``within_ci``: whether their top-1 CIs overlap, so that the
    domination itself is within the noise. A dominated ARCH is marked, never dropped."""
    losses = _losses(stats.rename(columns={"top1_mean": "top1"}), objectives)
    on_front = pareto_mask(losses, ["min"] * losses.shape[1])
    dominated_by, within_ci = [], []
    for i in range(len(stats)):
        dominators = [] if on_front[i] else [
            j for j in range(len(stats)) if np.all(losses[j] <= losses[i]) and np.any(losses[j] < losses[i])]
        if not dominators:
            dominated_by.append("")
            within_ci.append(False)
            continue
        j = max(dominators, key=lambda k: stats["top1_mean"].iloc[k])
        dominated_by.append(stats["arch"].iloc[j])
        within_ci.append(not stats["top1_ci_low"].iloc[j] > stats["top1_ci_high"].iloc[i])  # NaN CIs: overlapping
    return stats.assign(front=on_front, dominated_by=dominated_by, within_ci=within_ci)


def half_width(row: pd.Series, column: str = "d_top1") -> float:
    """Half the 95% CI of ``column`` (NaN without one: fewer than two seeds)."""
    return (row.get(f"{column}_ci_high", math.nan) - row.get(f"{column}_ci_low", math.nan)) / 2


def plus_minus(row: pd.Series, column: str = "d_top1") -> str:
    """``+0.46 ± 1.06``; ``± n/a`` without a CI."""
    half = half_width(row, column)
    return f"{row[column]:+.2f} ± " + ("n/a" if math.isnan(half) else f"{half:.2f}")


def finding(confirmation: Confirmation) -> list[str]:
    """The confirm stage's result in words: which members beat or trail the baseline's top-1 beyond noise, and
    what the cheapest member not worse than the baseline saves."""
    members, base = confirmation.members, confirmation.stats.iloc[0]
    level = f"{1 - ALPHA:.0%}"
    better = members[members["verdict"] == BETTER]
    worse = members[members["verdict"] == WORSE]
    lines = []
    tested = int(members["d_top1_p"].notna().sum()) if "d_top1_p" in members else 0
    if better.empty:
        lines.append(f"no confirmed member beats the baseline's top-1 beyond noise ({level}, Holm-corrected over "
                     f"the {tested} members with a test, seeds {', '.join(map(str, confirmation.seeds))})")
    for _, row in better.iterrows():
        lines.append(f"`{row['arch']}` beats the baseline's top-1: Δ {plus_minus(row)} "
                     f"(p {row['d_top1_p_holm']:.3g}, Holm)")
    for _, row in worse.iterrows():
        lines.append(f"`{row['arch']}` is worse than the baseline: Δ top-1 {plus_minus(row)} "
                     f"(p {row['d_top1_p_holm']:.3g}, Holm)")
    kept = members[members["verdict"] != WORSE].sort_values("macs")
    if not kept.empty and kept["macs"].iloc[0] < base["macs"]:
        row = kept.iloc[0]
        lines.append(f"`{row['arch']}` saves {1 - row['macs'] / base['macs']:.0%} MACs at Δ top-1 "
                     f"{plus_minus(row)} ({row['verdict']})")
    if not math.isnan(confirmation.noise_std):
        lines.append(f"seed std {confirmation.noise_std:.2f} points: single-run differences below "
                     f"~{2 * confirmation.noise_std:.1f} points are not findings")
    return lines
