"""Parameters, MACs and FLOPs (= 2 x MACs) with thop plus each attention type's own rule; latency measurement.

Conventions (MACs are multiply-accumulates, counted for one image):

``paper``  Conv2d and Linear layers only (weights and biases), as the MobileNet and ULSAM papers count. A ULSAM on
           an h x w x m tensor counts 2*m*h*w MACs and 2*m parameters, whatever g (depthwise + pointwise 1x1).
``full``   Every trainable parameter, and thop's default rule for every layer it knows (its BatchNorm rule counts
           4 ops per element, ReLU and max-pool 0), plus what thop cannot see: ULSAM's internals counted with
           thop's rules for the equivalent layers plus its element-wise multiply and add (one per element each),
           and the residual add of every residual block.

An attention layer is counted by its registered cost rule (``models.attention.AttentionType.cost``), never by thop.

Counting profiles a deep copy (thop leaves attributes on the model) and is cached per
(ARCH, input size, classes, convention, small_input).
"""

from __future__ import annotations

import copy
import functools
import statistics
import time
from dataclasses import asdict, dataclass

import torch
from thop import profile
from torch import nn

from .errors import InvalidInput
from .models import Architecture, build_model, get_attention, list_attentions

CONVENTIONS = ("paper", "full")


@dataclass(frozen=True)
class Cost:
    arch: str
    input_size: int
    num_classes: int
    convention: str
    small_input: bool
    params: int
    macs: int

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def to_dict(self) -> dict:
        return {**asdict(self), "flops": self.flops}


def _check_inputs(input_size: int, convention: str) -> None:
    if convention not in CONVENTIONS:
        raise InvalidInput(f"unknown cost convention '{convention}'; valid: {', '.join(CONVENTIONS)}")
    if input_size <= 0:
        raise InvalidInput(f"input size must be a positive integer, got {input_size}")


def count_model(model: nn.Module, input_size: int = 224, convention: str = "paper") -> tuple[int, int]:
    """(params, MACs) of ``model`` on one ``3 x input_size x input_size`` image; ``model`` is left untouched."""
    _check_inputs(input_size, convention)
    return _profile(copy.deepcopy(model).cpu().float().eval(), input_size, convention)


def _profile(model: nn.Module, input_size: int, convention: str) -> tuple[int, int]:
    """Count a model this module owns: thop leaves hooks and attributes on it."""
    rules = {t.cls: t.cost for t in map(get_attention, list_attentions())}
    attention_params: dict[nn.Module, int] = {}  # each attention layer's parameters by its rule, seen in forward

    def count_attention(module: nn.Module, inputs, output) -> None:
        _, m, h, w = inputs[0].shape
        macs, attention_params[module] = rules[type(module)](module, m, h, w, convention)
        module.total_ops += macs

    def zero(module, inputs, output) -> None:
        pass

    custom_ops: dict[type, object] = dict.fromkeys(rules, count_attention)
    residual_adds: list[int] = []  # functional `x + block(x)`, invisible to thop
    if convention == "paper":
        custom_ops.update({t: zero for t in (nn.BatchNorm2d, nn.AdaptiveAvgPool2d)})
    else:
        for module in model.modules():
            if getattr(module, "use_res_connect", False):
                module.register_forward_hook(lambda mod, inputs, output: residual_adds.append(output.numel()))
    macs, _ = profile(model, inputs=(torch.zeros(1, 3, input_size, input_size),), custom_ops=custom_ops, verbose=False)
    return _count_params(model, convention, attention_params), int(macs) + sum(residual_adds)


def _count_params(module: nn.Module, convention: str, attention_params: dict[nn.Module, int]) -> int:
    if module in attention_params:
        return attention_params[module]
    own = module.parameters(recurse=False)
    if convention == "paper" and not isinstance(module, (nn.Conv2d, nn.Linear)):
        own = ()
    return sum(p.numel() for p in own if p.requires_grad) + sum(
        _count_params(child, convention, attention_params) for child in module.children())


def count_cost(arch: Architecture | str, input_size: int = 224, num_classes: int = 1000, convention: str = "paper",
               small_input: bool = False) -> Cost:
    """Cost of an architecture (cached by its canonical ARCH string and the other arguments)."""
    arch = Architecture.parse(arch) if isinstance(arch, str) else arch
    return _cached_cost(str(arch), input_size, num_classes, convention, small_input)


@functools.lru_cache(maxsize=4096)
def _cached_cost(arch: str, input_size: int, num_classes: int, convention: str, small_input: bool) -> Cost:
    _check_inputs(input_size, convention)
    model = build_model(arch, num_classes=num_classes, small_input=small_input).eval()
    params, macs = _profile(model, input_size, convention)  # a model built here: no copy needed
    return Cost(arch, input_size, num_classes, convention, small_input, params, macs)


@dataclass(frozen=True)
class Latency:
    """Median wall time of a forward pass after warm-up (eval mode, no autograd), with what was timed."""

    device: str
    batch: int
    input_size: int
    runs: int
    median_ms: float
    precision: str = "fp32"  # fp32, or the autocast dtype: bf16, fp16
    layout: str = "nchw"  # or channels_last

    @property
    def ms_per_image(self) -> float:
        return self.median_ms / self.batch


def measure_latency(model: nn.Module, input_size: int = 224, batch: int = 1, device: str | torch.device = "cpu",
                    warmup: int = 5, runs: int = 20, *, amp_dtype: torch.dtype | None = None,
                    channels_last: bool = False) -> Latency:
    """Time ``model`` on a ``batch x 3 x input_size x input_size`` input, under ``amp_dtype`` autocast and in
    channels_last when asked (as a trial trains); the model is deep-copied, not moved."""
    device = torch.device(device)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = copy.deepcopy(model).to(device, memory_format=layout).eval()
    x = torch.randn(batch, 3, input_size, input_size, device=device).to(memory_format=layout)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = []
    with torch.inference_mode(), torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        for i in range(warmup + runs):
            sync()
            start = time.perf_counter()
            model(x)
            sync()
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1e3)
    precision = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[amp_dtype]
    return Latency(str(device), batch, input_size, runs, statistics.median(times), precision,
                   "channels_last" if channels_last else "nchw")
