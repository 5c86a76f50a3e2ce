"""The ``train`` backend: a trial trains its architecture on its worker, epoch by epoch, from its checkpoint if it
has one (``checkpoints/trial_<number>.pt``: a relaunched trial continues where it stopped)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ...cost import measure_latency
from ...data import load_data
from ...models.build import build_model
from ...train import (EpochMetrics, autocast_dtype, load_checkpoint, load_pretrained, run_facts, seed_everything,
                      train_epochs)
from .base import TrialRun, epoch_record

if TYPE_CHECKING:
    from ...config import SearchConfig
    from ..space import SearchSpace
    from ..trial import TrialJob


class TrainBackend:
    def check(self, config: SearchConfig, space: SearchSpace) -> None:
        """Nothing to check beyond what every run checks (the data set, ``training.pretrained``)."""

    def start(self, trial_config: dict, job: TrialJob, device: str, seed: int) -> TrialRun:
        config = job.config
        data = load_data(config.dataset.name, config.dataset.root, batch_size=config.training.batch_size,
                         input_size=config.dataset.input_size, workers=config.dataset.workers, device=device,
                         seed=seed, num_classes=config.dataset.num_classes, train_limit=config.dataset.train_limit,
                         options=config.dataset.options)
        seed_everything(seed)
        model = build_model(trial_config["arch"], data.num_classes, small_input=job.small_input)
        if config.training.pretrained:
            load_pretrained(model, config.training.pretrained)
        checkpoint = Path(job.checkpoints) / f"trial_{trial_config['number']:05d}.pt"
        resume = load_checkpoint(checkpoint) if checkpoint.exists() else None
        done = [epoch_record(h) for h in resume["history"]] if resume is not None else []
        if len(done) >= config.training.epochs:
            epochs = iter([EpochMetrics(**resume["history"][-1])])  # finished before the driver heard of it
        else:
            facts = run_facts(config.dataset.name, config.dataset.files, config.dataset.train_limit,
                              config.training.batch_size, job.input_size, job.small_input)
            epochs = train_epochs(model, data, replace(config.training.train_config(device), seed=seed),
                                  checkpoint_path=checkpoint, resume=resume, run_facts=facts)
        return TrialRun(epochs, lambda: time_model(model, job, device), done)


def latency_runtime(config: SearchConfig, device: str) -> dict:
    """Autocast dtype and layout to time with: as the trial trains on ``device`` (``latency.as_trained``; fp16 has
    no CPU path, so a CPU timing of an fp16 run is fp32), else fp32 NCHW."""
    import torch

    if not config.latency.as_trained:
        return {"amp_dtype": None, "channels_last": False}
    amp = "off" if config.training.amp == "fp16" and device == "cpu" else config.training.amp
    return {"amp_dtype": autocast_dtype(amp, torch.device(device)), "channels_last": config.training.channels_last}


def time_model(model, job: TrialJob, trial_device: str) -> float:
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
                               **latency_runtime(job.config, device)).ms_per_image
    finally:
        torch.set_num_threads(threads)
