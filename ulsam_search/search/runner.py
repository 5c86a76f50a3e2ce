"""The search runner: Ray Tune runs the trials, Optuna proposes them, the run directory keeps everything.

    runs/<name>/config.yaml   the frozen config          runs/<name>/optuna.log    Optuna JournalStorage
    runs/<name>/trials.csv    one row per finished trial  runs/<name>/ray/          Ray Tune experiment state
    runs/<name>/checkpoints/  per-trial training checkpoints (a resumed trial continues from its last epoch)
    runs/<name>/run.json      what the run resolved: input size, classes, small_input, the baseline's cost

Before a trial is launched its cost is counted: an architecture that breaks a cost constraint is told to Optuna
at once as INFEASIBLE (a constraint violation) and never trained; one already evaluated (same canonical ARCH, same
budget) is told the earlier result and not trained again. Resume reads the Optuna journal: finished trials stay as
they are, interrupted ones are launched again under their own trial number (from their checkpoint), and new ones
are asked for until the run holds ``n_trials``. The first trial of a new run is the backbone without ULSAM (where
the space holds it, and unless ``space.baseline`` is off): every report compares against it.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sys
import threading
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

from ..ablation import build_cell_space
from .._io import atomic_path
from ..models.arch import Architecture, build_model
from ..config import OBJECTIVES, SearchConfig, load_search_config
from ..cost import count_cost, measure_latency
from ..data import dataset_info, load_data
from ..errors import InvalidInput
from .rundir import RunFacts, RunPaths
from .records import COMPLETE, FAILED, INFEASIBLE, OBJECTIVE_COLUMNS, PRUNED, pareto_set, trials_table, write_table
from .space import SearchSpace, build_space, param_name
from .backends.table import load_table, read_table
from ..train import (EpochMetrics, autocast_dtype, load_checkpoint, load_pretrained, run_facts, seed_everything,
                    train_epochs)

STUDY_NAME = "ulsam-search"


@dataclass(frozen=True)
class TrialJob:
    """What every trial needs besides its ARCH (shipped once to the cluster by ``tune.with_parameters``)."""

    config: SearchConfig
    checkpoints: str
    small_input: bool
    input_size: int
    num_classes: int
    table: str | None = None  # the tabular benchmark's absolute path (backend table)


def trial_results(trial_config: dict, job: TrialJob, *, node: str = "local",
                  use_gpu: bool = False) -> Iterator[dict]:
    """Train one architecture (or look it up in a tabular benchmark), yielding a result with every objective and
    the epochs so far (``history``) after every epoch.

    A failure is yielded as a last result with an ``error`` message rather than raised. The trial's checkpoint
    (``checkpoints/trial_<number>.pt``) makes a relaunched trial continue where it stopped.
    """
    import torch

    config = job.config
    torch.set_num_threads(max(1, int(config.resources.cpu)))
    device = "cuda" if use_gpu and torch.cuda.is_available() else "cpu"
    if device == "cuda" and config.resources.gpu < 1:
        # Ray shares the GPU but not its memory: cap each trial at its share, so one trial's OOM stays its own
        torch.cuda.set_per_process_memory_fraction(config.resources.gpu)
    started = time.perf_counter()
    seed = trial_config.get("seed", config.training.seed)  # an ablation's cells train once per seed
    base = {"arch": trial_config["arch"], "number": trial_config["number"], "node": node,
            "baseline": trial_config.get("baseline", False),
            "epochs_budget": config.training.epochs, "started_at": time.time(), "epoch": 0, "resumed_from_epoch": 0,
            "promoted_through": trial_config.get("promoted_through", 0)}
    # Every result carries every objective (Tune checks each one for the searcher's metrics), a failure's too.
    metrics = {"top1": math.nan, "top5": math.nan, "val_loss": math.nan, "latency_ms": math.nan,
               "macs": trial_config["macs"], "params": trial_config["params"]}
    history: list[dict] = []
    try:
        _check_paths_on_node(job, node)
        if job.table is not None:
            recorded = load_table(job.table).answer(trial_config["arch"], seed, config.training.epochs)
            epochs, time_model = iter(recorded.epochs), lambda: recorded.latency_ms
        else:
            epochs, time_model, history = _train(trial_config, job, device, seed)
            base["resumed_from_epoch"] = len(history)
        if config.measures_latency:
            metrics["latency_ms"] = trial_config.get("latency_ms") or time_model()
            limit = config.constraints.max_latency_ms
            if limit is not None and metrics["latency_ms"] > limit:  # never trained
                yield {**base, **metrics, "infeasible": True, "seconds": time.perf_counter() - started}
                return
        for epoch in epochs:
            base["epoch"] = epoch.epoch
            metrics.update(top1=epoch.top1, top5=epoch.top5, val_loss=epoch.val_loss)
            if len(history) < epoch.epoch:
                history.append(_epoch_record(epoch))
            yield {**base, **metrics, "history": list(history), "seconds": time.perf_counter() - started}
    except Exception as error:  # recorded as FAILED with its message; the search goes on
        message = f"{type(error).__name__}: {error}"
        if isinstance(error, (torch.OutOfMemoryError, MemoryError)):
            torch.cuda.empty_cache()  # the actor trains the next trial
            message += (" (lower training.batch_size, or give each trial more memory: resources.gpu / resources.cpu; "
                        "a trial sharing a GPU may use resources.gpu x its memory)")
        yield {**base, **metrics, "history": history, "error": message, "seconds": time.perf_counter() - started}


def _check_paths_on_node(job: TrialJob, node: str) -> None:
    """Fail a trial on a node that lacks a file the run names: on a cluster every node needs them at one path."""
    config = job.config
    paths = {"dataset.root": config.dataset.files,
             "training.pretrained": config.training.pretrained, "backend.table": job.table}
    where = f"node {node} ({socket.gethostname()}); every node of the cluster needs it at the same path"
    for field, path in paths.items():
        if path is not None and not os.path.exists(path):
            raise FileNotFoundError(f"{field} {path} does not exist on {where}")
    if paths["dataset.root"] is not None:
        try:  # the root is there, but is the data set in it?
            dataset_info(config.dataset.name, paths["dataset.root"], num_classes=config.dataset.num_classes)
        except InvalidInput as error:
            raise FileNotFoundError(f"{error} (on {where})") from None


def _epoch_record(epoch: EpochMetrics | dict) -> dict:
    """What a trial's ``history`` keeps of an epoch (the tabular benchmark is built from it)."""
    values = epoch if isinstance(epoch, dict) else epoch.__dict__
    return {key: values[key] for key in ("epoch", "top1", "top5", "val_loss", "train_seconds")}


def _train(trial_config: dict, job: TrialJob, device: str, seed: int):
    """(epochs to come, a function timing the model, the epochs a checkpoint already holds) of a trained trial.

    Nothing trains before the first epoch is asked for, so a latency limit can stop the trial first.
    """
    config = job.config
    data = load_data(config.dataset.name, config.dataset.root, batch_size=config.training.batch_size,
                     input_size=config.dataset.input_size, workers=config.dataset.workers, device=device,
                     seed=seed, num_classes=config.dataset.num_classes, train_limit=config.dataset.train_limit)
    seed_everything(seed)
    model = build_model(trial_config["arch"], data.num_classes, small_input=job.small_input)
    if config.training.pretrained:
        load_pretrained(model, config.training.pretrained)
    checkpoint = Path(job.checkpoints) / f"trial_{trial_config['number']:05d}.pt"
    resume = load_checkpoint(checkpoint) if checkpoint.exists() else None
    done = [_epoch_record(h) for h in resume["history"]] if resume is not None else []
    if len(done) >= config.training.epochs:
        epochs = iter([EpochMetrics(**resume["history"][-1])])  # finished before the driver heard of it
    else:
        facts = run_facts(config.dataset.name, config.dataset.files, config.dataset.train_limit,
                          config.training.batch_size, job.input_size, job.small_input)
        epochs = train_epochs(model, data, replace(config.training.train_config(device), seed=seed),
                              checkpoint_path=checkpoint, resume=resume, run_facts=facts)
    return epochs, lambda: _time_model(model, job, device), done


def _latency_runtime(config: SearchConfig, device: str) -> dict:
    """Autocast dtype and layout to time with: as the trial trains on ``device`` (``latency.as_trained``; fp16 has
    no CPU path, so a CPU timing of an fp16 run is fp32), else fp32 NCHW."""
    import torch

    if not config.latency.as_trained:
        return {"amp_dtype": None, "channels_last": False}
    amp = "off" if config.training.amp == "fp16" and device == "cpu" else config.training.amp
    return {"amp_dtype": autocast_dtype(amp, torch.device(device)), "channels_last": config.training.channels_last}


def _time_model(model, job: TrialJob, trial_device: str) -> float:
    """ms per image of ``model`` as ``config.latency`` asks (its device, batch, threads, warm-up and repeats)."""
    import torch

    settings = job.config.latency
    device = trial_device if settings.device == "trial" else settings.device
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("latency.device is cuda but this trial's node has no CUDA device")
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads or threads)
    try:
        return measure_latency(model, job.input_size, batch=settings.batch_size, device=device,
                               warmup=settings.warmup, runs=settings.repeats,
                               **_latency_runtime(job.config, device)).ms_per_image
    finally:
        torch.set_num_threads(threads)


def train_trial(trial_config: dict, job: TrialJob, report: Callable[[dict], None], **kw) -> None:
    """``trial_results`` without Ray: every result goes to ``report`` (the benchmark's direct baseline)."""
    for result in trial_results(trial_config, job, **kw):
        report(result)


def _trial_trainable():
    """The Ray Tune trainable: one epoch per ``step`` in the actor's main thread.

    A class trainable rather than a function one: Tune runs function trainables in a second thread, which made
    each trial ~30% slower here. Actors are reused between trials (``reset_config``); checkpoints are the
    trial's own files, so Tune's are empty.
    """
    import ray
    from ray import tune

    class TrialTrainable(tune.Trainable):
        def setup(self, config: dict, job: TrialJob) -> None:
            import torch._dynamo  # noqa: F401  the first optimizer imports it (~2.4 s): a worker's cost, not a trial's

            self.job = job
            self._start(config)

        def _start(self, config: dict) -> None:
            self.results = trial_results(config, self.job, node=ray.get_runtime_context().get_node_id()[:12],
                                         use_gpu=bool(ray.get_gpu_ids()))

        def step(self) -> dict:
            result = next(self.results)
            ended = bool(result.get("error") or result.get("infeasible"))
            return {**result, "done": ended or result["epoch"] >= result["epochs_budget"]}

        def reset_config(self, new_config: dict) -> bool:
            self.results.close()
            self._start(new_config)
            return True

        def cleanup(self) -> None:
            self.results.close()

        def save_checkpoint(self, checkpoint_dir: str) -> dict:
            return {}

        def load_checkpoint(self, checkpoint) -> None:
            pass

    return TrialTrainable


def _grid_sampler_class():
    import optuna

    class GridSampler(optuna.samplers.GridSampler):
        """Optuna's grid sampler that visits ``first`` (the baseline) first, and without ``Study.stop()`` on the
        last grid point: outside ``optimize()`` that raises from ``tell`` after the trial is stored, so the run's
        table missed its last trial. The runner stops at ``n_trials`` itself.

        Trial k takes grid point k of the seeded shuffle, and an enqueued trial takes none, so an enqueued baseline
        would be proposed again and leave one grid point unvisited; moving it to the front does neither.
        """

        def __init__(self, search_space, seed: int, first: dict | None = None) -> None:
            super().__init__(search_space, seed=seed)
            if first is not None:
                point = tuple(first[name] for name in self._param_names)
                self._all_grids.remove(point)
                self._all_grids.insert(0, point)

        def after_trial(self, study, trial, state, values) -> None:
            pass

    return GridSampler


def make_sampler(config: SearchConfig, space: SearchSpace, trials_so_far: int = 0):
    """The Optuna sampler the config names, always passed explicitly (Optuna 5 changed the MO default).

    A resumed run seeds it with ``seed + trials_so_far``: the same seed would replay the first proposals. Not the
    grid sampler: its seed shuffles the grid, trial k takes grid point k, and it skips the points already visited.
    """
    import optuna

    options = dict(config.sampler.options)
    seed = config.sampler.seed + (trials_so_far if config.sampler.name != "grid" else 0)
    factories = {
        "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed, **options),
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed, **options),
        "gp": lambda: optuna.samplers.GPSampler(seed=seed, **options),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed, **options),
        "grid": lambda: _grid_sampler_class()(space.grid(), seed=seed, first=_baseline_params(config, space),
                                              **options),
    }
    try:
        return _picklable(factories[config.sampler.name]())
    except (TypeError, ValueError) as error:
        raise InvalidInput(f"sampler.options: {config.sampler.name} refuses {options}: {error}") from None


def _picklable(sampler):
    """``sampler`` made picklable with the searcher Ray Tune saves: Optuna 5.1's NSGA-II holds a thread lock, which
    cannot be pickled, so its class becomes a subclass that leaves the locks out and makes fresh ones on loading."""
    reentrant = {key: isinstance(value, type(threading.RLock())) for key, value in vars(sampler).items()
                 if isinstance(value, (type(threading.Lock()), type(threading.RLock())))}
    if not reentrant:
        return sampler

    class Picklable(type(sampler)):
        def __getstate__(self):
            return {key: value for key, value in self.__dict__.items() if key not in reentrant}

        def __setstate__(self, state):
            self.__dict__.update(state)
            for key, rlock in reentrant.items():
                setattr(self, key, threading.RLock() if rlock else threading.Lock())

    Picklable.__name__ = Picklable.__qualname__ = type(sampler).__name__
    sampler.__class__ = Picklable
    return sampler


def _baseline_params(config: SearchConfig, space: SearchSpace) -> dict | None:
    """The first trial of a new run: the backbone without ULSAM, where the space holds it and the config wants it."""
    return space.baseline_params() if config.space.baseline else None


CONSTRAINTS = ("max_macs", "max_params", "max_latency_ms", "min_top1")


def _constrain(ot_trial, **violations: float) -> None:
    """Optuna constraint values (> 0 violates; NSGA-II, TPE and GP read them), the same four on every trial."""
    for key in CONSTRAINTS:
        ot_trial.set_constraint(key, float(violations.get(key, 0.0)))


class _Progress:
    """Progress on stderr: trial counts by status, the Pareto set and the time left.

    A terminal gets a live table; a log (no terminal, where rich's live view would print only at the end) gets a
    line each time a trial finishes and the front's table once at the end.
    """

    def __init__(self, enabled: bool, config: SearchConfig) -> None:
        self.enabled, self.config = enabled, config
        self.started = time.perf_counter()
        self.console = self.live = self.view = None
        self.running = self.reported = 0

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.live import Live

            self.console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)  # logs: whole ARCHs
            if self.console.is_terminal:
                self.live = Live(console=self.console, refresh_per_second=2, transient=False)
                self.live.__enter__()
        return self

    def update(self, table, resumed_from: int) -> None:
        if self.console is None:
            return
        from rich.table import Table

        counts = {status: int((table["status"] == status).sum()) for status in (COMPLETE, PRUNED, FAILED, INFEASIBLE)}
        done = len(table)
        elapsed = time.perf_counter() - self.started
        new = done - resumed_from
        remaining = self.config.n_trials - done
        eta = f"{elapsed / new * remaining:.0f} s" if new > 0 and remaining > 0 else "-"
        front = pareto_set(table, self.config.objectives)
        title = (f"{self.config.name}: {done}/{self.config.n_trials} trials done, {self.running} running, "
                 f"{counts[COMPLETE]} complete, {counts[PRUNED]} pruned, {counts[FAILED]} failed, "
                 f"{counts[INFEASIBLE]} infeasible; Pareto set {len(front)}; elapsed {elapsed:.0f} s, ETA {eta}")
        self.view = Table(title=title, title_justify="left")
        for column in ("MACs", "params", "top-1 %", "ARCH"):
            self.view.add_column(column, justify="left" if column == "ARCH" else "right")
        for row in front.head(10).itertuples():
            self.view.add_row(f"{row.macs:,.0f}", f"{row.params:,.0f}", f"{row.top1:.2f}", row.arch)
        if self.live is not None:
            self.live.update(self.view)
        elif done > self.reported:
            self.reported = done
            self.console.print(title, highlight=False)

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)
        elif self.view is not None:
            self.console.print(self.view)

    def __getstate__(self) -> dict:  # Tune pickles the searcher with its experiment state
        return {**self.__dict__, "console": None, "live": None, "view": None}


def _make_searcher(config: SearchConfig, space: SearchSpace, paths: RunPaths, cost_of: Callable,
                   scheduler, progress: _Progress):
    """An OptunaSearch that routes each proposal (train, infeasible, duplicate) and tells Optuna how it ended."""
    import optuna
    from ray.tune.search import Searcher
    from ray.tune.search.optuna import OptunaSearch

    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(paths.journal)))
    existing = optuna.study.get_all_study_names(storage)
    trials_so_far = len(optuna.load_study(study_name=STUDY_NAME, storage=storage).trials) if existing else 0
    blocks = [param_name(b) for b in space.blocks]
    objectives = list(config.objectives)
    budget = config.training.epochs
    constraints = config.constraints

    def experiment(params) -> tuple[Architecture, int, str]:
        """(ARCH, seed, key) of a proposal; equal keys are one experiment, trained once."""
        arch, seed = space.from_params(params), space.seed_of(params)
        return arch, config.training.seed if seed is None else seed, str(arch) if seed is None else f"{arch} #{seed}"

    class Searcher_(OptunaSearch):
        def __init__(self) -> None:
            super().__init__(space=lambda trial: {"arch": str(space.suggest(trial))},
                             metric=[OBJECTIVE_COLUMNS[o][0] for o in objectives],  # the result keys (latency_ms)
                             mode=[OBJECTIVES[o] for o in objectives], sampler=make_sampler(config, space, trials_so_far),
                             study_name=STUDY_NAME, storage=storage)
            self.study = self._ot_study
            if self.study.metric_names is None:  # optuna-dashboard's axes: the trials.csv columns, not "Objective 0"
                with warnings.catch_warnings():  # "set_metric_names is experimental (supported from v3.2.0)"
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    self.study.set_metric_names([OBJECTIVE_COLUMNS[o][0] for o in objectives])
            self.finished: dict[str, optuna.trial.FrozenTrial] = {}
            self.running: dict[str, int] = {}
            self.waiting: dict[str, list] = {}  # arch -> duplicates proposed while it trains
            self.relaunch: list = []  # interrupted trials of an earlier attempt
            self.retries: dict[str, int] = {}  # Tune trial id -> relaunches after its process or node died
            self.latency: dict[str, float] = json.loads(paths.latency.read_text()) if paths.latency.exists() else {}
            earlier = self.study.get_trials(deepcopy=False)
            baseline = _baseline_params(config, space)
            if not earlier and baseline is not None and config.sampler.name != "grid":  # the grid puts it first
                self.study.enqueue_trial(baseline)  # the first trial asked; WAITING until then
            for trial in earlier:
                if trial.state.is_finished():
                    self.finished.setdefault(experiment(trial.params)[2], trial)
                elif trial.state == optuna.trial.TrialState.RUNNING:
                    self.relaunch.append(optuna.trial.Trial(self.study, trial._trial_id))
            self.resumed_from = len(self.finished)
            # counted from here on, not re-read from the journal at every poll
            self.asked = sum(t.state != optuna.trial.TrialState.WAITING for t in earlier)
            self._write()

        def save(self, checkpoint_path: str) -> None:
            """Nothing to pickle: the study lives in optuna.log and the routing state is rebuilt from it."""

        def suggest(self, trial_id: str):
            while True:
                if self.relaunch:  # params are stored at ask time, before anything else can be interrupted
                    ot_trial = self.relaunch.pop(0)
                elif self.asked < config.n_trials:
                    super().suggest(trial_id)
                    self.asked += 1
                    ot_trial = self._ot_trials.pop(trial_id)
                else:
                    return Searcher.FINISHED if not self.running and not self.waiting else None
                launch = self._route(ot_trial)
                if launch is not None:
                    self._ot_trials[trial_id] = ot_trial
                    self.running[experiment(ot_trial.params)[2]] = ot_trial.number
                    progress.running = len(self.running)
                    return launch

        def _route(self, ot_trial) -> dict | None:
            """The trial config to launch, or None when the proposal was settled without training."""
            arch, seed, key = experiment(ot_trial.params)
            ot_trial.set_user_attr("arch", str(arch))
            cost = cost_of(arch)
            latency = self.latency.get(str(arch))  # measured by an earlier trial of this ARCH
            ot_trial.set_user_attr("choices", {param_name(b): c for b, c in arch.choices().items()
                                               if param_name(b) in blocks})
            for name, value in (("backbone", arch.backbone), ("width", arch.width), ("macs", cost.macs),
                               ("params", cost.params), ("flops", cost.flops), ("epochs_budget", budget),
                               ("seed", seed), ("latency_ms", latency)):
                if value is not None:
                    ot_trial.set_user_attr(name, value)
            violations = {field: value - limit for field, value, limit in (
                ("max_macs", cost.macs, constraints.max_macs), ("max_params", cost.params, constraints.max_params),
                ("max_latency_ms", latency, constraints.max_latency_ms))
                if limit is not None and value is not None and value > limit}
            if violations:
                self._infeasible(ot_trial, violations, cost, latency)
                return None
            earlier = self.finished.get(key)
            if earlier is not None:
                self._copy(ot_trial, earlier)
                return None
            if key in self.running:
                self.waiting.setdefault(key, []).append(ot_trial)
                return None
            return {"arch": str(arch), "number": ot_trial.number, "macs": cost.macs, "params": cost.params,
                    "baseline": not arch.placements, "seed": seed, "latency_ms": latency,
                    "promoted_through": ot_trial.user_attrs.get("promoted_through", 0)}  # a relaunch's rungs passed

        def _infeasible(self, ot_trial, violations: dict[str, float], cost, latency: float | None) -> None:
            """Tell Optuna a constraint-breaking proposal (top-1 0, so samplers steer away); it is never trained."""
            broken = {"max_macs": lambda: f"MACs {cost.macs:,} > max_macs {constraints.max_macs:,}",
                      "max_params": lambda: f"params {cost.params:,} > max_params {constraints.max_params:,}",
                      "max_latency_ms": lambda: f"latency {latency:.3g} ms > max_latency_ms "
                                                f"{constraints.max_latency_ms:g}"}
            ot_trial.set_user_attr("status", INFEASIBLE)
            ot_trial.set_user_attr("error", "; ".join(broken[field]() for field in violations))
            ot_trial.set_user_attr("feasible", False)
            ot_trial.set_user_attr("epochs_done", 0)
            _constrain(ot_trial, **violations)
            untrained = {"top1": 0.0, "macs": float(cost.macs), "params": float(cost.params),
                         "latency": math.inf if latency is None else latency}
            self._tell(ot_trial, [untrained[o] for o in objectives])

        def on_trial_result(self, trial_id: str, result: dict) -> None:
            """Tune calls this only for results the scheduler let go on: the journal then knows which rungs a trial
            was promoted through, so a relaunch after a kill is not judged at them again (nor skips one it was not)."""
            ot_trial = self._ot_trials.get(trial_id)
            if scheduler is not None and ot_trial is not None and result.get("epoch"):  # FIFO promotes everything
                ot_trial.set_user_attr("promoted_through", int(result["epoch"]))

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            ot_trial = self._ot_trials.pop(trial_id, None)
            if ot_trial is None:
                return
            key = experiment(ot_trial.params)[2]
            result = result or {}
            arch = ot_trial.user_attrs["arch"]
            self._remember_latency(arch, result.get("latency_ms"))
            if arch in self.latency:  # the first measurement of an ARCH stands for all its trials
                result = {**result, "latency_ms": self.latency[arch]}
            epochs = int(result.get("epoch") or 0)
            ot_trial.set_user_attr("trial_id", trial_id)
            for name in ("top1", "top5", "val_loss", "latency_ms", "seconds", "node", "started_at",
                         "resumed_from_epoch", "history"):
                if result.get(name) is not None and result[name] == result[name]:  # not missing, not NaN
                    ot_trial.set_user_attr(name, result[name])
            ot_trial.set_user_attr("epochs_done", epochs)
            retries = self.retries.pop(trial_id, 0)
            ot_trial.set_user_attr("retries", retries)
            self.running.pop(key, None)
            progress.running = len(self.running)
            if result.get("infeasible"):  # timed on its node before training
                latency = float(result["latency_ms"])
                self._infeasible(ot_trial, {"max_latency_ms": latency - constraints.max_latency_ms},
                                 cost_of(Architecture.parse(arch)), latency)
            elif error or result.get("error"):
                ot_trial.set_user_attr("status", FAILED)
                ot_trial.set_user_attr("error", result.get("error") or (
                    f"the trial's process died {retries + 1} time(s) (its node was lost, or it was killed or ran out "
                    f"of memory); Ray's error is in {paths.ray}"))
                self._tell(ot_trial, None, optuna.trial.TrialState.FAIL)
            elif epochs >= budget:
                top1 = float(result["top1"])
                feasible = constraints.min_top1 is None or top1 >= constraints.min_top1
                ot_trial.set_user_attr("status", COMPLETE)
                ot_trial.set_user_attr("feasible", feasible)
                _constrain(ot_trial, min_top1=constraints.min_top1 - top1 if constraints.min_top1 is not None else 0.0)
                self._tell(ot_trial, [float(result[OBJECTIVE_COLUMNS[o][0]]) for o in objectives])
            elif scheduler is not None and trial_id in scheduler.stopped:
                ot_trial.set_user_attr("status", PRUNED)
                _constrain(ot_trial)
                self._tell(ot_trial, None, optuna.trial.TrialState.PRUNED)
            else:  # stopped by an interrupt: stays RUNNING in the journal and is launched again on resume
                return
            frozen = self.study._storage.get_trial(ot_trial._trial_id)
            self.finished.setdefault(key, frozen)
            for duplicate in self.waiting.pop(key, []):
                self._copy(duplicate, frozen)

        def _copy(self, ot_trial, earlier) -> None:
            for key, value in earlier.user_attrs.items():  # the results, not the run that produced them
                if key not in ("trial_id", "seconds", "started_at", "node"):
                    ot_trial.set_user_attr(key, value)
            _constrain(ot_trial, **earlier.constraints)
            ot_trial.set_user_attr("duplicate_of", earlier.number)
            self._tell(ot_trial, earlier.values, earlier.state)

        def _remember_latency(self, arch: str, latency: float | None) -> None:
            """Each ARCH is timed once per run: later trials of it (seeds, relaunches) reuse ``latency.json``."""
            if latency is None or latency != latency or arch in self.latency:
                return
            self.latency[arch] = float(latency)
            with atomic_path(paths.latency) as temporary:
                temporary.write_text(json.dumps(self.latency, indent=1) + "\n")

        def _tell(self, ot_trial, values, state=None) -> None:
            self.study.tell(ot_trial, values, state=state or optuna.trial.TrialState.COMPLETE)
            self._write()

        def _write(self) -> None:
            table = trials_table(self.study, blocks)
            write_table(table, paths.trials)
            progress.update(table, self.resumed_from)

    return Searcher_()


def _retry_counter(searcher):
    """A Tune callback counting, per trial, the relaunches after a lost process or node (``FailureConfig``)."""
    from ray.tune import Callback

    class RetryCounter(Callback):
        def on_trial_recover(self, iteration, trials, trial, **info) -> None:
            searcher.retries[trial.trial_id] = searcher.retries.get(trial.trial_id, 0) + 1

    return RetryCounter()


def _check_address(address: str) -> None:
    """Fail fast (exit 2) on a Ray address nothing listens on, instead of Ray's long connection retries."""
    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=3).close()
    except (OSError, ValueError) as error:
        raise InvalidInput(f"ray.address {address} is unreachable ({error}); start a cluster with `ray start --head` "
                           f"or drop --address to run locally") from None


def _connect_ray(address: str | None, dashboard: bool = False) -> bool:
    """Join ``address``, or start a local instance; True when this call started Ray.

    A local instance has no dashboard unless asked, and then it listens on 127.0.0.1 only (Ray's dashboard runs
    jobs for whoever reaches it); a cluster's dashboard is set by its own `ray start`.
    """
    import ray

    if ray.is_initialized():
        return False
    if dashboard and not address:
        try:
            import aiohttp  # noqa: F401  one of ray[default]'s dashboard dependencies
        except ImportError:
            raise InvalidInput("ray.dashboard: Ray's dashboard needs ray[default] (pip install 'ray[default]'); "
                               "set dashboard: false to run without it") from None
    if address:
        _check_address(address)
        try:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        except ConnectionError as error:
            raise InvalidInput(f"ray.address {address}: {error}") from None
    else:
        resources = _local_resources()
        ray.init(num_cpus=int(resources["CPU"]), num_gpus=int(resources["GPU"]), include_dashboard=dashboard,
                 dashboard_host="127.0.0.1", log_to_driver=False, configure_logging=False)
    return True


def _local_resources() -> dict[str, float]:
    """What a local Ray instance is started with: the CPUs this process may use and the CUDA devices torch sees."""
    import torch

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return {"CPU": float(cpus), "GPU": float(torch.cuda.device_count())}


def _check_resources(config: SearchConfig, nodes: Callable[[], list[dict]], where: str, wait_s: float = 0.0) -> None:
    """Refuse (exit 2, before anything is written) a trial that no node can ever fit, instead of waiting forever.

    ``nodes`` lists each node's resources; an autoscaling cluster gets ``wait_s`` seconds to show a node that fits.
    """
    need = {"CPU": config.resources.cpu, "GPU": config.resources.gpu}
    deadline = time.monotonic() + wait_s
    while True:
        found = nodes()
        if any(all(node.get(key, 0.0) >= amount for key, amount in need.items()) for node in found):
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
    most = {key: max((node.get(key, 0.0) for node in found), default=0.0) for key in need}
    raise InvalidInput(f"resources: each trial asks for {need['CPU']:g} CPUs and {need['GPU']:g} GPUs, but {where} "
                       f"has at most {most['CPU']:g} CPUs and {most['GPU']:g} GPUs per node; "
                       f"lower them, e.g. --set resources.gpu=0 --set resources.cpu=1")


def _cluster_nodes() -> list[dict]:
    import ray

    return [node["Resources"] for node in ray.nodes() if node.get("Alive")]


def prepare_run(config: SearchConfig, runs_dir: str | os.PathLike = "runs") -> tuple[RunPaths, SearchSpace, TrialJob]:
    """Validate everything that can be checked before a run directory exists (bad input writes nothing)."""
    space = build_cell_space(config) if config.study else build_space(config)
    data = config.dataset
    try:
        info = dataset_info(data.name, data.root, input_size=data.input_size, num_classes=data.num_classes,
                            download=data.download)
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
    table = _check_table(config, space) if config.backend.name == "table" else None
    job = TrialJob(config, str(paths.checkpoints), small_input, info.input_size, info.num_classes, table)
    return paths, space, job


def _check_table(config: SearchConfig, space: SearchSpace) -> str:
    """The tabular benchmark's absolute path, once it is known to answer this config's trials."""
    path = Path(config.backend.table)  # made absolute with the config's other paths
    table = read_table(path)
    seeds = config.study.seed_list if config.study else (config.training.seed,)
    missing_seeds = sorted(set(seeds) - set(table.seeds))
    if missing_seeds:
        raise InvalidInput(f"backend.table: {path.name} holds seeds {', '.join(map(str, table.seeds))}, not "
                           f"{', '.join(map(str, missing_seeds))} (training.seed / study.seeds)")
    if config.training.epochs > table.epochs:
        raise InvalidInput(f"backend.table: {path.name} holds {table.epochs} epochs per trial; training.epochs is "
                           f"{config.training.epochs}")
    if str(space.cheapest().baseline) not in table.archs:
        raise InvalidInput(f"backend.table: {path.name} does not hold {space.cheapest().baseline}: it was built for "
                           f"another backbone or width")
    return str(path)


def run_search(config: SearchConfig, runs_dir: str | os.PathLike = "runs", *, progress: bool = True):
    """Run (or continue) the search ``config`` describes in ``runs_dir/<name>``; returns the trials table."""
    import logging

    import optuna
    import ray
    from ray import tune

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Tune's per-trial CSV/JSON/TensorBoard loggers cost time per result and duplicate trials.csv.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Tune's result grid looks for the per-trial result.json files we turn off; trials.csv holds the results.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    config = config.with_resolved_paths()  # on the driver: trials run in folders of their own
    paths, space, job = prepare_run(config, runs_dir)
    if paths.config.exists():
        _check_same_run(paths, config)
    address = config.ray.address or os.environ.get("RAY_ADDRESS")
    if not address and not ray.is_initialized():
        _check_resources(config, lambda: [_local_resources()], "this machine")
    started_ray = _connect_ray(address, config.ray.dashboard)
    try:
        if address:
            _check_resources(config, _cluster_nodes, f"the cluster at {address}", config.ray.wait_for_nodes_s)
        paths.checkpoints.mkdir(parents=True, exist_ok=True)
        with atomic_path(paths.config) as temporary:
            temporary.write_text(config.to_yaml())
        baseline = count_cost(Architecture(config.backbone, config.width), job.input_size, job.num_classes,
                              config.cost_convention, job.small_input)
        RunFacts(job.input_size, job.num_classes, job.small_input, baseline.arch, baseline.macs,
                 baseline.params).write(paths.facts)
        scheduler = _make_scheduler(config)

        def cost_of(arch: Architecture):
            return count_cost(arch, job.input_size, job.num_classes, config.cost_convention, job.small_input)

        attempt = 1 + sum(1 for _ in paths.ray.glob("attempt-*")) if paths.ray.exists() else 1
        with _Progress(progress, config) as view:
            searcher = _make_searcher(config, space, paths, cost_of, scheduler, view)
            if scheduler is not None:
                _restore_rungs(scheduler, searcher.study)
            resources = {"cpu": config.resources.cpu, "gpu": config.resources.gpu}
            tuner = tune.Tuner(
                tune.with_resources(tune.with_parameters(_trial_trainable(), job=job), resources),
                tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=-1,
                                            max_concurrent_trials=config.max_concurrent, reuse_actors=True),
                run_config=tune.RunConfig(name=f"attempt-{attempt}", storage_path=str(paths.ray), verbose=0,
                                          callbacks=[_retry_counter(searcher)],
                                          failure_config=tune.FailureConfig(max_failures=config.max_retries)))
            tuner.fit()
        return trials_table(searcher.study, [param_name(b) for b in space.blocks])
    finally:
        if started_ray:
            ray.shutdown()


def _make_scheduler(config: SearchConfig):
    if config.scheduler.name != "mo-asha":
        return None
    from .schedulers import MultiObjectiveASHA

    objectives = [(OBJECTIVE_COLUMNS[o][0], OBJECTIVE_COLUMNS[o][1]) for o in config.objectives]
    return MultiObjectiveASHA(objectives, config.training.epochs, grace_period=config.scheduler.grace_period,
                              reduction_factor=config.scheduler.reduction_factor)


def _restore_rungs(scheduler, study) -> None:
    """Give a resumed run's scheduler the rungs of the trials that ended before: it promotes as if never stopped.

    Duplicates are left out: they were answered from their twin and never reached a rung themselves.
    """
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        if trial.state.is_finished() and attrs.get("history") and "duplicate_of" not in attrs:
            scheduler.restore(f"journal-{trial.number}", {**attrs, "epoch": attrs.get("epochs_done", 0)})


def _check_same_run(paths: RunPaths, config: SearchConfig) -> None:
    """A run name may be reused only to continue the same search (a larger n_trials or another address is fine)."""
    saved = load_search_config(paths.config).model_dump()
    current = config.model_dump()
    for key in ("n_trials", "ray", "max_concurrent", "resources"):
        saved.pop(key), current.pop(key)
    differ = sorted(k for k in current if current[k] != saved[k])
    if differ:
        raise InvalidInput(f"run {paths.root} already exists with a different config ({', '.join(differ)}); "
                           f"continue it with `ulsam-search resume {paths.root}` or choose another --name")


def resume_search(run_dir: str | os.PathLike, *, progress: bool = True, address: str | None = None):
    """Continue the run in ``run_dir`` from its frozen config and Optuna journal."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise InvalidInput(f"{run_dir} is not a run directory (no config.yaml); runs live in runs/<name>/")
    config = load_search_config(run_dir / "config.yaml").with_overrides(name=run_dir.resolve().name, address=address)
    return run_search(config, run_dir.resolve().parent, progress=progress)
