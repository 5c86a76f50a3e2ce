"""ULSAM forward+backward: the fused module against the per-subspace loop at its best layout and the composite path.

    ulsam-search bench ulsam [--batch 32] [--repeats 7] [--device cpu|cuda|all] [--quick]

For each shape (m, hw, g), in training mode, four contenders on the same input values: the loop (``OfficialULSAM``,
the official structure) on an NCHW input and on a channels_last one (PyTorch's CPU max-pool is several times
faster there), ``ULSAM(fused=False)`` (the composite of standard ops) and the default fused ``ULSAM``, both on
channels_last input (our models train in channels_last). Each round times all four, starting one later each round,
so that the order and machine drift hit them alike; each shape runs in a fresh process (the allocator's state
after a large shape changes the next shape's timings by up to 30%). Ratios are taken round by round (paired) and
printed as their median with the interquartile range; "loop best" is whichever layout of the loop has the lower
median. Also the activation memory each keeps for backward (bytes of the tensors autograd saves, the input's
excluded). Goal: fused >= 2x faster than the loop at its best layout at every shape on CPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch
from rich.console import Console
from rich.table import Table
from torch import nn

from ulsam_search import ULSAM, OfficialULSAM
from ulsam_search.errors import OneLineParser

SHAPES = ((64, 56, 4), (96, 28, 8), (256, 14, 16), (512, 14, 32), (160, 7, 16))
QUICK_SHAPES = ((16, 14, 4), (32, 7, 8))


def _saved_bytes(module: nn.Module, x: torch.Tensor) -> int:
    """Bytes autograd keeps for backward, counting each storage once and leaving out the input's."""
    storages: dict[int, int] = {x.untyped_storage().data_ptr(): 0}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages.setdefault(t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x)
    return sum(storages.values())


def _round_seconds(contenders: dict[str, tuple[nn.Module, torch.Tensor]], grad: torch.Tensor,
                   repeats: int) -> dict[str, list[float]]:
    """Forward+backward seconds of each contender per round; round i starts with contender i (rotated order)."""
    sync = torch.cuda.synchronize if grad.is_cuda else (lambda: None)
    names = list(contenders)
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(repeats + 2):  # two warm-up rounds
        for name in names[i % len(names):] + names[:i % len(names)]:
            module, x = contenders[name]
            sync()
            start = time.perf_counter()
            module(x).backward(grad)
            sync()
            if i >= 2:
                times[name].append(time.perf_counter() - start)
    return times


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else values * 3
    return q1, median, q3


def measure_shape(m: int, hw: int, g: int, batch: int, repeats: int, device: str) -> dict:
    values = torch.randn(batch, m, hw, hw, device=device)
    nchw = values.clone().requires_grad_()
    channels_last = values.to(memory_format=torch.channels_last).requires_grad_()
    grad = torch.randn_like(values)
    modules = {"loop_nchw": OfficialULSAM(m, g, bn_momentum=0.1), "loop_cl": OfficialULSAM(m, g, bn_momentum=0.1),
               "composite": ULSAM(m, g, fused=False), "fused": ULSAM(m, g)}
    contenders = {name: (module.to(device, memory_format=torch.contiguous_format if name == "loop_nchw" else
                                   torch.channels_last).train(), nchw if name == "loop_nchw" else channels_last)
                  for name, module in modules.items()}
    times = _round_seconds(contenders, grad, repeats)
    loop_best = min(("loop_nchw", "loop_cl"), key=lambda name: statistics.median(times[name]))
    row = {"device": device, "m": m, "hw": hw, "g": g, "loop_best": loop_best}
    for name, seconds in times.items():
        row[f"{name}_ms"] = statistics.median(seconds) * 1e3
        row[f"{name}_saved_mb"] = _saved_bytes(*contenders[name]) / 2**20
    for ratio, slower in (("vs_loop_best", loop_best), ("vs_composite", "composite")):
        paired = [a / b for a, b in zip(times[slower], times["fused"])]
        row[f"{ratio}_q1"], row[ratio], row[f"{ratio}_q3"] = _quartiles(paired)
    return row


def _measure_in_fresh_process(shape: tuple[int, int, int], batch: int, repeats: int, device: str) -> dict:
    argv = [sys.executable, __file__, "--shape", ",".join(map(str, shape)), "--batch", str(batch),
            "--repeats", str(repeats), "--device", device]
    return json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = OneLineParser(prog="ulsam-search bench ulsam", description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", choices=("cpu", "cuda", "all"), default="all")
    parser.add_argument("--quick", action="store_true", help="two tiny shapes (for tests)")
    parser.add_argument("--shape", help=argparse.SUPPRESS)  # internal: measure one m,hw,g here, print JSON
    args = parser.parse_args(argv)
    if args.shape:
        print(json.dumps(measure_shape(*map(int, args.shape.split(",")), args.batch, args.repeats, args.device)))
        return []
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    shapes = QUICK_SHAPES if args.quick else SHAPES
    rows = [_measure_in_fresh_process(shape, args.batch, args.repeats, d) for d in devices for shape in shapes]
    title = (f"ULSAM forward+backward, batch {args.batch}, training mode, {torch.get_num_threads()} threads, "
             f"median of {args.repeats} rounds (ratios: paired per round, median (q1-q3))")
    table = Table(title=title)
    for column in ("device", "m", "hw", "g", "loop NCHW ms", "loop CL ms", "composite ms", "fused ms",
                   "fused vs loop best", "fused vs composite", "saved MB loop", "saved MB fused"):
        table.add_column(column, justify="right")
    for r in rows:
        ratios = [f"{r[k]:.2f}x ({r[k + '_q1']:.2f}-{r[k + '_q3']:.2f})" for k in ("vs_loop_best", "vs_composite")]
        table.add_row(r["device"], str(r["m"]), str(r["hw"]), str(r["g"]),
                      *(f"{r[k + '_ms']:.1f}" for k in ("loop_nchw", "loop_cl", "composite", "fused")), *ratios,
                      f"{r[r['loop_best'] + '_saved_mb']:.1f}", f"{r['fused_saved_mb']:.1f}")
    Console(width=200).print(table)
    cpu = [r for r in rows if r["device"] == "cpu"]
    if cpu:
        met = sum(r["vs_loop_best"] >= 2 for r in cpu)
        straddle = sum(r["vs_loop_best_q1"] < 2 <= r["vs_loop_best_q3"] for r in cpu)
        print(f"goal fused >= 2x the loop at its best layout on CPU: met at {met} of {len(cpu)} shapes (median)"
              + (f"; at {straddle} the interquartile range straddles 2x (within noise)" if straddle else ""))
    return rows


if __name__ == "__main__":
    main()
