"""The report's text: numbers formatted once (``fmt``), markdown tables, pareto.md and pareto.csv's columns, the
content of summary.json, and a study's tables (ablation.md, and the same tables on the page)."""

from __future__ import annotations

import hashlib
import math
import time

import numpy as np
import pandas as pd

from ..ablation.claims import MARGIN, Claim, interval
from ..ablation.confirm import finding, half_width, plus_minus
from ..search.objectives import get_objective
from ..search.records import STATUSES, eligible, retried_failures
from ..search.space import PARAM_PREFIX
from .collect import ReportData

SINGLE_RUNS = ("The Δ columns of the front are single runs (one seed each, at the search's budget): a difference "
               "within seed noise is not a finding. `ulsam-search confirm RUN_DIR` retrains the front and the "
               "baseline with new seeds and tests the differences.")
ABLATION_METRICS = {"top1": "Top-1", "top5": "Top-5"}  # a study's tables, one per metric
ABLATION_VALUE = "mean ± std [95% CI]"  # the one column of a study without g columns


def fmt(value, digits: int = 2, signed: bool = False) -> str:
    """A table cell: ``n/a`` for a missing value, thousands separators for large integers."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, (int, np.integer)) or float(value).is_integer() and abs(value) >= 1000:
        return f"{int(value):,}"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def front_columns(data: ReportData) -> list[str]:
    """pareto.csv's columns: latency only where the run measured it."""
    return ["number", "arch", "paper_variant", *data.blocks, "top1", "top5", "macs", "params",
            *([get_objective("latency").column] if data.latency_timed else []), "d_top1", "d_top5", "d_macs_pct",
            "d_params_pct", "command"]


def run_wall_seconds(table: pd.DataFrame) -> float:
    """From the first trial's start to the last one's end (trials run elsewhere report both)."""
    started = table["started_at"].dropna() if "started_at" in table else pd.Series(dtype=float)
    if started.empty:
        return 0.0
    ends = (table["started_at"] + table["seconds"].fillna(0)).dropna()
    return float(ends.max() - started.min())


def _best(data: ReportData) -> dict[str, dict]:
    """Objective -> the eligible trial best in it alone."""
    best = {}
    candidates = eligible(data.table)
    for name in data.config.objectives:
        objective = get_objective(name)
        if not candidates.empty:
            column = candidates[objective.column]
            row = candidates.loc[column.idxmax() if objective.direction == "max" else column.idxmin()]
            best[name] = {"number": int(row["number"]), "arch": row["arch"], "value": float(row[objective.column])}
    return best


def summary(data: ReportData) -> dict:
    """summary.json: counts, hypervolume and how it was measured, the baseline, the best per objective, the knee."""
    table, front, objectives = data.table, data.front, data.config.objectives
    knee = front[front["number"] == data.knee].iloc[0] if data.knee is not None else None
    return {
        "name": data.name,
        "config_sha256": hashlib.sha256(data.config_text.encode()).hexdigest(),
        "objectives": {o: get_objective(o).direction for o in objectives},
        "n_trials": data.config.n_trials,
        "stopped": data.stopped,
        "confirm_pending": data.confirm_pending,
        "trials": len(table),
        "retries": retried_failures(table),
        "counts": {status: int((table["status"] == status).sum()) for status in STATUSES},
        "pareto_size": len(front),
        "hypervolume": {"value": data.hypervolume, "reference_point": data.reference,
                        "accuracy_floor": data.floor,
                        "normalisation": "top1: (100 - top1) / (100 - floor); costs: cost / reference; "
                                         "reference point = 1 in every objective"},
        "baseline": {"arch": data.facts.baseline_arch, "macs": data.facts.baseline_macs,
                     "params": data.facts.baseline_params, "top1": data.baseline_top1},
        "best": _best(data),
        "knee": None if knee is None else {"number": int(knee["number"]), "arch": knee["arch"],
                                           **{o: float(knee[get_objective(o).column]) for o in objectives},
                                           "method": "closest to the utopia point, each objective scaled to the "
                                                     "front's range"},
        "front_deltas": "single runs: one seed each, at the search's budget" + (
            "; see confirmed for means over new seeds" if data.confirmed else ""),
        "confirmed": confirmed_summary(data),
        "wall_seconds": run_wall_seconds(table),
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def single_runs(data: ReportData) -> str:
    """The warning that the front's deltas are single runs: for a search without a confirm stage, else empty."""
    return "" if data.confirmed is not None or data.config.study is not None else SINGLE_RUNS


def confirmed_intro(data: ReportData) -> str:
    """How the confirm stage trained and compared, and how big the seed noise is."""
    confirmed = data.confirmed
    noise = "" if math.isnan(confirmed.noise_std) else (
        f" Seed noise: std {confirmed.noise_std:.2f} points of top-1 (pooled over the confirmed ARCHs); single-run "
        f"differences below ~{2 * confirmed.noise_std:.1f} points are not findings.")
    return (f"{len(confirmed.members)} front members and the baseline retrained from scratch with new seeds "
            f"{', '.join(map(str, confirmed.seeds))} for {confirmed.epochs} epochs. Top-1: mean ± half the 95% CI "
            f"(Student's t); Δ: the paired difference from the baseline over the seeds both finished, ± half its "
            f"95% CI (not adjusted for the several comparisons); p: paired t-test, Holm-corrected across the members; "
            f"the verdict at 95% follows the corrected p. Costs are exact." + noise)


def confirmed_table(data: ReportData) -> tuple[list[str], list[list[str]]]:
    """The Confirmed section's table: one row per ARCH, the baseline first."""
    base_macs = data.confirmed.stats["macs"].iloc[0]
    header = ["ARCH", "n", "top-1 %", "Δ top-1", "p (Holm)", "verdict", "MACs", "Δ MACs %", "search top-1 (1 run)",
              "confirmed front"]
    rows = []
    for i, r in data.confirmed.stats.iterrows():
        ci = half_width(r, "top1")
        rows.append([f"`{r['arch']}`" + (" (baseline)" if i == 0 else ""), str(int(r["n"])),
                     f"{r['top1_mean']:.2f}" + ("" if math.isnan(ci) else f" ± {ci:.2f}"),
                     "" if i == 0 else plus_minus(r),
                     "" if i == 0 else fmt(r["d_top1_p_holm"], 3), "" if i == 0 else r["verdict"],
                     f"{int(r['macs']):,}", fmt((r["macs"] / base_macs - 1) * 100, signed=True),
                     fmt(r["search_top1"]), "yes" if r["front"] else f"dominated by `{r['dominated_by']}`"
                     + (" (within the CIs)" if r["within_ci"] else "")])
    return header, rows


def confirmed_markdown(data: ReportData) -> list[str]:
    if data.confirmed is None:
        return []
    header, rows = confirmed_table(data)
    return ["## Confirmed", "", confirmed_intro(data), "", markdown_table(header, rows), "",
            *[f"- {line}" for line in finding(data.confirmed)], ""]


def confirmed_summary(data: ReportData) -> dict | None:
    """summary.json's ``confirmed``: the confirm stage's settings, noise, per-ARCH statistics and finding."""
    confirmed = data.confirmed
    if confirmed is None:
        return None

    def number(value):
        return None if pd.isna(value) else float(value)

    archs = [{"arch": r["arch"], "n": int(r["n"]), "top1_mean": number(r["top1_mean"]),
              "top1_ci": [number(r["top1_ci_low"]), number(r["top1_ci_high"])], "top5_mean": number(r["top5_mean"]),
              "d_top1": number(r.get("d_top1")), "d_top1_ci": [number(r.get("d_top1_ci_low")),
                                                                number(r.get("d_top1_ci_high"))],
              "p": number(r.get("d_top1_p")), "p_holm": number(r.get("d_top1_p_holm")),
              "verdict": r.get("verdict") if isinstance(r.get("verdict"), str) else None,
              "macs": int(r["macs"]), "params": int(r["params"]), "search_top1": number(r["search_top1"]),
              "confirmed_front": bool(r["front"]), "dominated_by": r["dominated_by"] or None,
              "dominated_within_ci": bool(r["within_ci"])}
             for _, r in confirmed.stats.iterrows()]
    return {"seeds": list(confirmed.seeds), "epochs": confirmed.epochs, "seed_std_top1": number(confirmed.noise_std),
            "baseline": archs[0], "members": archs[1:], "finding": finding(confirmed)}


def trials_text(info: dict) -> str:
    """``4 of 4 trials and 3 retries of failed ones``: retries run beyond the budget, not within it."""
    own = f"{info['trials'] - info['retries']} of {info['n_trials']} trials"
    retries = info["retries"]
    return own + (f" and {retries} {'retry' if retries == 1 else 'retries'} of failed ones" if retries else "")


def stopped_text(data: ReportData) -> str:
    """The warning that the run or its confirm stage has not finished (stopped, or still running); empty once
    both have."""
    if data.confirm_pending:
        return ("**Incomplete**: the confirm stage has not finished (it stopped, or is still running), so the front's "
                "Δ columns are still single runs; once nothing runs in it, `ulsam-search confirm` on the run "
                "directory continues it.")
    if not data.stopped:
        return ""
    what = "a cell's seeds, the claims and the front" if data.config.study else "the front and its hypervolume"
    return (f"**Incomplete**: the run has not finished its {data.config.n_trials} trials (it stopped, or is still "
            f"running), so {what} cover only the trials finished so far; once no search is running in it, "
            f"`ulsam-search resume` on its run directory finishes it and regenerates this report.")


def counts_text(info: dict) -> str:
    """``5 complete, 1 pruned, ...`` from a summary."""
    return ", ".join(f"{n} {s.lower()}" for s, n in info["counts"].items())


def pareto_markdown(data: ReportData, info: dict) -> str:
    """pareto.md: the run in a paragraph, the front (sorted by MACs) and the trials that are not on it."""
    front, facts, others = data.front, data.facts, data.others
    lines = [f"# Pareto set of {data.name}", "",
             f"{trials_text(info)}: " + counts_text(info) + ". Objectives: " + ", ".join(
                 f"{o} ({d})" for o, d in info["objectives"].items()) + ".",
             f"Hypervolume {data.hypervolume:.4f} (reference: " + ", ".join(
                 f"{o} {fmt(v)}" for o, v in data.reference.items()) + "; normalised so the reference is 1).",
             f"Baseline `{facts.baseline_arch}`: {facts.baseline_macs:,} MACs, {facts.baseline_params:,} params, "
             f"top-1 {fmt(data.baseline_top1)}.", *filter(None, (single_runs(data), stopped_text(data))), ""]
    lines += confirmed_markdown(data)
    latency = get_objective("latency").column if data.latency_timed else None
    header = ["#", "ARCH", *[f"b{b.removeprefix(PARAM_PREFIX)}" for b in data.blocks], "top-1 %", "top-5 %", "MACs",
              "params", *(["latency ms"] if latency else []), "Δ top-1", "Δ top-5", "Δ MACs %", "Δ params %"]
    rows = [[f"{int(r['number'])}{' (knee)' if r['number'] == data.knee else ''}",
             f"`{r['arch']}`" + (f" ({r['paper_variant']})" if r["paper_variant"] else ""),
             *[r[b] for b in data.blocks], fmt(r["top1"]), fmt(r["top5"]), f"{int(r['macs']):,}",
             f"{int(r['params']):,}", *([f"{r[latency]:.4g}"] if latency else []), fmt(r["d_top1"], signed=True),
             fmt(r["d_top5"], signed=True), fmt(r["d_macs_pct"], signed=True), fmt(r["d_params_pct"], signed=True)]
            for _, r in front.iterrows()]
    lines += ["## Front (sorted by MACs)", "", markdown_table(header, rows) if rows else "No complete trial yet.", ""]
    if not others.empty:
        lines += ["## Not on the front", "", markdown_table(
            ["#", "status", "ARCH", "reason"],
            [[int(r["number"]), r["status"], f"`{r['arch']}`", r["reason"]] for _, r in others.iterrows()]), ""]
    return "\n".join(lines)


def _cell_text(row: pd.Series, metric: str) -> str:
    """A study's cell: mean ± std [CI], the paired Δ with its p-value, the paper's number."""
    if row["n"] == 0:
        return "not run yet"
    text = f"{row[f'{metric}_mean']:.2f}"
    if not math.isnan(row[f"{metric}_std"]):
        text += f" ± {row[f'{metric}_std']:.2f} [{row[f'{metric}_ci_low']:.2f}, {row[f'{metric}_ci_high']:.2f}]"
    if f"d_{metric}" in row and not pd.isna(row.get(f"d_{metric}")):
        p, holm = row[f"d_{metric}_p"], row.get(f"d_{metric}_p_holm")
        text += f" Δ {row[f'd_{metric}']:+.2f}" + ("" if pd.isna(p) else f" (p={p:.3f}")
        text += "" if pd.isna(p) else (")" if holm is None or pd.isna(holm) else f", Holm {holm:.3f})")
        if metric == "top1" and isinstance(row.get("verdict"), str):
            text += f" {row['verdict']}"
    paper = row[f"paper_{metric}"]
    if paper is not None and not pd.isna(paper):
        text += f" · paper {paper:.2f}"
    return text


def _span(values: pd.Series) -> str:
    values = values.dropna()
    if values.empty:
        return "n/a"
    low, high = int(values.min()), int(values.max())
    return f"{low:,}" if low == high else f"{low:,}-{high:,}"


def ablation_tables(stats: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Paper-style tables, rows x g, for top-1 and top-5, with MACs and params per row; the baseline's first row
    repeats its one value under every g, to read down each column."""
    groups = sorted(int(g) for g in stats["groups"].dropna().unique())
    labels = [f"g={g}" for g in groups] or [ABLATION_VALUE]  # an archs study has no g columns
    tables = {}
    for metric in ABLATION_METRICS:
        cells: dict[str, dict[str, str]] = {}
        for _, row in stats.iterrows():
            text = _cell_text(row, metric)
            columns = labels if pd.isna(row["groups"]) else [f"g={int(row['groups'])}"]
            cells.setdefault(row["row"], {}).update(dict.fromkeys(columns, text))
        table = pd.DataFrame.from_dict(cells, orient="index", columns=labels).fillna("")
        costs = stats.groupby("row", sort=False).agg(MACs=("macs", _span), params=("params", _span))
        tables[metric] = table.join(costs).rename_axis("row")
    return tables


CLAIMS_INTRO = ("The paper's qualitative claims (docs/paper.md), each tested once on its comparisons pooled: per seed "
                "the mean top-1 difference over the comparisons, then a 95% CI over the seeds (Student's t). "
                "g > 1 is reproduced when the CI lies above 0 and contradicted when it lies below 0; replacing keeps "
                f"accuracy when the CI lies above -{MARGIN:g} point and is contradicted when it lies below. The rows "
                "are the single comparisons (descriptive, judged by the same rule without correction).")


def claims_table(claims: list[Claim]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: one per comparison, then the claim's pooled row with its verdict."""
    rows = []
    for claim in claims:
        for _, row in claim.comparisons.iterrows():
            rows.append([claim.statement, f"`{row['arch']}` vs `{row['reference']}`", str(int(row["n"])),
                         interval(row["d_top1"], row["ci_low"], row["ci_high"]), row["verdict"]])
        rows.append([claim.statement, "**pooled**", str(claim.seeds),
                     interval(claim.d_top1, claim.ci_low, claim.ci_high), f"**{claim.verdict}**"])
    return ["claim", "comparison", "seeds", "Δ top-1 [95% CI]", "verdict"], rows


def ablation_markdown(data: ReportData) -> str:
    """ablation.md: how the cells were trained and compared, then a table per metric."""
    config, stats, claims = data.config, data.ablation, data.claims
    study = config.study
    seeds = ", ".join(map(str, study.seed_list))
    lines = [f"# Ablation {config.name}: {study.kind} study", "",
             f"{len(stats) - 1} cells and the baseline, each trained with seeds {seeds} on {config.dataset.name} "
             f"for {config.training.epochs} epochs. Cells: mean ± sample std [95% CI, Student's t]; Δ is the "
             f"mean paired difference from the baseline over the seeds both finished, with the paired t-test's "
             f"p-value and, for top-1, the p-value Holm-corrected across the cells and the verdict at 95%: better, "
             f"worse, or not distinguishable from the baseline." + (
                 f" `paper` is the paper's single run on {study.paper_reference} (docs/paper.md)."
                 if study.paper_reference else ""), *filter(None, (stopped_text(data),)), ""]
    for metric, table in ablation_tables(stats).items():
        lines += [f"## {ABLATION_METRICS[metric]} accuracy (%)", "",
                  markdown_table(["", *table.columns], [[row, *cells] for row, cells in
                                                         zip(table.index, table.astype(str).values.tolist())]), ""]
    if claims:
        lines += ["## The paper's claims", "", CLAIMS_INTRO, "", markdown_table(*claims_table(claims)), ""]
    return "\n".join(lines)
