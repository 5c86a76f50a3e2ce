"""What the commands do, one stage after another: count, train one ARCH, run or resume a search or an ablation.

The CLI parses and prints; everything it runs is here, so scripts get the same behaviour from Python. The runner
never imports the ablation stage: the space a run draws from is chosen here (``space_for``) and handed to it.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ._io import absolute, atomic_path
from .ablation import ablation_config, build_cell_space
from .ablation.confirm import (CONFIRM_DIR, Confirmation, confirm_config, confirm_rows, describe,
                               read_confirmation, select_members, write_confirm_csv)
from .config import SearchConfig, apply_settings, confirm_settings, load_search_config, validate_config
from .cost import count_cost
from .data import DATASETS_ON_DISK, data_root, dataset_info, load_data
from .errors import InvalidInput, NothingTrained
from .models import build_model, resolve_arch
from .report import load_run
from .search import runner
from .search.records import STATUSES, interrupted, pareto_set
from .search.space import build_space
from .train import TrainConfig, fit, load_checkpoint, load_pretrained, resolve_runtime, run_facts, seed_everything

def space_for(config: SearchConfig):
    """The space a run draws from: an ablation's cells (``study:``), else the search space."""
    return build_cell_space(config) if config.study is not None else build_space(config)


def run_search(config: SearchConfig, runs_dir: str | os.PathLike = "runs", *, progress: bool = True,
               retry_failed: bool = False):
    """Run (or continue) the search or ablation ``config`` describes in ``runs_dir/<name>``; the trials table
    (``retry_failed``: every architecture whose trials all failed gets one more trial)."""
    return runner.run_search(config, runs_dir, progress=progress, build_space=space_for, retry_failed=retry_failed)


def resume_search(run_dir: str | os.PathLike, *, progress: bool = True, address: str | None = None,
                  retry_failed: bool = False):
    """Continue the run in ``run_dir`` from its frozen config and Optuna journal (``retry_failed``: every
    architecture whose trials all failed gets one more trial)."""
    return runner.resume_search(run_dir, progress=progress, address=address, build_space=space_for,
                                retry_failed=retry_failed)


FROZEN_BY_CONFIRM = ("name", "study", "confirm", "training.epochs", "training.seed")  # what --set may not change


def confirm_run(run_dir: str | os.PathLike, changes: dict | None = None, *, overrides=(), progress: bool = True,
                address: str | None = None, retry_failed: bool = False) -> Confirmation | None:
    """The confirm stage of the run in ``run_dir``: retrain the selected front members and the baseline with new
    seeds in ``run_dir/confirm/``, then write ``run_dir/confirm.csv``. Started as the config's ``confirm:`` block
    says with ``changes`` (top, seeds, epochs, select) applied; once started, it continues as it started (asked
    for other settings, it refuses). Everything is checked before the first file is written. None when it was
    interrupted (``resume`` continues it): nothing is concluded from part of it. ``retry_failed``: every (ARCH,
    seed) whose trainings all failed is trained once more, as in a search."""
    config, _, facts, table = load_run(run_dir)
    if config.study is not None:
        raise InvalidInput(f"{run_dir} is an ablation study: its cells are compared with the baseline already")
    changes = {key: value for key, value in (changes or {}).items() if value is not None}
    _check_overrides(overrides)
    frozen = absolute(run_dir) / CONFIRM_DIR / "config.yaml"
    settings = confirm_settings(config.confirm, **changes)
    front = pareto_set(table, config.objectives)
    if frozen.is_file() and not changes and not overrides:
        confirm = load_search_config(frozen)  # continue it as it started
        left = [arch for arch in confirm.study.archs if arch != facts.baseline_arch and arch not in set(front["arch"])]
        if left:  # the stage's top/select are not frozen, so only members that left the front are certain news
            print(f"note: {', '.join(left)} left the search's front since the confirm stage started; it goes on "
                  f"with its members ({', '.join(confirm.study.archs)}); remove {frozen.parent} to confirm the new "
                  "front", file=sys.stderr)
    else:
        confirm = confirm_config(config, select_members(front, config.objectives, facts.baseline_arch, settings.top,
                                                        settings.select), settings)
        confirm = _with_overrides(confirm, overrides)
        _check_confirm_unchanged(frozen, confirm)
    confirmed = run_search(confirm.with_overrides(address=address), absolute(run_dir), progress=progress,
                           retry_failed=retry_failed)
    if interrupted(confirmed, confirm.n_trials, absolute(run_dir) / CONFIRM_DIR / "optuna.log"):
        print(f"confirm stopped after {len(confirmed)} of {confirm.n_trials} trainings; continue with "
              f"`ulsam-search resume {run_dir}`", file=sys.stderr)
        return None
    rows = confirm_rows(confirmed, table, facts.baseline_arch)
    if not (rows["arch"] == facts.baseline_arch).any():
        raise NothingTrained(f"the confirm stage trained no seed of the baseline: {failure_line(confirmed)}")
    write_confirm_csv(absolute(run_dir), rows)
    return read_confirmation(absolute(run_dir), config.objectives)


def _check_overrides(overrides) -> None:
    """``--set`` may not change what makes the confirm stage what it is."""
    for setting in overrides:
        key = setting.partition("=")[0].strip()
        if any(key == frozen or key.startswith(frozen + ".") for frozen in FROZEN_BY_CONFIRM):
            raise InvalidInput(f"--set {setting}: the confirm stage sets {key} itself; use --top, --seeds or --epochs")


def _with_overrides(confirm: SearchConfig, overrides) -> SearchConfig:
    """``--set`` on the confirm run's config, validated as a config file is."""
    return validate_config(apply_settings(confirm.model_dump(), overrides), "confirm --set") if overrides else confirm


def _check_confirm_unchanged(frozen: Path, confirm: SearchConfig) -> None:
    """A confirm stage continues only as it started: the same members, seeds and budget."""
    if not frozen.is_file():
        return
    started = load_search_config(frozen)
    if describe(started) != describe(confirm):
        raise InvalidInput(f"the confirm stage of {frozen.parent.parent} was started with {describe(started)}; now "
                           f"{describe(confirm)} (other settings, or a front that has changed since): it continues "
                           f"only as it started; remove {frozen.parent} to start over (its trainings are then redone)")


def search_config(path, settings=(), name: str | None = None, *, n_trials: int | None = None,
                  address: str | None = None, ablation: bool = False) -> SearchConfig:
    """The config ``run`` (``ablation`` False) or ``ablate`` runs, with the command line's overrides."""
    config = load_search_config(path, settings, name).with_overrides(n_trials=n_trials, address=address)
    if ablation:
        return ablation_config(config)
    if config.study is not None:
        raise InvalidInput(f"config {path}: study: this is an ablation; run it with `ulsam-search ablate {path}`")
    return config


def cost_record(arch, input_size: int = 224, num_classes: int = 1000, convention: str = "paper",
                small_input: bool = False) -> dict:
    """``count --json``'s record of ``arch``: its cost, and the baseline's when ULSAM is placed."""
    cost = count_cost(arch, input_size, num_classes, convention, small_input)
    record = {"arch": str(arch), "backbone": arch.backbone, "width": arch.width, "input_size": input_size,
              "num_classes": num_classes, "convention": convention, "small_input": small_input,
              "params": cost.params, "macs": cost.macs, "flops": cost.flops}
    if arch.placements:
        base = count_cost(arch.baseline, input_size, num_classes, convention, small_input)
        record.update(baseline_params=base.params, baseline_macs=base.macs)
    return record


def status_counts(table) -> dict[str, int]:
    counts = table["status"].value_counts().to_dict()
    return {status: int(counts.get(status, 0)) for status in STATUSES}


def failure_line(table) -> str:
    """'all 12 trials failed; 12 x InvalidInput: ...' or '2 of 12 trials failed; ...' ('' when none failed),
    errors counted by their first line."""
    failed = table[table["status"] == "FAILED"]
    if failed.empty:
        return ""
    errors = failed["error"].fillna("no error recorded").astype(str).str.split("\n").str[0].value_counts()
    share = f"all {len(table)}" if len(failed) == len(table) else f"{len(failed)} of {len(table)}"
    return f"{share} trials failed; {errors.iloc[0]} x {errors.index[0]}" + (
        f" (and {len(errors) - 1} other error{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else "")


def check_trained(table) -> str:
    """The warning line for a run whose trials partly failed ('' for none); a run in which no trial completed
    raises ``NothingTrained`` (exit 1)."""
    counts = status_counts(table)
    failures = failure_line(table)
    if not counts["COMPLETE"]:
        summary = ", ".join(f"{counts[s]} {s.lower()}" for s in STATUSES)
        raise NothingTrained(failures if counts["FAILED"] == len(table) else f"no trial completed ({summary})" + (
            f"; {failures}" if failures else ""))
    return failures


@dataclass(frozen=True)
class TrainRequest:
    """``ulsam-search train``'s settings: one ARCH on one dataset."""

    arch: str
    training: TrainConfig
    dataset: str = "digits"
    data_root: str | None = None
    download: bool = False
    batch_size: int = 64
    input_size: int | None = None
    num_classes: int | None = None
    small_input: bool | None = None
    workers: int | None = None
    train_limit: int | None = None
    dataset_options: dict[str, int] = field(default_factory=dict)  # the set's own (cluttered-mnist: canvas, ...)
    pretrained: str | None = None
    resume: str | None = None
    out: str | None = None
    quiet: bool = False


@dataclass(frozen=True)
class Trained:
    """What ``train_architecture`` did: the JSON record it wrote, the training result, the folder (or None)."""

    record: dict
    result: object
    out: Path | None
    description: str  # the data set in words, for the table title


def _check_out_dir(out: Path, resuming: bool) -> None:
    """Refuse an --out that cannot be written or already holds another run, before anything is written."""
    if out.exists() and not out.is_dir():
        raise InvalidInput(f"--out {out} exists and is not a directory")
    if (out / "checkpoint.pt").exists() and not resuming:
        raise InvalidInput(f"--out {out} already holds a run (checkpoint.pt); continue it with --resume {out} or "
                           f"choose another --out")
    parent = out
    while not parent.exists():
        parent = parent.parent
    try:
        if not parent.is_dir():
            raise NotADirectoryError(f"{parent} is not a directory")
        tempfile.TemporaryFile(dir=parent).close()
    except OSError as error:
        raise InvalidInput(f"--out {out} is not writable ({error})") from None


def _resume_state(resume: Path | None, arch) -> dict | None:
    if resume is None:
        return None
    state = load_checkpoint(resume / "checkpoint.pt" if resume.is_dir() else resume)
    if state["arch"] != str(arch):
        raise InvalidInput(f"cannot resume: the checkpoint trained {state['arch']}, not {arch}")
    return state


def _pretrained_record(report, path: Path | None) -> dict | None:
    if report is None:
        return None
    return {"path": str(path), "loaded": len(report.loaded), "skipped": len(report.skipped), "new": len(report.missing)}


def train_architecture(request: TrainRequest) -> Trained:
    """Train one ARCH as ``request`` says; everything is checked before a file is written (bad input: exit 2)."""
    arch = resolve_arch(request.arch)
    config = request.training
    device, _ = resolve_runtime(config)
    out, resume_path, pretrained_path = (absolute(p) if p else None
                                         for p in (request.out, request.resume, request.pretrained))
    if out is None and resume_path is not None and resume_path.is_dir():
        out = resume_path  # a resumed run keeps checkpointing where it was
    if out is not None:
        _check_out_dir(out, resuming=resume_path is not None)
    root = str(data_root(request.data_root)) if request.dataset in DATASETS_ON_DISK else None
    info = dataset_info(request.dataset, root, input_size=request.input_size, num_classes=request.num_classes,
                        download=request.download, options=request.dataset_options)
    small_input = info.small_input if request.small_input is None else request.small_input
    facts = run_facts(request.dataset, root, request.train_limit, request.batch_size, info.input_size, small_input,
                      info.options)  # defaults filled: spelling a default out on resume changes nothing
    resume = _resume_state(resume_path, arch)
    data = load_data(request.dataset, root, batch_size=request.batch_size, input_size=request.input_size,
                     workers=request.workers, device=device, seed=config.seed, num_classes=request.num_classes,
                     train_limit=request.train_limit, options=request.dataset_options)
    seed_everything(config.seed)
    model = build_model(arch, data.num_classes, small_input=small_input)
    pretrained = load_pretrained(model, pretrained_path) if pretrained_path else None
    if pretrained is not None:
        print(f"pretrained {pretrained_path}: {pretrained.summary()}", file=sys.stderr)
    if data.synthetic:
        print("warning: dataset 'fake' is random synthetic data: the images/s are real, the accuracy is "
              "meaningless", file=sys.stderr)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    result = fit(model, data, config, checkpoint_path=out / "checkpoint.pt" if out else None, resume=resume,
                 progress=not request.quiet, run_facts=facts)
    cost = count_cost(arch, data.input_size, data.num_classes, "paper", small_input)
    final = result.final
    record = {"arch": str(arch), "dataset": data.name, "synthetic": data.synthetic, "epochs": final.epoch,
              "top1": final.top1, "top5": final.top5, "val_loss": final.val_loss, "train_loss": final.train_loss,
              "params": cost.params, "macs": cost.macs, "flops": cost.flops, "cost_convention": "paper",
              "input_size": data.input_size, "num_classes": data.num_classes, "small_input": small_input,
              "train_seconds": result.seconds, "images_per_second": result.images_per_second,
              "device": result.device, "seed": config.seed, "pretrained": _pretrained_record(pretrained,
                                                                                               pretrained_path),
              "history": [asdict(m) for m in result.history]}
    if out is not None:
        with atomic_path(out / "result.json") as temporary:
            temporary.write_text(json.dumps(record, indent=2) + "\n")
    return Trained(record, result, out, data.describe())
