"""Pareto reports: ``reports/<name>/`` from a run directory, while it runs or after it ends.

    pareto.csv, pareto.md   the front over the configured objectives (feasible COMPLETE trials), sorted by MACs,
                            with deltas against the baseline backbone; the trials that cannot be on it, with reasons
    trials.csv              every trial of the run
    summary.json            counts per status, hypervolume and its reference point, best per objective, the knee
    *.png, index.html       the plots (``plots.py``); the page embeds plotly's JavaScript and works offline

The hypervolume is computed after normalising every objective so that the reference point is 1 in each: top-1 as
``(100 - top1) / (100 - floor)`` and each cost as ``cost / reference cost``. By default the reference is the
baseline backbone's cost and an accuracy floor of ``constraints.min_top1`` or else chance level, so the
hypervolume is the share of the box "cheaper than the baseline and better than the floor" that the front
dominates. Writing goes to a temporary folder that replaces the old report in one step.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import SearchConfig, load_search_config
from ..errors import InvalidInput
from .._io import exchange, fsync_path, remove_leftovers, temporary_name
from ..search.records import (COMPLETE, FAILED, INFEASIBLE, OBJECTIVE_COLUMNS, PRUNED, STATUSES, TEXT_COLUMNS, eligible,
                      pareto_mask, pareto_set)
from ..search.rundir import RunFacts
from ..search.space import PARAM_PREFIX
from ..models.arch import Architecture
from ..models.variants import VARIANTS

NUMERIC_COLUMNS = ("number", "top1", "top5", "macs", "params", "epochs_done", "epochs_budget", "seconds",
                   "started_at", "latency_ms")


@dataclass
class ReportData:
    """Everything the files and plots are made from."""

    name: str
    config: SearchConfig
    config_text: str
    facts: RunFacts
    table: pd.DataFrame  # every trial
    front: pd.DataFrame  # the Pareto set, sorted by MACs, with delta columns
    blocks: list[str]  # block_<k> columns
    reference: dict[str, float]  # objective -> reference value (raw units)
    floor: float  # accuracy floor (top-1 %)
    hypervolume: float
    hypervolume_history: pd.DataFrame  # number, hypervolume
    baseline_top1: float | None
    knee: int | None  # trial number


def load_run(run_dir: str | os.PathLike) -> tuple[SearchConfig, str, RunFacts, pd.DataFrame]:
    """The config, its text, the run facts and the trials table of ``run_dir``, checked; bad input raises."""
    root = Path(run_dir)
    if not root.is_dir():
        raise InvalidInput(f"run directory {root} does not exist")
    config_path, facts_path, trials_path = root / "config.yaml", root / "run.json", root / "trials.csv"
    if not config_path.is_file() or not facts_path.is_file():
        raise InvalidInput(f"{root} is not a run directory (no config.yaml and run.json); "
                           f"make one with `ulsam-search run CONFIG`")
    config = load_search_config(config_path)
    facts = RunFacts.read(facts_path)
    if not trials_path.is_file():
        raise InvalidInput(f"run {root} has no finished trials yet (no trials.csv)")
    table = read_trials(trials_path)
    if table.empty:
        raise InvalidInput(f"run {root} has no finished trials yet")
    for objective in config.objectives:
        column = OBJECTIVE_COLUMNS[objective][0]
        complete = table["status"] == COMPLETE
        if column not in table.columns or table.loc[complete, column].isna().any():
            raise InvalidInput(f"{trials_path}: objective {objective} has no values in column {column} for the "
                               f"complete trials")
    return config, config_path.read_text(), facts, table


def read_trials(path: Path) -> pd.DataFrame:
    """``trials.csv``, refusing a corrupt or truncated file with the row or column at fault."""
    try:
        header = pd.read_csv(path, nrows=0).columns
        table = pd.read_csv(path, dtype={c: str for c in header if c in TEXT_COLUMNS or c.startswith(PARAM_PREFIX)})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise InvalidInput(f"{path}: not a trials table ({str(error).splitlines()[0]})") from None
    missing = [c for c in ("number", "arch", "status", "macs", "params") if c not in table.columns]
    if missing:
        raise InvalidInput(f"{path}: not a trials table (missing columns: {', '.join(missing)})")
    bad = table[~table["status"].isin(STATUSES)]
    if not bad.empty:
        raise InvalidInput(f"{path}: row {bad.index[0] + 2} is truncated or corrupt (status "
                           f"{bad['status'].iloc[0]!r}; valid: {', '.join(STATUSES)})")
    for column in NUMERIC_COLUMNS:
        if column in table.columns:
            values = pd.to_numeric(table[column], errors="coerce")
            broken = values.isna() & table[column].notna()
            if broken.any():
                raise InvalidInput(f"{path}: row {broken.idxmax() + 2} is truncated or corrupt ({column} "
                                   f"{table[column][broken.idxmax()]!r} is not a number)")
            table[column] = values
    if table[["macs", "params"]].isna().any().any():
        raise InvalidInput(f"{path}: row {table[['macs', 'params']].isna().any(axis=1).idxmax() + 2} is truncated "
                           f"or corrupt (no macs or params)")
    return table


def reference_point(config: SearchConfig, facts: RunFacts, table: pd.DataFrame) -> tuple[dict[str, float], float]:
    """(objective -> reference value, accuracy floor): the baseline's cost, min_top1 or chance level."""
    floor = config.constraints.min_top1 if config.constraints.min_top1 is not None else 100.0 / facts.num_classes
    reference = {"top1": floor, "macs": float(facts.baseline_macs), "params": float(facts.baseline_params)}
    if "latency" in config.objectives:  # the baseline's measured latency, else the slowest complete trial's
        baseline = baseline_latency(table, facts)
        reference["latency"] = baseline if baseline is not None else float(
            table.loc[table["status"] == COMPLETE, "latency_ms"].max())
    return {o: reference[o] for o in config.objectives}, floor


def normalised_losses(frame: pd.DataFrame, reference: dict[str, float]) -> np.ndarray:
    """n x k losses to minimise, 1 at the reference point in every objective, 0 at the ideal."""
    columns = []
    for objective, ref in reference.items():
        values = frame[OBJECTIVE_COLUMNS[objective][0]].to_numpy(dtype=float)
        columns.append((100.0 - values) / (100.0 - ref) if objective == "top1" else values / ref)
    return np.column_stack(columns) if columns else np.empty((len(frame), 0))


def hypervolume(losses: np.ndarray) -> float:
    """Hypervolume dominated by ``losses`` within the unit box (reference point 1 in every objective)."""
    from optuna._hypervolume import compute_hypervolume

    inside = losses[np.all(losses < 1.0, axis=1)]
    if len(inside) == 0:
        return 0.0
    return float(compute_hypervolume(inside, np.ones(losses.shape[1])))


def hypervolume_history(table: pd.DataFrame, objectives, reference: dict[str, float]) -> pd.DataFrame:
    """Hypervolume of the front of trials 0..n for every trial number n (recomputed only when the front moves)."""
    candidates = eligible(table).sort_values("number")
    losses = normalised_losses(candidates, reference)
    numbers = table["number"].sort_values().to_numpy()
    rank = {number: i for i, number in enumerate(candidates["number"])}
    front: np.ndarray = np.empty((0, losses.shape[1]))
    value, values = 0.0, []
    for number in numbers:
        i = rank.get(number)
        if i is not None and not np.any(np.all(front <= losses[i], axis=1)):
            front = np.vstack([front, losses[i]])
            front = front[pareto_mask(front, ["min"] * front.shape[1])]
            value = hypervolume(front)
        values.append(value)
    return pd.DataFrame({"number": numbers, "hypervolume": values})


def knee_point(losses: np.ndarray) -> int | None:
    """Row of the front closest to the utopia point once each objective is scaled to the front's own range."""
    if len(losses) == 0:
        return None
    spread = np.ptp(losses, axis=0)
    scaled = (losses - losses.min(axis=0)) / np.where(spread > 0, spread, 1.0)
    return int(np.argmin(np.linalg.norm(scaled, axis=1)))


def paper_variant_names(archs) -> dict[str, str]:
    """ARCH -> the paper variant with the same placements and a g the paper reported (``paper-mv2-c/4``), with
    `` @0.35`` added where only the width differs."""
    exact, pattern = {}, {}
    for variant in VARIANTS.values():
        for groups in variant.paper_groups:
            arch = variant.arch(groups)
            exact[str(arch)] = f"{variant.name}/{groups}"
            pattern.setdefault((arch.backbone, arch.placements), f"{variant.name}/{groups}")
    names = {}
    for text in archs:
        arch = Architecture.parse(text)
        if text in exact:
            names[text] = exact[text]
        elif arch.placements and (arch.backbone, arch.placements) in pattern:
            names[text] = f"{pattern[arch.backbone, arch.placements]} @{arch.width:g}"
    return names


def reproduce_command(arch: str, config: SearchConfig, facts: RunFacts) -> str:
    """The ``ulsam-search train`` line that retrains one trial with the run's budget."""
    data, training = config.dataset, config.training
    parts = ["ulsam-search train", f"'{arch}'", f"--dataset {data.name}"]
    parts += [f"--data-root {data.root}"] if data.root else []
    parts += [f"--input-size {facts.input_size}", f"--epochs {training.epochs}",
              f"--batch-size {training.batch_size}", f"--lr {training.lr:g}", f"--optimizer {training.optimizer}",
              f"--weight-decay {training.weight_decay:g}", f"--warmup-epochs {training.warmup_epochs:g}",
              f"--label-smoothing {training.label_smoothing:g}", f"--seed {training.seed}",
              "--small-input" if facts.small_input else "--no-small-input"]
    parts += [f"--grad-clip {training.grad_clip:g}"] if training.grad_clip else []
    parts += [f"--train-limit {data.train_limit}"] if data.train_limit else []
    parts += [f"--pretrained {training.pretrained}"] if training.pretrained else []
    return " ".join(parts)


def collect(run_dir: str | os.PathLike) -> ReportData:
    config, config_text, facts, table = load_run(run_dir)
    objectives = list(config.objectives)
    reference, floor = reference_point(config, facts, table)
    blocks = [c for c in table.columns if c.startswith(PARAM_PREFIX)]
    front = pareto_set(table, objectives).sort_values(["macs", "params", "number"]).reset_index(drop=True)
    candidates = eligible(table)
    baseline_rows = candidates[candidates["arch"] == facts.baseline_arch]
    baseline_top1 = float(baseline_rows["top1"].iloc[0]) if not baseline_rows.empty else None
    baseline_top5 = float(baseline_rows["top5"].iloc[0]) if not baseline_rows.empty else None
    front = front.assign(
        d_top1=front["top1"] - baseline_top1 if baseline_top1 is not None else np.nan,
        d_top5=front["top5"] - baseline_top5 if baseline_top5 is not None else np.nan,
        d_macs_pct=(front["macs"] / facts.baseline_macs - 1) * 100,
        d_params_pct=(front["params"] / facts.baseline_params - 1) * 100,
        paper_variant=front["arch"].map(lambda arch, names=paper_variant_names(front["arch"].unique()):
                                        names.get(arch, "")),
        command=[reproduce_command(arch, config, facts) for arch in front["arch"]])
    front_losses = normalised_losses(front, reference)
    knee = knee_point(front_losses)
    return ReportData(name=config.name, config=config, config_text=config_text, facts=facts, table=table,
                      front=front, blocks=blocks, reference=reference, floor=floor,
                      hypervolume=hypervolume(front_losses),
                      hypervolume_history=hypervolume_history(table, objectives, reference),
                      baseline_top1=baseline_top1, knee=int(front["number"].iloc[knee]) if knee is not None else None)


def not_on_front(table: pd.DataFrame) -> pd.DataFrame:
    """Pruned, failed and infeasible trials (and complete ones below min_top1) with why they cannot count."""
    budget = table["epochs_budget"]
    reasons = pd.Series("", index=table.index, dtype=object)
    pruned = table["status"] == PRUNED
    reasons[pruned] = [f"stopped by the scheduler after epoch {int(d)} of {int(b)}"
                       for d, b in zip(table.loc[pruned, "epochs_done"].fillna(0), budget[pruned].fillna(0))]
    for status in (FAILED, INFEASIBLE):
        rows = table["status"] == status
        reasons[rows] = table.loc[rows, "error"].fillna(status.lower()).astype(str)
    below = (table["status"] == COMPLETE) & ~table["feasible"].fillna(True).astype(bool)
    reasons[below] = "top-1 below constraints.min_top1"
    return table.assign(reason=reasons)[reasons != ""]


def summary(data: ReportData, wall_seconds: float) -> dict:
    table, front = data.table, data.front
    counts = {status: int((table["status"] == status).sum()) for status in STATUSES}
    best = {}
    candidates = eligible(table)
    for objective in data.config.objectives:
        column, direction = OBJECTIVE_COLUMNS[objective]
        if not candidates.empty:
            row = candidates.loc[candidates[column].idxmax() if direction == "max" else candidates[column].idxmin()]
            best[objective] = {"number": int(row["number"]), "arch": row["arch"], "value": float(row[column])}
    knee = front[front["number"] == data.knee].iloc[0] if data.knee is not None else None
    return {
        "name": data.name,
        "config_sha256": hashlib.sha256(data.config_text.encode()).hexdigest(),
        "objectives": {o: OBJECTIVE_COLUMNS[o][1] for o in data.config.objectives},
        "n_trials": data.config.n_trials,
        "trials": len(table),
        "counts": counts,
        "pareto_size": len(front),
        "hypervolume": {"value": data.hypervolume, "reference_point": data.reference,
                        "accuracy_floor": data.floor,
                        "normalisation": "top1: (100 - top1) / (100 - floor); costs: cost / reference; "
                                         "reference point = 1 in every objective"},
        "baseline": {"arch": data.facts.baseline_arch, "macs": data.facts.baseline_macs,
                     "params": data.facts.baseline_params, "top1": data.baseline_top1},
        "best": best,
        "knee": None if knee is None else {"number": int(knee["number"]), "arch": knee["arch"],
                                           **{o: float(knee[OBJECTIVE_COLUMNS[o][0]]) for o in data.config.objectives},
                                           "method": "closest to the utopia point, each objective scaled to the front's range"},
        "wall_seconds": wall_seconds,
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def run_wall_seconds(table: pd.DataFrame) -> float:
    """From the first trial's start to the last one's end (trials run elsewhere report both)."""
    started = table["started_at"].dropna() if "started_at" in table else pd.Series(dtype=float)
    if started.empty:
        return 0.0
    ends = (table["started_at"] + table["seconds"].fillna(0)).dropna()
    return float(ends.max() - started.min())


def fmt(value, digits: int = 2, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, (int, np.integer)) or float(value).is_integer() and abs(value) >= 1000:
        return f"{int(value):,}"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def baseline_latency(table: pd.DataFrame, facts: RunFacts) -> float | None:
    """The baseline's measured ms per image, or None where it was never timed."""
    if "latency_ms" not in table:
        return None
    timed = table.loc[(table["arch"] == facts.baseline_arch) & table["latency_ms"].notna(), "latency_ms"]
    return float(timed.iloc[0]) if len(timed) else None


def timed_latency(table: pd.DataFrame) -> bool:
    """Whether the run measured latency (an objective or a constraint): reports then show it."""
    return "latency_ms" in table and bool(table["latency_ms"].notna().any())


def pareto_markdown(data: ReportData, info: dict, others: pd.DataFrame) -> str:
    front, facts = data.front, data.facts
    lines = [f"# Pareto set of {data.name}", "",
             f"{info['trials']} of {info['n_trials']} trials: " + ", ".join(
                 f"{n} {s.lower()}" for s, n in info["counts"].items()) + f". Objectives: " + ", ".join(
                 f"{o} ({d})" for o, d in info["objectives"].items()) + ".",
             f"Hypervolume {data.hypervolume:.4f} (reference: " + ", ".join(
                 f"{o} {fmt(v)}" for o, v in data.reference.items()) + "; normalised so the reference is 1).",
             f"Baseline `{facts.baseline_arch}`: {facts.baseline_macs:,} MACs, {facts.baseline_params:,} params, "
             f"top-1 {fmt(data.baseline_top1)}.", ""]
    timed = timed_latency(data.table)
    header = ["#", "ARCH", *[b.replace("block_", "b") for b in data.blocks], "top-1 %", "top-5 %", "MACs", "params",
              *(["latency ms"] if timed else []), "Δ top-1", "Δ top-5", "Δ MACs %", "Δ params %"]
    rows = [[f"{int(r['number'])}{' (knee)' if r['number'] == data.knee else ''}",
             f"`{r['arch']}`" + (f" ({r['paper_variant']})" if r["paper_variant"] else ""),
             *[r[b] for b in data.blocks], fmt(r["top1"]), fmt(r["top5"]), f"{int(r['macs']):,}",
             f"{int(r['params']):,}", *([f"{r['latency_ms']:.4g}"] if timed else []), fmt(r["d_top1"], signed=True),
             fmt(r["d_top5"], signed=True), fmt(r["d_macs_pct"], signed=True), fmt(r["d_params_pct"], signed=True)]
            for _, r in front.iterrows()]
    lines += ["## Front (sorted by MACs)", "", markdown_table(header, rows) if rows else "No complete trial yet.", ""]
    if not others.empty:
        lines += ["## Not on the front", "", markdown_table(
            ["#", "status", "ARCH", "reason"],
            [[int(r["number"]), r["status"], f"`{r['arch']}`", r["reason"]] for _, r in others.iterrows()]), ""]
    return "\n".join(lines)


def write_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write the report of ``run_dir`` to ``out`` (default ``reports/<name>``), replacing any older one whole."""
    from .plots import write_html, write_pngs

    data = collect(run_dir)
    out = Path(out) if out is not None else Path("reports") / data.name
    staging = temporary_name(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(out)
        staging.mkdir()
    except OSError as error:
        raise InvalidInput(f"report folder {out}: {error.strerror or error}") from None
    try:
        info = summary(data, run_wall_seconds(data.table))
        others = not_on_front(data.table)
        data.table.to_csv(staging / "trials.csv", index=False)
        front_columns = ["number", "arch", "paper_variant", *data.blocks, "top1", "top5", "macs", "params",
                         *(["latency_ms"] if timed_latency(data.table) else []), "d_top1", "d_top5", "d_macs_pct",
                         "d_params_pct", "command"]
        data.front[front_columns].to_csv(staging / "pareto.csv", index=False)
        (staging / "pareto.md").write_text(pareto_markdown(data, info, others))
        (staging / "summary.json").write_text(json.dumps(info, indent=2) + "\n")
        write_pngs(data, staging)
        ablation = _write_ablation(data, staging) if data.config.study else ""
        write_html(data, info, others, staging / "index.html", ablation)
        _swap_in(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _write_ablation(data: ReportData, folder: Path) -> str:
    """ablation.csv, ablation.md and their PNGs; returns the HTML section for index.html."""
    import html

    from ..ablation import ablation_markdown, ablation_tables, cell_statistics
    from .plots import ablation_figures, write_ablation_pngs

    stats = cell_statistics(data.config, data.table)
    stats.to_csv(folder / "ablation.csv", index=False)
    (folder / "ablation.md").write_text(ablation_markdown(data.config, stats))
    write_ablation_pngs(stats, data.name, folder)
    plots = "".join(f'<div class="plot" id="plot-{name}">{fig.to_html(full_html=False, include_plotlyjs=False)}'
                    f'</div>' for name, fig in ablation_figures(stats).items())
    tables = "".join(f"<h3>{'Top-1' if metric == 'top1' else 'Top-5'} (%)</h3>" + table.to_html(escape=True, index_names=False)
                     for metric, table in ablation_tables(stats).items())
    return (f"<h2>Ablation: {html.escape(data.config.study.kind)} study</h2><p>Mean ± sample std [95% CI] over "
            f"seeds {', '.join(map(str, data.config.study.seed_list))}; Δ: paired difference from the baseline "
            f"(p: paired t-test).</p>{tables}{plots}")


def _swap_in(staging: Path, out: Path) -> None:
    """Replace ``out`` by ``staging`` (flushed to disk first) in one atomic exchange, so readers and a writer killed
    at any instant leave the old report or the new one. Where the system cannot exchange, two renames: a writer
    killed between them leaves no ``out`` (never a partial one) until the next report."""
    for path in staging.iterdir():
        fsync_path(path)
    fsync_path(staging)
    if out.exists() and exchange(staging, out):
        shutil.rmtree(staging, ignore_errors=True)  # now the old report
    elif out.exists():
        old = temporary_name(out, "old")
        os.replace(out, old)
        os.replace(staging, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, out)
    fsync_path(out.parent)
