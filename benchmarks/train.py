"""Training throughput: our ``fit`` against a bare minimal PyTorch loop, side by side in one process.

    ulsam-search bench train [--repeats 3] [--device auto|cpu|cuda] [--quick]

Both loops get the same model (a copy of one initialisation), the same data tensors (batches made once, before
timing), batch size, optimizer (SGD, Nesterov momentum), memory format and autocast dtype, so the ratio is what our
loop's extras cost: the LR schedule, label smoothing, weight-decay groups, loss bookkeeping and the NaN check.
Each measurement runs one warm-up epoch and times the second; loops run in turns (the order rotating between
repeats), median of ``--repeats``.
A bare loop in the default NCHW layout is timed too, to show what channels_last gives.
Goal (issue 3): ours >= 0.95 of the bare loop.
"""

from __future__ import annotations

import copy
import statistics
import time

import torch
from rich.console import Console
from rich.table import Table
from torch import nn

from ulsam_search import build_model
from ulsam_search.data import DataBundle, load_data
from ulsam_search.errors import OneLineParser
from ulsam_search.train import TrainConfig, fit, resolve_runtime, seed_everything

LR = 0.05


class _Fixed(list):
    """Pre-made batches: the same tensors for every loop and epoch."""

    def set_epoch(self, epoch: int) -> None:
        pass


def _cases(quick: bool) -> list[dict]:
    if quick:
        return [dict(arch="mobilenet_v2@0.35", dataset="digits", batch=16, steps=3, input_size=None),
                dict(arch="mobilenet_v2", dataset="fake", batch=2, steps=2, input_size=64)]
    return [dict(arch="mobilenet_v2@0.35", dataset="digits", batch=64, steps=None, input_size=None),
            dict(arch="mobilenet_v2", dataset="fake", batch=16, steps=4, input_size=224)]


def _batches(case: dict, device: torch.device) -> tuple[DataBundle, _Fixed]:
    data = load_data(case["dataset"], batch_size=case["batch"], input_size=case["input_size"], workers=0,
                     device=device, fake_size=case["batch"] * (case["steps"] or 1))
    data.train.set_epoch(1)
    steps = case["steps"] or len(data.train)
    batches = _Fixed(batch for _, batch in zip(range(steps), data.train))
    return data, batches


def _bare_loop(model: nn.Module, batches: list, device: torch.device, amp_dtype, channels_last: bool) -> float:
    """Images per second of the second of two epochs of the loop everybody writes first."""
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(device, memory_format=memory_format).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9, nesterov=True, weight_decay=4e-5)
    criterion = nn.CrossEntropyLoss()
    for epoch in range(2):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for images, labels in batches:
            images = images.to(device, memory_format=memory_format)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                loss = criterion(model(images), labels.to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
    return sum(len(labels) for _, labels in batches) / (time.perf_counter() - start)


def _ours(model: nn.Module, data: DataBundle, batches: _Fixed, config: TrainConfig) -> float:
    bundle = DataBundle(data.name, batches, _Fixed(batches[:1]), data.num_classes, data.input_size,
                        len(batches) * len(batches[0][1]), len(batches[0][1]), data.synthetic)
    return fit(model, bundle, config).history[1].images_per_second


def measure(case: dict, repeats: int, device_name: str) -> dict:
    config = TrainConfig(epochs=2, lr=LR, device=device_name)
    device, amp_dtype = resolve_runtime(config)
    data, batches = _batches(case, device)
    seed_everything(0)
    initial = build_model(case["arch"], data.num_classes, small_input=data.small_input)
    loops = {"bare_nchw": lambda model: _bare_loop(model, batches, device, amp_dtype, False),
             "bare": lambda model: _bare_loop(model, batches, device, amp_dtype, True),
             "ours": lambda model: _ours(model, data, batches, config)}
    rates = {name: [] for name in loops}
    for repeat in range(repeats):
        names = list(loops)
        for name in names[repeat % 3:] + names[:repeat % 3]:  # rotate the order: no loop always runs first
            rates[name].append(loops[name](copy.deepcopy(initial)))
    median = {name: statistics.median(values) for name, values in rates.items()}
    return {"arch": case["arch"], "dataset": data.name, "synthetic": data.synthetic, "input_size": data.input_size,
            "batch": case["batch"], "steps": len(batches), "device": str(device),
            "amp": str(amp_dtype).removeprefix("torch.") if amp_dtype else "fp32", **median,
            "ratio": median["ours"] / median["bare"], "channels_last_gain": median["bare"] / median["bare_nchw"]}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = OneLineParser(prog="ulsam-search bench train", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--quick", action="store_true", help="tiny cases (for tests)")
    args = parser.parse_args(argv)
    rows = [measure(case, args.repeats, args.device) for case in _cases(args.quick)]
    table = Table(title=f"Training images/s, second epoch, median of {args.repeats} (goal: ours >= 0.95 x bare)")
    for column in ("ARCH", "data", "batch x steps", "device", "bare NCHW", "bare", "ours", "ours / bare",
                   "channels_last gain"):
        table.add_column(column, justify="left" if column in ("ARCH", "data") else "right")
    for r in rows:
        data = f"{r['dataset']} {r['input_size']}px" + (" (synthetic)" if r["synthetic"] else "")
        table.add_row(r["arch"], data, f"{r['batch']} x {r['steps']}", f"{r['device']} {r['amp']}",
                      f"{r['bare_nchw']:.1f}", f"{r['bare']:.1f}", f"{r['ours']:.1f}", f"{r['ratio']:.3f}",
                      f"{r['channels_last_gain']:.2f}x")
    Console(width=160).print(table)
    return rows


if __name__ == "__main__":
    main()
