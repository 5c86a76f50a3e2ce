"""Ray Tune's side of a search: the trainable, the searcher that routes Optuna's proposals, and the connection to a
local Ray instance or a cluster (with the checks that fail fast instead of waiting forever).

The searcher is Ray's ``OptunaSearch`` with the routing of ``routing.route_proposal`` in front of it; it tells
Optuna how every trial ended and rewrites trials.csv each time. Its state (what finished, what runs, what waits) is
rebuilt from the journal, so nothing of it needs saving.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import optuna
import ray
from ray import tune
from ray.tune import Callback
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from .._io import atomic_path
from ..errors import InvalidInput
from ..models.arch import Architecture
from ._private import frozen_trial, live_trial, searcher_study, searcher_trials
from .objectives import COMPLETE, get_objective
from .progress import Progress
from .records import (FAILED, INFEASIBLE, PRUNED, TrialRecord, journal_storage, trials_table, write_constraints,
                      write_record, write_table)
from . import routing
from .routing import Proposal, infeasible_message, proposal_of, route_proposal, untrained_values
from .rundir import STUDY_NAME, RunPaths
from .samplers import baseline_params, get_sampler, make_sampler
from .space import SearchSpace, param_name
from .trial import TrialJob, trial_results

if TYPE_CHECKING:
    from ..config import SearchConfig


class TrialTrainable(tune.Trainable):
    """The Ray Tune trainable: one epoch per ``step`` in the actor's main thread.

    A class trainable rather than a function one: Tune runs function trainables in a second thread, which made
    each trial ~30% slower here. Actors are reused between trials (``reset_config``); checkpoints are the
    trial's own files, so Tune's are empty.
    """

    def setup(self, config: dict, job: TrialJob) -> None:
        importlib.import_module("torch._dynamo")  # the first optimizer imports it (~2.4 s): a worker's, not a trial's

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


@dataclass(frozen=True)
class SearchContext:
    """What the searcher works with and never changes: the run, its space, how to cost an ARCH, the scheduler (None:
    FIFO) and the progress view."""

    config: SearchConfig
    space: SearchSpace
    paths: RunPaths
    cost_of: Callable[[Architecture], object]
    scheduler: object | None
    progress: Progress
    retry_failed: bool = False  # train every architecture whose trials all failed once more

    @property
    def block_columns(self) -> list[str]:
        return [param_name(block) for block in self.space.blocks]

    @property
    def objectives(self) -> list:
        return [get_objective(name) for name in self.config.objectives]

    def proposal(self, params, relaunch: bool = False) -> Proposal:
        return proposal_of(self.space, params, self.config.training.seed, relaunch)


def queued_params(trial) -> dict:
    """A trial's params; for one enqueued and not yet asked (or killed inside ask()), the params it was queued with."""
    return trial.system_attrs.get("fixed_params") or trial.params


class RoutingSearcher(OptunaSearch):
    """An OptunaSearch that routes each proposal (train, infeasible, duplicate, wait, relaunch) and tells Optuna
    how it ended."""

    def __init__(self, context: SearchContext) -> None:
        config, space, objectives = context.config, context.space, context.objectives
        storage = journal_storage(context.paths.journal)
        existing = optuna.study.get_all_study_names(storage)
        trials_so_far = len(optuna.load_study(study_name=STUDY_NAME, storage=storage).trials) if existing else 0
        super().__init__(space=lambda trial: {"arch": str(space.suggest(trial))},
                         metric=[o.column for o in objectives],  # the result keys (latency_ms)
                         mode=[o.direction for o in objectives], sampler=make_sampler(config, space, trials_so_far),
                         study_name=STUDY_NAME, storage=storage)
        self.context = context
        self.study = searcher_study(self)
        if self.study.metric_names is None:  # optuna-dashboard's axes: the trials.csv columns, not "Objective 0"
            with warnings.catch_warnings():  # "set_metric_names is experimental (supported from v3.2.0)"
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                self.study.set_metric_names([o.column for o in objectives])
        self.finished: dict[str, optuna.trial.FrozenTrial] = {}  # experiment key -> its first finished trial
        self.running: dict[str, int] = {}  # experiment key -> trial number
        self.waiting: dict[str, list] = {}  # experiment key -> duplicates proposed while it trains
        self.relaunch: list = []  # interrupted trials of an earlier attempt
        self.retries: dict[str, int] = {}  # Tune trial id -> relaunches after its process or node died
        paths = context.paths
        self.latency: dict[str, float] = json.loads(paths.latency.read_text()) if paths.latency.exists() else {}
        self._load_journal()
        self._write()

    def _load_journal(self) -> None:
        """Rebuild the routing state from the trials an earlier attempt left in the journal."""
        config = self.context.config
        earlier = self.study.get_trials(deepcopy=False)
        baseline = baseline_params(config, self.context.space)
        enumerates = get_sampler(config.sampler.name).enumerates  # the grid puts the baseline first itself
        if not earlier and baseline is not None and not enumerates:
            self.study.enqueue_trial(baseline)  # the first trial asked; WAITING until then
        for trial in earlier:
            if trial.state.is_finished():
                key = self.context.proposal(trial.params).key
                known, failed = self.finished.get(key), optuna.trial.TrialState.FAIL
                if known is None or (known.state == failed and trial.state != failed):  # a retry's result wins
                    self.finished[key] = trial
            elif trial.state == optuna.trial.TrialState.RUNNING:
                live = live_trial(self.study, trial)
                self.context.space.suggest(live)  # stored params come back; a kill inside ask() left some unset
                self.relaunch.append(live)
        # counted from here on, not re-read from the journal at every poll; retries run beyond n_trials
        self.asked = sum(t.state != optuna.trial.TrialState.WAITING for t in earlier)
        retries = [t for t in earlier if TrialRecord.read(t).retry_of is not None]
        pending = {self.context.proposal(queued_params(t)).key for t in retries if not t.state.is_finished()}
        for key in pending:  # a retry still to run: the failure it retries does not settle its key
            self.finished.pop(key, None)
        self.retry_queue = self._failed_to_retry(pending) if self.context.retry_failed else []
        self.retried = len(retries) + len(self.retry_queue)
        self.resumed_from = sum(t.state.is_finished() for t in earlier)  # rows of trials.csv already there

    def _failed_to_retry(self, pending: set[str]) -> list:
        """The first failed trial of every architecture whose trials all failed and that no retry awaits yet: a
        failure's cause (a bug, a lost node too often) fixed, one more trial each can still complete them."""
        return [trial for key, trial in self.finished.items()
                if trial.state == optuna.trial.TrialState.FAIL and key not in pending]

    def _enqueue_retry(self) -> None:
        """The next retry, asked next: from now on its key is not settled by the failure."""
        failed = self.retry_queue.pop(0)
        self.study.enqueue_trial(failed.params, user_attrs={"retry_of": failed.number})
        self.finished.pop(self.context.proposal(failed.params).key, None)

    def save(self, checkpoint_path: str) -> None:
        """Nothing to pickle: the study lives in optuna.log and the routing state is rebuilt from it."""

    def suggest(self, trial_id: str):
        while True:
            relaunch = bool(self.relaunch)
            if relaunch:  # params are stored at ask time, before anything else can be interrupted
                ot_trial = self.relaunch.pop(0)
            elif self.asked < self.context.config.n_trials + self.retried:
                if self.retry_queue and self.asked >= self.context.config.n_trials:
                    self._enqueue_retry()  # after the budget's own trials, so a grid slice keeps its points
                super().suggest(trial_id)
                self.asked += 1
                ot_trial = searcher_trials(self).pop(trial_id)
            else:
                return Searcher.FINISHED if not self.running and not self.waiting else None
            launch = self._route(ot_trial, relaunch)
            if launch is not None:
                searcher_trials(self)[trial_id] = ot_trial
                self.running[self.context.proposal(ot_trial.params).key] = ot_trial.number
                self.context.progress.running = len(self.running)
                return launch

    def _route(self, ot_trial, relaunch: bool) -> dict | None:
        """The trial config to launch, or None when the proposal was settled without training."""
        context = self.context
        proposal = context.proposal(ot_trial.params, relaunch)
        arch = proposal.arch
        cost = context.cost_of(arch)
        latency = self.latency.get(str(arch))  # measured by an earlier trial of this ARCH
        choices = {param_name(b): c for b, c in arch.choices().items() if param_name(b) in context.block_columns}
        write_record(ot_trial, arch=str(arch), choices=choices, backbone=arch.backbone, width=arch.width,
                     macs=cost.macs, params=cost.params, flops=cost.flops,
                     epochs_budget=context.config.training.epochs, seed=proposal.seed, latency_ms=latency)
        route = route_proposal(proposal, cost, latency, context.config.constraints, self.finished, self.running)
        if route.action == routing.INFEASIBLE:
            self._infeasible(ot_trial, route.violations, cost, latency)
        elif route.action == routing.DUPLICATE:
            self._copy(ot_trial, route.twin)
        elif route.action == routing.WAIT:
            self.waiting.setdefault(proposal.key, []).append(ot_trial)
        else:  # TRAIN or RELAUNCH (a relaunch is not judged again at the rungs it passed)
            return {"arch": str(arch), "number": ot_trial.number, "macs": cost.macs, "params": cost.params,
                    "baseline": not arch.placements, "seed": proposal.seed, "latency_ms": latency,
                    "promoted_through": TrialRecord.read(ot_trial).promoted_through or 0}
        return None

    def _infeasible(self, ot_trial, broken: dict[str, float], cost, latency: float | None) -> None:
        """Tell Optuna a constraint-breaking proposal (top-1 0, so samplers steer away); it is never trained."""
        limits = self.context.config.constraints
        write_record(ot_trial, status=INFEASIBLE, error=infeasible_message(broken, cost, latency, limits),
                     feasible=False, epochs_done=0)
        write_constraints(ot_trial, **broken)
        self._tell(ot_trial, untrained_values(self.context.objectives, cost, latency))

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Tune calls this only for results the scheduler let go on: the journal then knows which rungs a trial
        was promoted through, so a relaunch after a kill is not judged at them again (nor skips one it was not)."""
        ot_trial = searcher_trials(self).get(trial_id)
        if self.context.scheduler is not None and ot_trial is not None and result.get("epoch"):  # FIFO: all go on
            write_record(ot_trial, promoted_through=int(result["epoch"]))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        ot_trial = searcher_trials(self).pop(trial_id, None)
        if ot_trial is None:
            return
        key = self.context.proposal(ot_trial.params).key
        result = self._with_run_latency(TrialRecord.read(ot_trial).arch, result or {})
        retries = self.retries.pop(trial_id, 0)
        known = {name: result[name] for name in ("top1", "top5", "val_loss", "latency_ms", "seconds", "node",
                                                 "started_at", "resumed_from_epoch", "history")
                 if result.get(name) is not None and result[name] == result[name]}  # not missing, not NaN
        write_record(ot_trial, trial_id=trial_id, **known, epochs_done=int(result.get("epoch") or 0),
                     retries=retries)
        self.running.pop(key, None)
        self.context.progress.running = len(self.running)
        if not self._settle(ot_trial, trial_id, result, error, retries):
            return  # stopped by an interrupt: stays RUNNING in the journal and is launched again on resume
        frozen = frozen_trial(self.study, ot_trial)
        self.finished.setdefault(key, frozen)
        for duplicate in self.waiting.pop(key, []):
            self._copy(duplicate, frozen)

    def _settle(self, ot_trial, trial_id: str, result: dict, error: bool, retries: int) -> bool:
        """Tell Optuna how a launched trial ended; False when it did not end (an interrupt stopped it)."""
        config, arch = self.context.config, TrialRecord.read(ot_trial).arch
        limits = config.constraints
        if result.get("infeasible"):  # timed on its node before training
            latency = float(result["latency_ms"])
            self._infeasible(ot_trial, {"max_latency_ms": latency - limits.max_latency_ms},
                             self.context.cost_of(Architecture.parse(arch)), latency)
        elif error or result.get("error"):
            write_record(ot_trial, status=FAILED, error=result.get("error") or (
                f"the trial's process died {retries + 1} time(s) (its node was lost, or it was killed or ran out of "
                f"memory); Ray's error is in {self.context.paths.ray}"))
            self._tell(ot_trial, None, optuna.trial.TrialState.FAIL)
        elif int(result.get("epoch") or 0) >= config.training.epochs:
            top1 = float(result["top1"])
            write_record(ot_trial, status=COMPLETE, feasible=limits.min_top1 is None or top1 >= limits.min_top1)
            write_constraints(ot_trial, min_top1=limits.min_top1 - top1 if limits.min_top1 is not None else 0.0)
            self._tell(ot_trial, [float(result[o.column]) for o in self.context.objectives])
        elif self.context.scheduler is not None and trial_id in self.context.scheduler.stopped:
            write_record(ot_trial, status=PRUNED)
            write_constraints(ot_trial)
            self._tell(ot_trial, None, optuna.trial.TrialState.PRUNED)
        else:
            return False
        return True

    def _copy(self, ot_trial, earlier) -> None:
        """Tell a duplicate its twin's results, not the run that produced them."""
        record = replace(TrialRecord.read(earlier), trial_id=None, seconds=None, started_at=None, node=None,
                         duplicate_of=earlier.number, retry_of=None)
        write_record(ot_trial, **record.known())
        write_constraints(ot_trial, **earlier.constraints)
        self._tell(ot_trial, earlier.values, earlier.state)

    def _with_run_latency(self, arch: str, result: dict) -> dict:
        """``result`` with its ARCH's first measured latency: each ARCH is timed once per run, later trials of it
        (seeds, relaunches) reuse ``latency.json``."""
        latency = result.get("latency_ms")
        if latency is not None and latency == latency and arch not in self.latency:
            self.latency[arch] = float(latency)
            with atomic_path(self.context.paths.latency) as temporary:
                temporary.write_text(json.dumps(self.latency, indent=1) + "\n")
        return {**result, "latency_ms": self.latency[arch]} if arch in self.latency else result

    def _tell(self, ot_trial, values, state=None) -> None:
        self.study.tell(ot_trial, values, state=state or optuna.trial.TrialState.COMPLETE)
        self._write()

    def _write(self) -> None:
        table = trials_table(self.study, self.context.block_columns)
        write_table(table, self.context.paths.trials)
        self.context.progress.update(table, self.resumed_from, self.context.config.n_trials + self.retried)


class RetryCounter(Callback):
    """Counts, per trial, the relaunches after a lost process or node (``FailureConfig``), for the searcher."""

    def __init__(self, searcher: RoutingSearcher) -> None:
        self.searcher = searcher

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        retries = self.searcher.retries
        retries[trial.trial_id] = retries.get(trial.trial_id, 0) + 1


def restore_rungs(scheduler, study) -> None:
    """Give a resumed run's scheduler the rungs of the trials that ended before: it promotes as if never stopped.

    Duplicates are left out: they were answered from their twin and never reached a rung themselves.
    """
    for trial in study.get_trials(deepcopy=False):
        record = TrialRecord.read(trial)
        if trial.state.is_finished() and record.history and record.duplicate_of is None:
            scheduler.restore(f"journal-{trial.number}", {**record.known(), "epoch": record.epochs_done or 0})


def check_address(address: str) -> None:
    """Fail fast (exit 2) on a Ray address nothing listens on, instead of Ray's long connection retries."""
    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=3).close()
    except (OSError, ValueError) as error:
        raise InvalidInput(f"ray.address {address} is unreachable ({error}); start a cluster with `ray start --head` "
                           f"or drop --address to run locally") from None


def connect_ray(address: str | None, dashboard: bool = False) -> bool:
    """Join ``address``, or start a local instance; True when this call started Ray.

    A local instance has no dashboard unless asked, and then it listens on 127.0.0.1 only (Ray's dashboard runs
    jobs for whoever reaches it); a cluster's dashboard is set by its own `ray start`.
    """
    if ray.is_initialized():
        return False
    if dashboard and not address:
        try:
            importlib.import_module("aiohttp")  # one of ray[default]'s dashboard dependencies
        except ImportError:
            raise InvalidInput("ray.dashboard: Ray's dashboard needs ray[default] (pip install 'ray[default]'); "
                               "set dashboard: false to run without it") from None
    if address:
        check_address(address)
        try:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        except ConnectionError as error:
            raise InvalidInput(f"ray.address {address}: {error}") from None
    else:
        resources = local_resources()
        start_local_ray(int(resources["CPU"]), int(resources["GPU"]), dashboard=dashboard)
    return True


def start_local_ray(num_cpus: int, num_gpus: int = 0, dashboard: bool = False, **options) -> None:
    """A new, quiet Ray instance of this process's own; ``options`` go to ``ray.init`` (e.g. ``runtime_env``).

    "local" starts one even where `ray start` left a cluster running: a bare ray.init() would join that one and
    then refuse num_cpus.
    """
    ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=dashboard,
             dashboard_host="127.0.0.1", log_to_driver=False, configure_logging=False, **options)


def local_resources() -> dict[str, float]:
    """What a local Ray instance is started with: the CPUs this process may use and the CUDA devices torch sees."""
    import torch

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return {"CPU": float(cpus), "GPU": float(torch.cuda.device_count())}


def check_resources(config: SearchConfig, nodes: Callable[[], list[dict]], where: str, wait_s: float = 0.0) -> None:
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


def cluster_nodes() -> list[dict]:
    return [node["Resources"] for node in ray.nodes() if node.get("Alive")]
