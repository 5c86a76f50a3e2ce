"""Search orchestration: what Ray Tune + Optuna add per trial, and how trials scale from 1 to 2 at a time.

    ulsam-search bench search [--trials 24] [--quick]

The same N short, fixed-size trials (mobilenet_v1@0.25 on 512 digits, 1 epoch, about 2 s with 1 thread each; a
space large enough that no architecture repeats) run three ways in one process: directly in a loop (``train_trial`` with no
Ray), through ``run_search`` one at a time, and through ``run_search`` two at a time. Ray is started once before
timing (``ray.init`` is not a per-trial cost). The runner's one-time start (Tune's setup and each worker process
importing torch and this package, about 4.5 s of imports) is measured as the time to the first trial's start and
reported apart from the steady per-trial overhead ``(runner(1) - start - direct) / N`` (goal <= 0.5 s); the
speed-up from 1 to 2 concurrent trials on this machine's 2 cores (goal >= 1.8x) is given after the start too, and
overall. Beside it, the machine's own ceiling: the direct loop split over two independent processes without Ray
(a shared, virtualised 2-core machine gives anywhere from 1.5x to 1.95x there from one run to the next).
"""

from __future__ import annotations

import argparse
import json
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
from ulsam_search.search import prepare_run, run_search, train_trial


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
    barrier.mkdir()
    workers = [subprocess.Popen([sys.executable, __file__, "--direct-part",
                                 json.dumps({"name": f"pair{k}", "archs": archs[k::2], "images": images,
                                             "runs": str(runs), "barrier": str(barrier)})],
                                stdout=subprocess.PIPE, text=True) for k in (0, 1)]
    spans = [json.loads(worker.communicate()[0].splitlines()[-1]) for worker in workers]
    if any(worker.returncode for worker in workers):
        raise RuntimeError("a direct benchmark process failed")
    return max(end for _, end in spans) - min(start for start, _ in spans)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="ulsam-search bench search", description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--quick", action="store_true", help="4 trials on 128 images (for tests)")
    parser.add_argument("--direct-part", help=argparse.SUPPRESS)  # one process of _direct_pair
    args = parser.parse_args(argv)
    if args.direct_part:
        part = json.loads(args.direct_part)
        span = _direct(_config(len(part["archs"]), 1, part["name"], part["images"]), part["archs"],
                       Path(part["runs"]), Path(part["barrier"]))
        print(json.dumps(span))
        return {}
    trials, images = (4, 128) if args.quick else (args.trials, 512)
    started_ray = not ray.is_initialized()
    if started_ray:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            runs = Path(tmp)
            seconds, tables, startup = {}, {}, {}
            for concurrent in (1, 2):
                start, wall = time.perf_counter(), time.time()
                tables[concurrent] = run_search(_config(trials, concurrent, f"c{concurrent}", images), runs, progress=False)
                seconds[concurrent] = time.perf_counter() - start
                startup[concurrent] = tables[concurrent]["started_at"].min() - wall
            archs = tables[1]["arch"].tolist()
            start, end = _direct(_config(trials, 1, "direct", images), archs, runs)
            seconds["direct"] = end - start
            seconds["pair"] = _direct_pair(archs, images, runs)
    finally:
        if started_ray:
            ray.shutdown()
    trained = {c: int(t["trial_id"].notna().sum()) for c, t in tables.items()}
    steady = {c: seconds[c] - startup[c] for c in (1, 2)}
    row = {"trials": trials, "trained": trained[1], "direct_s": seconds["direct"], "runner1_s": seconds[1],
           "runner2_s": seconds[2], "startup1_s": startup[1], "startup2_s": startup[2],
           "overhead_s_per_trial": (steady[1] - seconds["direct"]) / trials,
           "overhead_with_startup_s_per_trial": (seconds[1] - seconds["direct"]) / trials,
           "scaling": steady[1] / steady[2], "scaling_with_startup": seconds[1] / seconds[2],
           "direct_pair_s": seconds["pair"], "machine_scaling": seconds["direct"] / seconds["pair"]}
    table = Table(title=f"Search orchestration, {trials} trials of mobilenet_v1@0.25 on {images} digits x 1 epoch "
                        f"(goals: overhead <= 0.5 s/trial, 1 -> 2 concurrent >= 1.8x)")
    for column in ("direct s", "runner x1 s", "runner x2 s", "start x1 / x2 s", "overhead s/trial",
                   "incl. start", "1 -> 2 concurrent", "incl. start", "2 processes, no Ray"):
        table.add_column(column, justify="right")
    table.add_row(f"{row['direct_s']:.1f}", f"{row['runner1_s']:.1f}", f"{row['runner2_s']:.1f}",
                  f"{startup[1]:.1f} / {startup[2]:.1f}", f"{row['overhead_s_per_trial']:.2f}",
                  f"{row['overhead_with_startup_s_per_trial']:.2f}", f"{row['scaling']:.2f}x",
                  f"{row['scaling_with_startup']:.2f}x", f"{row['machine_scaling']:.2f}x")
    Console(width=160).print(table)
    return row


if __name__ == "__main__":
    main()
