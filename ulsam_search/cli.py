"""The ``ulsam-search`` command line: parses arguments and calls the stages, nothing more.

Exit codes: 0 success, 2 bad input (one line on stderr naming the problem and the valid choices), 1 anything else.
``--json`` prints exactly one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import runpy
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .cost import CONVENTIONS, count_cost
from .errors import InvalidInput
from .variants import DEFAULT_GROUPS, VARIANTS, resolve_arch

BENCHMARKS_DIR = Path(__file__).resolve().parent.parent / "benchmarks"


def _console() -> Console:
    """Rich console for tables; wide enough not to truncate ARCH strings when stdout is a file or pipe."""
    return Console(width=None if sys.stdout.isatty() else 160)


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad usage as one line (exit 2) instead of the usage block."""

    def error(self, message: str) -> None:
        raise InvalidInput(f"{self.prog}: {message}")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'")
    return value


def _add_cost_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input-size", type=_positive_int, default=224, help="square input side (default 224)")
    parser.add_argument("--num-classes", type=_positive_int, default=1000, help="classifier outputs (default 1000)")
    parser.add_argument("--convention", choices=CONVENTIONS, default="paper", help="cost convention (default paper)")
    parser.add_argument("--small-input", action="store_true", help="stride-8 backbone for 32x32 data")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _cost_record(arch, args) -> dict:
    cost = count_cost(arch, args.input_size, args.num_classes, args.convention, args.small_input)
    record = {"arch": str(arch), "backbone": arch.backbone, "width": arch.width, "input_size": args.input_size,
              "num_classes": args.num_classes, "convention": args.convention, "small_input": args.small_input,
              "params": cost.params, "macs": cost.macs, "flops": cost.flops}
    if arch.placements:
        base = count_cost(arch.baseline, args.input_size, args.num_classes, args.convention, args.small_input)
        record.update(baseline_params=base.params, baseline_macs=base.macs)
    return record


def _delta(value: int, base: int | None) -> str:
    if base is None:
        return ""
    return f"{value - base:+,} ({(value - base) / base:+.2%})"


def _cmd_count(args) -> None:
    record = _cost_record(resolve_arch(args.arch), args)
    if args.json:
        print(json.dumps(record))
        return
    table = Table(title=f"{record['arch']} at {args.input_size}x{args.input_size}, {args.num_classes} classes, "
                        f"{args.convention} convention")
    for column in ("", "value", "vs. no ULSAM"):
        table.add_column(column, justify="right")
    table.add_row("params", f"{record['params']:,}", _delta(record["params"], record.get("baseline_params")))
    table.add_row("MACs", f"{record['macs']:,}", _delta(record["macs"], record.get("baseline_macs")))
    flops_base = 2 * record["baseline_macs"] if "baseline_macs" in record else None
    table.add_row("FLOPs (2 x MACs)", f"{record['flops']:,}", _delta(record["flops"], flops_base))
    _console().print(table)


def _cmd_variants(args) -> None:
    records = []
    for variant in VARIANTS.values():
        record = _cost_record(variant.arch(), args)
        record.update(name=variant.name, description=variant.description, paper_groups=list(variant.paper_groups),
                      verified=variant.verified)
        records.append(record)
    if args.json:
        print(json.dumps({"default_groups": DEFAULT_GROUPS, "input_size": args.input_size,
                          "num_classes": args.num_classes, "convention": args.convention, "variants": records}))
        return
    table = Table(title=f"The paper's variants (g=4; append /g for another) at {args.input_size}x{args.input_size}, "
                        f"{args.convention} convention")
    for column in ("name", "ARCH", "params", "MACs (M)", "vs. no ULSAM", "paper g"):
        table.add_column(column, justify="left" if column in ("name", "ARCH") else "right")
    for r in records:
        table.add_row(r["name"], r["arch"], f"{r['params']:,}", f"{r['macs'] / 1e6:.1f}",
                      f"{(r['macs'] - r['baseline_macs']) / r['baseline_macs']:+.2%}",
                      ",".join(map(str, r["paper_groups"])))
    _console().print(table)


def _available_benchmarks() -> list[str]:
    return sorted(p.stem for p in BENCHMARKS_DIR.glob("*.py") if not p.stem.startswith("_"))


def _cmd_bench(args) -> None:
    available = _available_benchmarks()
    if not available:
        raise InvalidInput(f"no benchmarks found in {BENCHMARKS_DIR}: run from a clone of the repository")
    names = [args.name] if args.name else available
    for name in names:
        if name not in available:
            raise InvalidInput(f"unknown benchmark '{name}'; valid: {', '.join(available)}")
        main = runpy.run_path(str(BENCHMARKS_DIR / f"{name}.py"))["main"]
        main(args.bench_args)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ulsam-search", description="Where should ULSAM go in a MobileNet, and with how many "
                                                      "subspaces? Cost counting, training, search and reports.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    count = sub.add_parser("count", help="params, MACs and FLOPs of an ARCH or variant")
    count.add_argument("arch", help="ARCH string (mobilenet_v2:12=4,15=4) or variant name (paper-mv2-c/8)")
    _add_cost_options(count)
    count.set_defaults(func=_cmd_count)

    variants = sub.add_parser("variants", help="the paper's variants with their ARCH and cost")
    _add_cost_options(variants)
    variants.set_defaults(func=_cmd_variants)

    bench = sub.add_parser("bench", help="run a benchmark from benchmarks/ (all when no name is given)")
    bench.add_argument("name", nargs="?", help="benchmark name, e.g. ulsam")
    bench.add_argument("bench_args", nargs=argparse.REMAINDER, help="arguments passed to the benchmark")
    bench.set_defaults(func=_cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        args.func(args)
    except InvalidInput as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # the one place that turns any failure into exit code 1
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
