"""Search orchestration: what Ray Tune + Optuna add per trial, and how trials scale from 1 to 2 at a time.

    ulsam-search bench search [--trials 24] [--repeats 3] [--quick]

The same N short, fixed-size trials (mobilenet_v1@0.25 on 512 digits, 1 epoch, about 2 s with 1 thread each; a
space large enough that no architecture repeats) run four ways in one process: directly in a loop (``train_trial``
with no Ray), through ``run_search`` one at a time, through ``run_search`` two at a time, and the direct loop split
over two independent processes without Ray (the machine's own ceiling for two at a time: a shared, virtualised
2-core machine gives anywhere from 1.5x to 1.95x there from one run to the next). All four run in every repeat,
the order rotated from one repeat to the next (the direct loop and the runner alternate, A B, B A, ...), so that
drift hits them alike; every figure is taken within one repeat (paired) and printed per repeat, then as the median
with its range. Ray is started once before timing (``ray.init`` is not a per-trial cost). The runner's one-time
start (Tune's setup and each worker process importing torch and this package, about 4.5 s of imports) is measured as
the time to the first trial's start and reported apart from the steady per-trial overhead
``(runner(1) - start - direct) / N`` (goal <= 0.5 s); the speed-up from 1 to 2 concurrent trials (goal >= 1.8x) is
given after the start too, and overall. A goal is "met" only when every repeat meets it, "not met" when none does,
and otherwise "within noise".
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ray
from rich.console import Console
from rich.table import Table

from ulsam_search.config import SearchConfig
from ulsam_search.cost import count_cost
from ulsam_search.errors import OneLineParser
from ulsam_search.search._ray import start_local_ray
from ulsam_search.search.runner import prepare_run, run_search
from ulsam_search.search.trial import train_trial


def _config(trials: int, concurrent: int, name: str, images: int) -> SearchConfig:
    return SearchConfig(name=name, backbone="mobilenet_v1", width=0.25,
                        dataset={"name": "digits", "train_limit": images},
                        training={"epochs": 1, "batch_size": 64, "warmup_epochs": 0},
                        space={"blocks": [7, 8, 9, 10, 11, 12, 13], "groups": [1, 2, 4]},
                        sampler={"name": "random", "seed": 0}, n_trials=trials, max_concurrent=concurrent,
                        resources={"cpu": 1})


def _direct(config: SearchConfig, archs: list[str], runs: Path, barrier: Path | None = None) -> tuple[float, float]:
    """Train ``archs`` one after another in this process: (start, end) wall times.

    With a ``barrier`` folder, the clock starts once every process sharing it is ready (see ``_direct_pair``).
    """
    _, _, job = prepare_run(config, runs)
    Path(job.checkpoints).mkdir(parents=True, exist_ok=True)
    import torch._dynamo  # noqa: F401  as trial workers do when they start

    if barrier is not None:
        (barrier / config.name).touch()
        while len(list(barrier.iterdir())) < 2:
            time.sleep(0.01)
    start = time.time()
    for number, arch in enumerate(archs):
        cost = count_cost(arch, job.input_size, job.num_classes, config.cost_convention, job.small_input)
        train_trial({"arch": arch, "number": number, "macs": cost.macs, "params": cost.params}, job,
                    lambda result: None)
    return start, time.time()


def _direct_pair(archs: list[str], images: int, runs: Path) -> float:
    """The machine's own ceiling: half the trials each in two independent processes with no Ray, side by side."""
    barrier = runs / "barrier"
    barrier.mkdir(parents=True)
    workers = [subprocess.Popen([sys.executable, __file__, "--direct-part",
                                 json.dumps({"name": f"pair{k}", "archs": archs[k::2], "images": images,
                                             "runs": str(runs), "barrier": str(barrier)})],
                                stdout=subprocess.PIPE, text=True) for k in (0, 1)]
    spans = [json.loads(worker.communicate()[0].splitlines()[-1]) for worker in workers]
    if any(worker.returncode for worker in workers):
        raise RuntimeError("a direct benchmark process failed")
    return max(end for _, end in spans) - min(start for start, _ in spans)


WAYS = ("runner1", "direct", "runner2", "pair")


def _repeat(index: int, trials: int, images: int, runs: Path, archs: list[str] | None) -> tuple[dict, list[str]]:
    """One repeat of all four ways, in the order rotated by ``index``; the direct ways train ``archs`` (the first
    repeat's runner's, so its runner goes first)."""
    order = WAYS[index % 4:] + WAYS[:index % 4]
    if archs is None:
        order = ("runner1",) + tuple(way for way in order if way != "runner1")
    seconds, startup = {}, {}
    for way in order:
        if way.startswith("runner"):
            concurrent = int(way[-1])
            start, wall = time.perf_counter(), time.time()
            table = run_search(_config(trials, concurrent, f"{way}-{index}", images), runs, progress=False)
            seconds[way] = time.perf_counter() - start
            startup[way] = table["started_at"].min() - wall
            if way == "runner1" and archs is None:
                archs = table["arch"].tolist()
        elif way == "direct":
            start, end = _direct(_config(trials, 1, f"direct-{index}", images), archs, runs)
            seconds[way] = end - start
        else:
            seconds[way] = _direct_pair(archs, images, runs / f"pair-{index}")
    steady = {c: seconds[f"runner{c}"] - startup[f"runner{c}"] for c in (1, 2)}
    row = {"repeat": index, "order": " ".join(order), "trials": trials, "direct_s": seconds["direct"],
           "runner1_s": seconds["runner1"], "runner2_s": seconds["runner2"], "startup1_s": startup["runner1"],
           "startup2_s": startup["runner2"], "overhead_s_per_trial": (steady[1] - seconds["direct"]) / trials,
           "overhead_with_startup_s_per_trial": (seconds["runner1"] - seconds["direct"]) / trials,
           "scaling": steady[1] / steady[2], "scaling_with_startup": seconds["runner1"] / seconds["runner2"],
           "direct_pair_s": seconds["pair"], "machine_scaling": seconds["direct"] / seconds["pair"]}
    return row, archs


def _verdict(values: list[float], goal: float, at_most: bool) -> str:
    meets = [v <= goal if at_most else v >= goal for v in values]
    return "met" if all(meets) else "not met" if not any(meets) else "within noise (the range straddles the goal)"


def main(argv: list[str] | None = None) -> list[dict]:
    parser = OneLineParser(prog="ulsam-search bench search", description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=None, help="default 3 (2 with --quick)")
    parser.add_argument("--quick", action="store_true", help="4 trials on 128 images, 2 repeats (for tests)")
    parser.add_argument("--direct-part", help=argparse.SUPPRESS)  # one process of _direct_pair
    args = parser.parse_args(argv)
    if args.direct_part:
        part = json.loads(args.direct_part)
        span = _direct(_config(len(part["archs"]), 1, part["name"], part["images"]), part["archs"],
                       Path(part["runs"]), Path(part["barrier"]))
        print(json.dumps(span))
        return []
    trials, images = (4, 128) if args.quick else (args.trials, 512)
    repeats = args.repeats or (2 if args.quick else 3)
    started_ray = not ray.is_initialized()
    if started_ray:
        start_local_ray(2)
    rows, archs = [], None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for index in range(repeats):
                row, archs = _repeat(index, trials, images, Path(tmp), archs)
                rows.append(row)
    finally:
        if started_ray:
            ray.shutdown()
    _print(rows, images)
    return rows


def _print(rows: list[dict], images: int) -> None:
    table = Table(title=f"Search orchestration, {rows[0]['trials']} trials of mobilenet_v1@0.25 on {images} digits x "
                        f"1 epoch, {len(rows)} repeats (goals: overhead <= 0.5 s/trial, 1 -> 2 concurrent >= 1.8x)")
    columns = {"direct s": "direct_s", "runner x1 s": "runner1_s", "runner x2 s": "runner2_s",
               "start x1 s": "startup1_s", "start x2 s": "startup2_s", "overhead s/trial": "overhead_s_per_trial",
               "incl. start": "overhead_with_startup_s_per_trial", "1 -> 2 concurrent": "scaling",
               "incl. start ": "scaling_with_startup", "2 processes, no Ray": "machine_scaling"}
    table.add_column("repeat (order)", no_wrap=True)
    for column in columns:
        table.add_column(column, justify="right", no_wrap=True)  # one line per row: the tests read them back
    ratio = {"scaling", "scaling_with_startup", "machine_scaling"}
    for row in rows:
        table.add_row(f"{row['repeat']} ({row['order']})", *(
            f"{row[key]:.2f}x" if key in ratio else f"{row[key]:.2f}" for key in columns.values()))
    spread = {key: [row[key] for row in rows] for key in columns.values()}
    table.add_row("median (min-max)", *(
        f"{statistics.median(v):.2f}{'x' if key in ratio else ''} ({min(v):.2f}-{max(v):.2f})"
        for key, v in spread.items()))
    Console(width=300).print(table)
    print(f"overhead <= 0.5 s/trial (steady): {_verdict(spread['overhead_s_per_trial'], 0.5, True)}; "
          f"1 -> 2 concurrent >= 1.8x: {_verdict(spread['scaling'], 1.8, False)} "
          f"(this machine's own ceiling: {statistics.median(spread['machine_scaling']):.2f}x, "
          f"{min(spread['machine_scaling']):.2f}-{max(spread['machine_scaling']):.2f}x)")


if __name__ == "__main__":
    main()
