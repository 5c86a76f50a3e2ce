"""Training checkpoints (the whole state, written atomically, and the checks that a resume continues the same run)
and loading pretrained weights into a model by name and shape."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from .._io import atomic_path
from ..data.registry import get_dataset
from ..errors import InvalidInput
from ..models import LoadReport, load_matching_state_dict
from .settings import RUNTIME_FIELDS, EpochMetrics, TrainConfig

CHECKPOINT_FORMAT = "ulsam-search/checkpoint-1"


def save_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler,
                    scaler: torch.amp.GradScaler, config: TrainConfig, history: list[EpochMetrics], arch,
                    run: dict | None = None) -> None:
    """Write the whole training state atomically (a kill mid-write leaves the previous checkpoint intact)."""
    path = Path(path)
    state = {
        "format": CHECKPOINT_FORMAT, "arch": None if arch is None else str(arch), "config": asdict(config),
        "run": run or {},  # what the data and model input were (``run_facts``): a resume must not change them
        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(), "history": [asdict(m) for m in history], "rng": torch.get_rng_state(),
        "cuda_rng": _cuda_rng_state(model),
    }
    with atomic_path(path) as temporary:
        torch.save(state, temporary)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """A checkpoint written by ``save_checkpoint``, loaded with ``weights_only=True``; bad files are bad input."""
    state = _load_tensors(path, "checkpoint")
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise InvalidInput(f"{path} is not a ulsam-search training checkpoint (expected format {CHECKPOINT_FORMAT})")
    return state


def run_facts(dataset: str, data_root: str | None, train_limit: int | None, batch_size: int, input_size: int,
              small_input: bool, options: dict | None = None) -> dict:
    """The data and model input a run trains on, saved with its checkpoints: a resume must not change them. The
    dataset's options appear only when given, so checkpoints written before they existed still resume."""
    facts = {"dataset": dataset, "data_root": data_root, "train_limit": train_limit, "batch_size": batch_size,
             "input_size": input_size, "small_input": small_input}
    return {**facts, "options": dict(options)} if options else facts


def _load_tensors(path: str | os.PathLike, what: str):
    if not Path(path).is_file():
        raise InvalidInput(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise InvalidInput(f"cannot read {what} {path}: not a torch.save file ({type(error).__name__}"
                           f"{': ' + detail if detail else ''})") from None


def restore(state: dict, config: TrainConfig, model: nn.Module, optimizer, scheduler, scaler,
            facts: dict | None = None) -> list[EpochMetrics]:
    """Load a checkpoint's training state, refusing one trained with other settings or data (``run_facts``;
    checkpoints older than those facts are checked on their settings only)."""
    saved = {**asdict(TrainConfig(**state["config"])), **(state.get("run") or {})}
    if saved.get("options") is not None:  # checkpoints of 2026-12-06/07 stored only the options given
        saved["options"] = get_dataset(saved["dataset"]).with_defaults(saved["options"])
    now = {**asdict(config), **(facts or {})}
    differ = [key for key in now if key not in RUNTIME_FIELDS and key in saved and saved[key] != now[key]]
    if differ:
        detail = ", ".join(f"{key}={saved[key]!r} (now {now[key]!r})" for key in differ)
        raise InvalidInput(f"cannot resume: the checkpoint was trained with {detail}; pass the same settings")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if scaler.is_enabled() and state["scaler"]:  # an fp32/bf16 checkpoint resumed with fp16 starts a fresh scaler
        scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["rng"])
    cuda_rng = state["cuda_rng"]
    if isinstance(cuda_rng, list):  # older checkpoints saved every visible GPU's state
        cuda_rng = cuda_rng[0] if cuda_rng else None
    device = next(model.parameters()).device
    if cuda_rng is not None and device.type == "cuda":
        torch.cuda.set_rng_state(cuda_rng, device)
    return [EpochMetrics(**m) for m in state["history"]]


def _cuda_rng_state(model: nn.Module) -> torch.Tensor | None:
    """The generator state of the GPU the model trains on, and only there: asking for every GPU's state would
    start a CUDA context on each visible GPU, even for a CPU run."""
    device = next(model.parameters()).device
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def load_pretrained(model: nn.Module, path: str | os.PathLike) -> LoadReport:
    """Load a torchvision MobileNet or ulsam-search state_dict (or training checkpoint) into matching layers.

    Prefixes from DataParallel (``module.``) and ``torch.compile`` (``_orig_mod.``) are removed. Layers whose name
    and shape match are loaded; the report lists what was loaded, skipped (in the file only) and new (model only).
    """
    state = _load_tensors(path, "pretrained weights")
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    elif isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InvalidInput(f"{path} holds no state_dict (a mapping of parameter names to tensors)")
    cleaned = {}
    for key, value in state.items():
        for prefix in ("module.", "_orig_mod."):
            key = key.removeprefix(prefix)
        cleaned[key] = value
    report = load_matching_state_dict(model, cleaned)
    if not report.loaded:
        raise InvalidInput(f"no tensor in {path} matches the model by name and shape: is it a MobileNet of the same "
                           f"backbone and width?")
    return report
