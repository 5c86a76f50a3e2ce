"""Search and ablation configs: YAML validated by pydantic at the boundary; every error names its field path.

A search config says what to search (backbone, width, candidate blocks, ops and g per block), how to judge it
(dataset, training budget, objectives, constraints), how to propose (Optuna sampler) and how to run it (Ray
resources, concurrency, scheduler, address). ``load_search_config`` turns any problem into one ``InvalidInput``
line such as ``config quick.yaml: space.groups: ...``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveFloat, PositiveInt, ValidationError, \
    field_validator, model_validator

from ._io import absolute
from .data.registry import data_root, get_dataset, list_datasets
from .errors import InvalidInput
from .search.backends import list_backends
from .search.objectives import get_objective, list_objectives
from .search.samplers import list_samplers
from .search.schedulers import list_schedulers
from .train.settings import AMP_MODES, OPTIMIZERS, TrainConfig

OPS = ("none", "insert", "replace")
DEFAULT_GROUPS = (1, 2, 4, 8, 16)


_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}"  # a run name: a plain folder name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # no inf/nan in any number


class DatasetConfig(_Strict):
    name: Literal[tuple(list_datasets())] = "digits"
    root: str | None = None
    input_size: PositiveInt | None = None
    num_classes: PositiveInt | None = None
    download: bool = False
    workers: int | None = Field(default=None, ge=0)
    train_limit: PositiveInt | None = None  # N training images, a fixed class-stratified subset: a proxy task
    # The data set's own options (cluttered-mnist: canvas, digit_size, ...), checked by its spec alone: no coercion
    # here, so `clutter: true` or `"8"` is refused rather than read as 1 or 8.
    options: dict[str, Any] = {}

    @model_validator(mode="after")
    def _known_options(self):
        try:
            get_dataset(self.name).with_defaults(self.options)
        except InvalidInput as error:
            raise ValueError(str(error)) from None
        return self

    @property
    def files(self) -> str | None:
        """The root a trial reads its data from; None for the data sets that are bundled or synthetic."""
        return self.root if get_dataset(self.name).on_disk else None


class TrainingConfig(_Strict):
    """The training budget of every trial (the fields of ``TrainConfig`` a search fixes)."""

    epochs: PositiveInt = 3
    batch_size: PositiveInt = 64
    lr: PositiveFloat = 0.05
    optimizer: Literal[OPTIMIZERS] = "sgd"
    weight_decay: float = Field(default=4e-5, ge=0)
    warmup_epochs: float = Field(default=1.0, ge=0)
    label_smoothing: float = Field(default=0.1, ge=0, lt=1)
    grad_clip: PositiveFloat | None = None
    amp: Literal[AMP_MODES] = "auto"
    channels_last: bool = True
    seed: NonNegativeInt = 0  # numpy's generators (cluttered-mnist's canvases, NSGA-II) refuse negative seeds
    pretrained: str | None = None  # a state_dict loaded into every layer that matches (e.g. torchvision's)

    def train_config(self, device: str = "auto") -> TrainConfig:
        fields = self.model_dump(exclude={"batch_size", "pretrained"})
        return TrainConfig(**fields, device=device)


class BlockSpace(_Strict):
    ops: tuple[Literal[OPS], ...] | None = None
    groups: tuple[PositiveInt, ...] | None = None


class SpaceConfig(_Strict):
    """Candidate blocks and, per block, the allowed ops and g (``per_block`` overrides the defaults)."""

    blocks: Literal["all"] | tuple[PositiveInt, ...] = "all"
    ops: tuple[Literal[OPS], ...] = OPS
    groups: tuple[PositiveInt, ...] = DEFAULT_GROUPS
    per_block: dict[int, BlockSpace] = Field(default_factory=dict)
    baseline: bool = True  # evaluate the backbone without ULSAM first (the report's deltas need it)

    @field_validator("ops", "groups", "blocks")
    @classmethod
    def _not_empty(cls, value):
        if value != "all" and len(value) == 0:
            raise ValueError("must not be empty")
        return value


STUDIES = ("placement", "subspaces", "grid", "archs")
PAPER_TABLES = ("imagenet", "food101", "birds", "dogs")


class StudyConfig(_Strict):
    """An ablation: which cells (rows x g) to train, each with every seed, all beside the baseline."""

    kind: Literal[STUDIES]
    blocks: Literal["all"] | tuple[PositiveInt, ...] = "all"  # placement, grid: ULSAM at one of these at a time
    ops: tuple[Literal["insert", "replace"], ...] = ("insert", "replace")  # placement, grid
    groups: tuple[PositiveInt, ...] = (1, 2, 4, 8, 16)  # placement: exactly one; subspaces, grid: the columns
    # subspaces: ARCH strings or paper variants whose g varies (e.g. paper-mv2-c); archs: the ARCHs as given
    archs: tuple[str, ...] = ()
    # a count (seeds 0..n-1) or the seeds themselves, the same per cell
    seeds: PositiveInt | tuple[NonNegativeInt, ...] = 3
    paper_reference: Literal[PAPER_TABLES] | None = None  # show the paper's numbers from this data set's table

    @field_validator("groups", "ops", "blocks")
    @classmethod
    def _not_empty(cls, value):
        if value != "all" and len(value) == 0:
            raise ValueError("must not be empty")
        return value

    @model_validator(mode="after")
    def _fits_kind(self):
        if self.kind == "placement" and len(self.groups) != 1:
            raise ValueError("a placement study uses one g (groups: [4]); for several use kind: grid")
        if self.kind in ("subspaces", "archs") and not self.archs:
            raise ValueError(f"a {self.kind} study needs archs: " + (
                "the placements whose g varies" if self.kind == "subspaces" else "the ARCHs to compare"))
        if self.kind not in ("subspaces", "archs") and self.archs:
            raise ValueError(f"archs belongs to a subspaces or archs study, not {self.kind}")
        if isinstance(self.seeds, tuple) and (not self.seeds or len(set(self.seeds)) != len(self.seeds)):
            raise ValueError("seeds must be a count or a list of distinct seeds")
        return self

    @property
    def seed_list(self) -> tuple[int, ...]:
        return tuple(range(self.seeds)) if isinstance(self.seeds, int) else self.seeds


CONFIRM_SELECTIONS = ("front", "knee", "crowding")


class ConfirmConfig(_Strict):
    """The confirm stage: retrain ``top`` front members and the baseline with ``seeds`` new seeds at the final
    budget (``epochs``, default ``training.epochs``) and compare them with the baseline beyond seed noise."""

    top: PositiveInt = 2
    seeds: int = Field(default=3, ge=2)  # a paired comparison needs at least two
    epochs: PositiveInt | None = None
    select: Literal[CONFIRM_SELECTIONS] = "front"  # most accurate first; the knee and its neighbours; most isolated


class ConstraintsConfig(_Strict):
    max_macs: PositiveInt | None = None
    max_params: PositiveInt | None = None
    max_latency_ms: PositiveFloat | None = None  # ms per image, as ``latency`` measures it
    min_top1: float | None = Field(default=None, ge=0, lt=100)  # 100 would leave no accuracy to reach


class LatencyConfig(_Strict):
    """How ``latency`` is measured: ms per image, the median of timed forward passes after a warm-up, once per ARCH
    per run (MACs are not speed: ULSAM's pooling, softmax and element-wise work are memory-bound)."""

    batch_size: PositiveInt = 1
    device: Literal["trial", "cpu", "cuda"] = "trial"  # trial: the device the trial trains on
    threads: PositiveInt | None = None  # CPU threads while timing (default: the trial's resources.cpu)
    warmup: int = Field(default=5, ge=0)
    repeats: PositiveInt = 20
    as_trained: bool = True  # the trial's autocast dtype and memory layout on that device (false: fp32, NCHW)


class SamplerConfig(_Strict):
    name: Literal[list_samplers()] = "nsga2"
    seed: NonNegativeInt = 0
    options: dict[str, Any] = Field(default_factory=dict)


class ResourcesConfig(_Strict):
    cpu: PositiveFloat = 1.0
    gpu: float = Field(default=0.0, ge=0)


class SchedulerConfig(_Strict):
    name: Literal[list_schedulers()] = "fifo"
    grace_period: PositiveInt = 1
    reduction_factor: float = Field(default=2.0, gt=1)


class BackendConfig(_Strict):
    """Where trial results come from: training (the default), or the recorded epochs of a tabular benchmark."""

    name: Literal[list_backends()] = "train"
    table: str | None = None  # a CSV from `ulsam-search bench build-table` (backend table)

    @model_validator(mode="after")
    def _table_for_table(self):
        if self.name == "table" and not self.table:
            raise ValueError("backend table needs table: PATH (a CSV made by `ulsam-search bench build-table`)")
        if self.name != "table" and self.table:
            raise ValueError("table belongs to backend name: table")
        return self


class RayConfig(_Strict):
    address: str | None = None
    dashboard: bool = False  # a local instance's dashboard, bound to 127.0.0.1 (needs ray[default])
    wait_for_nodes_s: float = Field(default=0.0, ge=0)  # an autoscaling cluster's grace period


class SearchConfig(_Strict):
    name: str | None = None
    backbone: str = "mobilenet_v2"
    width: float = 1.0
    small_input: bool | None = None  # default: on for inputs of side <= 64
    dataset: DatasetConfig = DatasetConfig()
    training: TrainingConfig = TrainingConfig()
    cost_convention: Literal["paper", "full"] = "paper"
    space: SpaceConfig = SpaceConfig()
    objectives: tuple[Literal[list_objectives()], ...] = ("top1", "macs")
    constraints: ConstraintsConfig = ConstraintsConfig()
    latency: LatencyConfig = LatencyConfig()
    sampler: SamplerConfig = SamplerConfig()
    n_trials: PositiveInt = 16
    resources: ResourcesConfig = ResourcesConfig()
    max_concurrent: PositiveInt = 2
    max_retries: int = Field(default=2, ge=0)  # relaunches of a trial whose process or node died, from its checkpoint
    scheduler: SchedulerConfig = SchedulerConfig()
    ray: RayConfig = RayConfig()
    backend: BackendConfig = BackendConfig()
    study: StudyConfig | None = None  # an ablation (``ulsam-search ablate``) instead of a search
    confirm: ConfirmConfig | None = None  # a search ends by confirming its front (``ulsam-search confirm``)

    @field_validator("name")
    @classmethod
    def _folder_name(cls, value):
        """The run and report folders are runs/<name> and reports/<name>: a name must not lead out of them."""
        if value is not None and not re.fullmatch(_NAME, value):
            raise ValueError(f"{value!r} is not a plain folder name (letters, digits, '_', '-', '.'; not starting "
                             f"with '.' or '-'; at most 100 characters): set name or --name")
        return value

    @field_validator("objectives")
    @classmethod
    def _objectives(cls, value):
        if not value:
            raise ValueError("name at least one objective")
        if len(set(value)) != len(value):
            raise ValueError("each objective may appear once")
        return value

    @model_validator(mode="after")
    def _accuracy_needs_training(self):
        if self.scheduler.name == "mo-asha" and "top1" not in self.objectives:
            raise ValueError("scheduler mo-asha compares accuracy at each rung: add top1 to objectives")
        if self.training.amp == "fp16" and self.resources.gpu == 0:
            raise ValueError("training.amp fp16 needs a GPU per trial (its gradient scaler is CUDA-only here), but "
                             "resources.gpu is 0; valid without a GPU: auto, off, bf16")
        return self

    @property
    def measures_latency(self) -> bool:
        """Whether trials time their model: latency is an objective or constrained."""
        return "latency" in self.objectives or self.constraints.max_latency_ms is not None

    @property
    def directions(self) -> list[str]:
        """Optuna directions of the objectives, in order."""
        return [get_objective(o).optuna_direction for o in self.objectives]

    def with_overrides(self, **changes) -> SearchConfig:
        """A copy with top-level fields replaced (``--name``, ``--n-trials``, ``--address``), validated again."""
        data = self.model_dump()
        for key, value in changes.items():
            if value is None:
                continue
            if key == "address":
                data["ray"]["address"] = value
            else:
                data[key] = value
        return validate_config(data, "command line")

    def with_resolved_paths(self) -> SearchConfig:
        """A copy whose paths (``dataset.root`` and its default, ``training.pretrained``, ``backend.table``) are
        absolute, resolved against the working folder of the command: Ray trials run in folders of their own."""
        data = self.model_dump()
        if get_dataset(self.dataset.name).on_disk:
            data["dataset"]["root"] = str(data_root(self.dataset.root))
        for section, key in (("training", "pretrained"), ("backend", "table")):
            if data[section][key]:
                data[section][key] = str(absolute(data[section][key]))
        return validate_config(data, "paths")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _field_path(location: tuple) -> str:
    return ".".join(str(part) for part in location if not str(part).startswith(("literal[", "tuple[", "function-")))


def validate_config(data: dict, source: str) -> SearchConfig:
    """``data`` as a config, any problem one ``InvalidInput`` naming ``source`` and the field."""
    try:
        return SearchConfig.model_validate(data)
    except ValidationError as error:
        first = max(error.errors(), key=lambda e: len(e["loc"]))  # in a union, the branch that got furthest
        path = _field_path(first["loc"]) or "(top level)"
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            parent = SearchConfig
            for part in first["loc"][:-1]:
                field = getattr(parent, "model_fields", {}).get(part)
                parent = field.annotation if field is not None else parent
            valid = ", ".join(getattr(parent, "model_fields", {}))
            message = "unknown key" + (f"; valid keys here: {valid}" if valid else "")
        raise InvalidInput(f"config {source}: {path}: {message}") from None


def confirm_settings(base: ConfirmConfig | None, **changes) -> ConfirmConfig:
    """``base`` (a config's ``confirm:`` block, or the defaults) with the command line's changes, validated."""
    data = (base or ConfirmConfig()).model_dump() | {key: value for key, value in changes.items() if value is not None}
    try:
        return ConfirmConfig.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        raise InvalidInput(f"confirm: {_field_path(first['loc'])}: {first['msg'].removeprefix('Value error, ')}") \
            from None


def apply_settings(data: dict, settings: list[str] | tuple[str, ...]) -> dict:
    """``data`` with each ``KEY=VALUE`` of ``--set`` applied: dotted keys into nested mappings, YAML values."""
    for setting in settings:
        key, sep, text = setting.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise InvalidInput(f"--set {setting}: expected KEY=VALUE with a dotted key, e.g. training.epochs=1")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise InvalidInput(f"--set {setting}: the value is not valid YAML "
                               f"({getattr(error, 'problem', error)})") from None
        node = data
        for depth, part in enumerate(parts):
            name = int(part) if part.isascii() and part.isdigit() else part  # per_block keys are block numbers
            if depth == len(parts) - 1:
                node[name] = value
                break
            child = node.setdefault(name, {})
            if child is None:
                child = node[name] = {}
            if not isinstance(child, dict):
                raise InvalidInput(f"--set {setting}: {'.'.join(parts[:depth + 1])} is not a mapping of keys")
            node = child
    return data


def load_search_config(path: str | os.PathLike, settings: list[str] | tuple[str, ...] = (),
                       name: str | None = None) -> SearchConfig:
    """Read and validate a search config with ``--set`` overrides applied before validation. The run name is
    ``name`` (``--name``), else the config's, else the file's stem. Paths stay as written: ``run_search`` makes them
    absolute where the command runs."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"config {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise InvalidInput(f"config {path.name}: invalid YAML{where}: {getattr(error, 'problem', error)}") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"config {path.name}: expected a mapping of keys (backbone, dataset, space, ...)")
    data = apply_settings(data, settings)
    source = path.name + (" with --set" if settings else "")
    if name is not None:
        data["name"] = name
    elif "name" in data and data["name"] in (None, ""):
        raise InvalidInput(f"config {source}: name: is empty; give the run a name or drop the key (the file name "
                           f"is the default)")
    elif "name" not in data:
        if not re.fullmatch(_NAME, path.stem):
            raise InvalidInput(f"config {source}: name: the file name {path.stem!r} is not a plain run name "
                               f"(letters, digits, '_', '-', '.'): set name: or --name")
        data["name"] = path.stem
    return validate_config(data, source)
