"""The search runner: Ray Tune runs the trials, Optuna proposes them, the run directory keeps everything
(``rundir``).

Before a trial is launched its cost is counted and the proposal is routed (``routing``): infeasible and duplicate
ones are told to Optuna at once and never trained. Resume reads the Optuna journal: finished trials stay as they
are, interrupted ones are launched again under their own trial number (from their checkpoint), and new ones are
asked for until the run holds ``n_trials``. The first trial of a new run is the backbone without ULSAM (where the
space holds it, and unless ``space.baseline`` is off): every report compares against it.

The space is built by ``build_space`` (``SearchConfig -> space``), ``space.build_space`` unless given: the runner
knows no study kinds, so an ablation passes the builder of its cell space.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from pathlib import Path

from .._io import atomic_path
from ..config import SearchConfig, load_search_config
from ..cost import count_cost
from ..data import dataset_info, get_dataset
from ..errors import InvalidInput
from ..models.arch import Architecture
from .backends import get_backend
from .rundir import RunFacts, RunPaths
from .samplers import make_sampler
from .space import SearchSpace, param_name
from .space import build_space as search_space
from .trial import TrialJob

# config -> the space its trials are drawn from; an ablation's builds its cell space, which works the same way
SpaceBuilder = Callable[[SearchConfig], SearchSpace]


def prepare_run(config: SearchConfig, runs_dir: str | os.PathLike = "runs", build_space: SpaceBuilder | None = None):
    """``(paths, space, job)`` of the run ``config`` describes, once everything that can be checked before a run
    directory exists is (bad input writes nothing)."""
    if build_space is None and config.study is not None:  # the runner cannot know a study's cells (a later layer)
        raise InvalidInput("an ablation study's space is its cells: run it with ulsam_search.run_search or "
                           "`ulsam-search ablate`")
    space = (build_space or search_space)(config)
    data = config.dataset
    try:
        info = dataset_info(data.name, data.root, input_size=data.input_size, num_classes=data.num_classes,
                            download=data.download, options=data.options)
    except InvalidInput as error:
        raise InvalidInput(f"dataset: {error}") from None
    if info.num_classes < 2:
        raise InvalidInput(f"dataset: {data.name} at {info.root} has {info.num_classes} class; a classifier needs at "
                           f"least 2 (and chance level, the accuracy floor, would be 100%)")
    make_sampler(config, space)  # options the sampler refuses are bad input, before a run directory exists
    if config.training.pretrained and not Path(config.training.pretrained).is_file():
        raise InvalidInput(f"training.pretrained: {config.training.pretrained} does not exist")
    small_input = info.small_input if config.small_input is None else config.small_input
    cheapest = count_cost(space.cheapest(), info.input_size, info.num_classes, config.cost_convention, small_input)
    for field, limit, value in (("max_macs", config.constraints.max_macs, cheapest.macs),
                                ("max_params", config.constraints.max_params, cheapest.params)):
        if limit is not None and value > limit:
            raise InvalidInput(f"constraints.{field}: {limit:,} is below the cheapest architecture in the space "
                               f"({cheapest.arch}: {value:,}); nothing could meet it")
    paths = RunPaths(Path(runs_dir).resolve() / config.name)
    get_backend(config.backend.name).check(config, space)
    table = str(Path(config.backend.table)) if config.backend.table is not None else None
    job = TrialJob(config, str(paths.checkpoints), small_input, info.input_size, info.num_classes, table)
    return paths, space, job


def run_search(config: SearchConfig, runs_dir: str | os.PathLike = "runs", *, progress: bool = True,
               build_space: SpaceBuilder | None = None, retry_failed: bool = False):
    """Run (or continue) the search ``config`` describes in ``runs_dir/<name>``; returns the trials table.
    ``retry_failed``: every architecture whose trials all failed gets one more trial (beyond ``n_trials``)."""
    import logging

    import optuna
    import ray

    from . import _ray

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Tune's per-trial CSV/JSON/TensorBoard loggers cost time per result and duplicate trials.csv.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Tune's result grid looks for the per-trial result.json files we turn off; trials.csv holds the results.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    config = config.with_resolved_paths()  # on the driver: trials run in folders of their own
    paths, space, job = prepare_run(config, runs_dir, build_space)
    if paths.config.exists():
        _check_same_run(paths, config)
    address = config.ray.address or os.environ.get("RAY_ADDRESS")
    if not address and not ray.is_initialized():
        _ray.check_resources(config, lambda: [_ray.local_resources()], "this machine")
    started_ray = _ray.connect_ray(address, config.ray.dashboard)
    try:
        if address:
            _ray.check_resources(config, _ray.cluster_nodes, f"the cluster at {address}", config.ray.wait_for_nodes_s)
        _start_run_directory(config, paths, job)
        return _tune(config, space, paths, job, progress, retry_failed)
    finally:
        if started_ray:
            ray.shutdown()


def _start_run_directory(config: SearchConfig, paths: RunPaths, job: TrialJob) -> None:
    """The frozen config, the checkpoints folder and what the run resolved (``run.json``)."""
    paths.checkpoints.mkdir(parents=True, exist_ok=True)
    with atomic_path(paths.config) as temporary:
        temporary.write_text(config.to_yaml())
    baseline = count_cost(Architecture(config.backbone, config.width), job.input_size, job.num_classes,
                          config.cost_convention, job.small_input)
    RunFacts(job.input_size, job.num_classes, job.small_input, baseline.arch, baseline.macs,
             baseline.params).write(paths.facts)


def _tune(config: SearchConfig, space, paths: RunPaths, job: TrialJob, progress: bool, retry_failed: bool):
    """Run the trials under Ray Tune (a new ``ray/attempt-<k>`` each time) until the run holds ``n_trials``."""
    from ray import tune

    from . import _ray
    from .progress import Progress
    from .records import trials_table
    from .schedulers import make_scheduler

    scheduler = make_scheduler(config)
    cost_of = partial(count_cost, input_size=job.input_size, num_classes=job.num_classes,
                      convention=config.cost_convention, small_input=job.small_input)
    attempt = 1 + sum(1 for _ in paths.ray.glob("attempt-*")) if paths.ray.exists() else 1
    with Progress(progress, config) as view:
        searcher = _ray.RoutingSearcher(_ray.SearchContext(config, space, paths, cost_of, scheduler, view,
                                                           retry_failed))
        if scheduler is not None:
            _ray.restore_rungs(scheduler, searcher.study)
        resources = {"cpu": config.resources.cpu, "gpu": config.resources.gpu}
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(_ray.TrialTrainable, job=job), resources),
            tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=-1,
                                        max_concurrent_trials=config.max_concurrent, reuse_actors=True),
            run_config=tune.RunConfig(name=f"attempt-{attempt}", storage_path=str(paths.ray), verbose=0,
                                      callbacks=[_ray.RetryCounter(searcher)],
                                      failure_config=tune.FailureConfig(max_failures=config.max_retries)))
        tuner.fit()
    return trials_table(searcher.study, [param_name(b) for b in space.blocks])


def _check_same_run(paths: RunPaths, config: SearchConfig) -> None:
    """A run name may be reused only to continue the same search (a larger n_trials or another address is fine, and
    a dataset option spelled out at its default is the same data, as `train --resume` takes it)."""
    saved, current = (c.model_dump() for c in (load_search_config(paths.config), config))
    for dumped in (saved, current):
        for key in ("n_trials", "ray", "max_concurrent", "resources", "confirm"):  # confirm: a later stage's settings
            dumped.pop(key)
        dataset = dumped["dataset"]
        dataset["options"] = get_dataset(dataset["name"]).with_defaults(dataset["options"])
    differ = sorted(k for k in current if current[k] != saved[k])
    if differ:
        raise InvalidInput(f"run {paths.root} already exists with a different config ({', '.join(differ)}); "
                           f"continue it with `ulsam-search resume {paths.root}` or choose another --name")


def resume_search(run_dir: str | os.PathLike, *, progress: bool = True, address: str | None = None,
                  build_space: SpaceBuilder | None = None, retry_failed: bool = False):
    """Continue the run in ``run_dir`` from its frozen config and Optuna journal."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise InvalidInput(f"{run_dir} is not a run directory (no config.yaml); runs live in runs/<name>/")
    config = load_search_config(run_dir / "config.yaml").with_overrides(name=run_dir.resolve().name, address=address)
    return run_search(config, run_dir.resolve().parent, progress=progress, build_space=build_space,
                      retry_failed=retry_failed)
