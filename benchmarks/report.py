"""Report speed: ``ulsam-search report`` on a run of 2,000 synthetic trials (goal <= 10 s on this machine).

    ulsam-search bench report [--trials 2000] [--quick]

The run directory is made the way ``run_search`` leaves one (config.yaml, run.json, trials.csv) over the real
quick-start space (mobilenet_v2@0.35, 6 blocks x 9 choices) with real thop costs (the baseline's plus each
placement's own difference: exact, as placements change one block each); accuracy is synthetic (a smooth function of the placements plus noise), and the statuses are mixed as a mo-asha search
leaves them (COMPLETE, PRUNED, FAILED, INFEASIBLE, duplicates). The time is the whole report: reading and checking
the table, the front, the hypervolume history, five PNGs and the HTML page.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from ulsam_search.config import load_search_config
from ulsam_search.cost import count_cost
from ulsam_search.errors import OneLineParser
from ulsam_search.report import write_report
from ulsam_search.search.rundir import RunFacts
from ulsam_search.search.records import COLUMNS
from ulsam_search.search.space import build_space, param_name

QUICKSTART = Path(__file__).resolve().parent.parent / "search_spaces" / "quickstart.yaml"


def synthetic_run(root: Path, trials: int, seed: int = 0) -> Path:
    """A run directory of ``trials`` trials over the quick-start space (costs real, accuracy synthetic)."""
    config = load_search_config(QUICKSTART).with_overrides(n_trials=trials)
    space = build_space(config)
    rng = np.random.default_rng(seed)
    run = root / config.name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(config.to_yaml())
    baseline = count_cost(f"{config.backbone}@{config.width}", 32, 10, config.cost_convention, True)
    deltas = {}
    for block, options in space.choices:
        for choice in options:
            cost = count_cost(space.architecture({block: choice}), 32, 10, config.cost_convention, True)
            deltas[block, choice] = (cost.macs - baseline.macs, cost.params - baseline.params)
    RunFacts(32, 10, True, baseline.arch, baseline.macs, baseline.params).write(run / "run.json")
    rows, seen = [], {}
    for number in range(trials):
        chosen = {block: str(rng.choice(options)) for block, options in space.choices}
        arch = str(space.architecture(chosen))
        macs = baseline.macs + sum(deltas[b, c][0] for b, c in chosen.items())
        params = baseline.params + sum(deltas[b, c][1] for b, c in chosen.items())
        bonus = sum(0.4 if c.startswith("+") else -0.6 if c.startswith("=") else 0 for c in chosen.values())
        status = rng.choice(["COMPLETE", "PRUNED", "FAILED", "INFEASIBLE"], p=[0.6, 0.3, 0.03, 0.07])
        row = {c: None for c in COLUMNS} | {
            "number": number, "arch": arch, "backbone": config.backbone, "width": config.width, "macs": macs,
            "params": params, "flops": 2 * macs, "status": status, "epochs_budget": 3, "seed": 0,
            "feasible": status != "INFEASIBLE", "started_at": 1.7e9 + 30 * number, "seconds": 60.0}
        if status in ("COMPLETE", "PRUNED"):
            row |= {"top1": float(np.clip(96 + bonus + rng.normal(0, 0.8), 0, 100)), "epochs_done": 3}
            row["top5"] = min(100.0, row["top1"] + 2)
        if status == "PRUNED":
            row |= {"top1": row["top1"] - 8, "epochs_done": 2}
        if status == "FAILED":
            row["error"] = "RuntimeError: synthetic failure"
        if status == "INFEASIBLE":
            row["error"] = f"MACs {macs:,} > max_macs {baseline.macs:,}"
        if arch in seen:
            row["duplicate_of"] = seen[arch]
        seen.setdefault(arch, number)
        rows.append(row | {param_name(block): choice for block, choice in chosen.items()})
    pd.DataFrame(rows).to_csv(run / "trials.csv", index=False)
    return run


def main(argv: list[str] | None = None) -> dict:
    parser = OneLineParser(prog="ulsam-search bench report", description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="200 trials (for tests)")
    args = parser.parse_args(argv)
    trials = 200 if args.quick else args.trials
    with tempfile.TemporaryDirectory() as tmp:
        run = synthetic_run(Path(tmp) / "runs", trials)
        start = time.perf_counter()
        out = write_report(run, Path(tmp) / "report")
        seconds = time.perf_counter() - start
        front = len(pd.read_csv(out / "pareto.csv"))
        html_mb = (out / "index.html").stat().st_size / 1e6
    table = Table(title=f"Report of {trials} synthetic trials over the quick-start space (goal <= 10 s for 2,000)")
    for column in ("trials", "Pareto set", "seconds", "index.html MB"):
        table.add_column(column, justify="right")
    table.add_row(f"{trials:,}", str(front), f"{seconds:.2f}", f"{html_mb:.1f}")
    Console(width=120).print(table)
    return {"trials": trials, "pareto": front, "seconds": seconds, "html_mb": html_mb}


if __name__ == "__main__":
    main()
