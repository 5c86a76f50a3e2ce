"""ULSAM forward+backward: our fused module against the per-subspace loop (the official structure), side by side.

    ulsam-search bench ulsam [--batch 32] [--repeats 11] [--device cpu|cuda|all] [--quick]

For each shape (m, hw, g) prints the median time of both in training mode, their ratio, and the activation memory
each keeps for backward (bytes of the tensors autograd saves, the input excluded). Each shape runs in a fresh
process (the allocator's state after a large shape changes the next shape's timings by up to 30%), loop and ours
in turns so that machine drift hits both alike.
Goal (issue 2): >= 2x faster than the loop at every shape on CPU, and never slower.
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


def _median_seconds(modules: list[nn.Module], x: torch.Tensor, grad: torch.Tensor, repeats: int) -> list[float]:
    """Median forward+backward time of each module, run in turns so that machine drift hits them alike."""
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    times: list[list[float]] = [[] for _ in modules]
    for i in range(repeats + 2):  # two warm-up rounds
        for module, seconds in zip(modules, times):
            sync()
            start = time.perf_counter()
            module(x).backward(grad)
            sync()
            if i >= 2:
                seconds.append(time.perf_counter() - start)
    return [statistics.median(seconds) for seconds in times]


def measure_shape(m: int, hw: int, g: int, batch: int, repeats: int, device: str) -> dict:
    x = torch.randn(batch, m, hw, hw, device=device, requires_grad=True)
    grad = torch.randn_like(x)
    loop, ours = OfficialULSAM(m, g, bn_momentum=0.1).to(device).train(), ULSAM(m, g).to(device).train()
    t_loop, t_ours = _median_seconds([loop, ours], x, grad, repeats)
    return {"device": device, "m": m, "hw": hw, "g": g, "loop_ms": t_loop * 1e3, "ours_ms": t_ours * 1e3,
            "speedup": t_loop / t_ours, "loop_saved_mb": _saved_bytes(loop, x) / 2**20,
            "ours_saved_mb": _saved_bytes(ours, x) / 2**20}


def _measure_in_fresh_process(shape: tuple[int, int, int], batch: int, repeats: int, device: str) -> dict:
    argv = [sys.executable, __file__, "--shape", ",".join(map(str, shape)), "--batch", str(batch),
            "--repeats", str(repeats), "--device", device]
    return json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="ulsam-search bench ulsam", description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=11)
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
    table = Table(title=f"ULSAM forward+backward, batch {args.batch}, training mode, median of {args.repeats}")
    for column in ("device", "m", "hw", "g", "loop ms", "ours ms", "speed-up", "saved MB loop", "saved MB ours"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(r["device"], str(r["m"]), str(r["hw"]), str(r["g"]), f"{r['loop_ms']:.1f}",
                      f"{r['ours_ms']:.1f}", f"{r['speedup']:.2f}x", f"{r['loop_saved_mb']:.1f}",
                      f"{r['ours_saved_mb']:.1f}")
    Console(width=160).print(table)
    return rows


if __name__ == "__main__":
    main()
