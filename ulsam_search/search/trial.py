"""One trial on its worker: its backend's epochs as results that carry every objective, a latency limit checked
before anything trains, and a failure recorded as a last result instead of raised (the search goes on)."""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..data import dataset_info
from ..errors import InvalidInput
from .backends import epoch_record, get_backend

if TYPE_CHECKING:
    from ..config import SearchConfig


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
    """Run one architecture on the config's backend (train it, or look it up in a tabular benchmark), yielding a
    result with every objective and the epochs so far (``history``) after every epoch.

    A failure is yielded as a last result with an ``error`` message rather than raised.
    """
    config = job.config
    device = _trial_device(config, use_gpu)
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

    def result(**extra) -> dict:
        return {**base, **metrics, "seconds": time.perf_counter() - started, **extra}

    try:
        _check_paths_on_node(job, node)
        run = get_backend(config.backend.name).start(trial_config, job, device, seed)
        history = run.done
        base["resumed_from_epoch"] = len(history)
        if config.measures_latency:
            metrics["latency_ms"] = trial_config.get("latency_ms") or run.time_model()
            limit = config.constraints.max_latency_ms
            if limit is not None and metrics["latency_ms"] > limit:  # never trained
                yield result(infeasible=True)
                return
        if base["promoted_through"] < len(history) < config.training.epochs:
            # Killed after a checkpoint the scheduler never judged: its result comes again before any more training,
            # so a rung it reached is judged there, as in a run never interrupted, not one epoch later.
            last = history[-1]
            base["epoch"] = last["epoch"]
            metrics.update(top1=last["top1"], top5=last["top5"], val_loss=last["val_loss"])
            yield result(history=list(history))
        for epoch in run.epochs:
            base["epoch"] = epoch.epoch
            metrics.update(top1=epoch.top1, top5=epoch.top5, val_loss=epoch.val_loss)
            if len(history) < epoch.epoch:
                history.append(epoch_record(epoch))
            yield result(history=list(history))
    except Exception as error:  # recorded as FAILED with its message; the search goes on
        yield result(history=history, error=_failure_message(error))


def _trial_device(config: SearchConfig, use_gpu: bool) -> str:
    """The trial's device and thread count: its CPU share, and on a shared GPU its share of the memory."""
    import torch

    torch.set_num_threads(max(1, int(config.resources.cpu)))
    device = "cuda" if use_gpu and torch.cuda.is_available() else "cpu"
    if device == "cuda" and config.resources.gpu < 1:
        # Ray shares the GPU but not its memory: cap each trial at its share, so one trial's OOM stays its own
        torch.cuda.set_per_process_memory_fraction(config.resources.gpu)
    return device


def _failure_message(error: Exception) -> str:
    """A failed trial's one-line message; out of memory also says what to change."""
    import torch

    message = f"{type(error).__name__}: {error}"
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)):
        torch.cuda.empty_cache()  # the actor trains the next trial
        message += (" (lower training.batch_size, or give each trial more memory: resources.gpu / resources.cpu; "
                    "a trial sharing a GPU may use resources.gpu x its memory)")
    return message


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


def train_trial(trial_config: dict, job: TrialJob, report: Callable[[dict], None], **kw) -> None:
    """``trial_results`` without Ray: every result goes to ``report`` (the benchmark's direct baseline)."""
    for result in trial_results(trial_config, job, **kw):
        report(result)
