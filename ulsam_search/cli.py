"""The ``ulsam-search`` command line: parses arguments and calls the stages, nothing more.

Exit codes: 0 success, 2 bad input (one line on stderr naming the problem and the valid choices), 1 anything else.
``--json`` prints exactly one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import runpy
import sys
from dataclasses import fields
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .ablation.claims import study_claims
from .ablation.confirm import CONFIRM_DIR, confirmable, finding
from .config import CONFIRM_SELECTIONS, load_search_config
from .cost import CONVENTIONS
from .data import DATASETS
from .errors import InvalidInput, NothingTrained, OneLineParser
from .models import VARIANTS, resolve_arch
from .models.variants import DEFAULT_GROUPS
from .report import write_report
from .search.records import interrupted, pareto_set, retried_failures
from .search.rundir import RunFacts
from .train import AMP_MODES, DEVICES, OPTIMIZERS, TrainConfig
from .workflows import (TrainRequest, check_trained, confirm_run, cost_record, resume_search, run_search,
                        search_config, status_counts, train_architecture)

BENCHMARKS_DIR = Path(__file__).resolve().parent.parent / "benchmarks"


def _console() -> Console:
    """Rich console for tables; wide enough not to truncate ARCH strings when stdout is a file or pipe."""
    return Console(width=None if sys.stdout.isatty() else 160)


def _number(cast: type, noun: str, *, allow_zero: bool):
    """An argparse type for finite numbers > 0 (or >= 0) whose error names what was expected."""

    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            raise argparse.ArgumentTypeError(f"expected a {noun}, got '{text}'")
        return value

    return parse


_positive_int = _number(int, "positive integer", allow_zero=False)
_non_negative_int = _number(int, "non-negative integer", allow_zero=True)
_positive_float = _number(float, "positive number", allow_zero=False)
_non_negative_float = _number(float, "non-negative number", allow_zero=True)


def _dataset_option(text: str) -> tuple[str, int]:
    """``--dataset-option clutter=8``: a name and a whole number (which names are valid, the dataset says)."""
    key, _, value = text.partition("=")
    try:
        return key, int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected KEY=N with N a whole number, got '{text}'") from None


def _add_cost_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input-size", type=_positive_int, default=224, help="square input side (default 224)")
    parser.add_argument("--num-classes", type=_positive_int, default=1000, help="classifier outputs (default 1000)")
    parser.add_argument("--convention", choices=CONVENTIONS, default="paper", help="cost convention (default paper)")
    parser.add_argument("--small-input", action="store_true", help="stride-8 backbone for 32x32 data")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _cost_record(arch, args) -> dict:
    return cost_record(arch, args.input_size, args.num_classes, args.convention, args.small_input)


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


def _cmd_train(args) -> None:
    args.dataset_options = dict(args.dataset_options)  # checked against the dataset's spec when it is described
    training = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)})
    request = TrainRequest(training=training, **{f.name: getattr(args, f.name) for f in fields(TrainRequest)
                                                 if f.name != "training"})
    trained = train_architecture(request)
    record, result = trained.record, trained.result
    if args.json:
        print(json.dumps(record))
        return
    table = Table(title=f"{record['arch']} on {trained.description}")
    for column in ("epoch", "train loss", "val loss", "top-1 %", "top-5 %", "images/s"):
        table.add_column(column, justify="right")
    for m in result.history:
        table.add_row(str(m.epoch), f"{m.train_loss:.4f}", f"{m.val_loss:.4f}", f"{m.top1:.2f}", f"{m.top5:.2f}",
                      f"{m.images_per_second:,.0f}")
    _console().print(table)
    files = f"; files in {trained.out}" if trained.out else ""
    _console().print(f"{record['params']:,} params, {record['macs'] / 1e6:.2f}M MACs (paper convention), "
                     f"{result.seconds:.1f} s on {result.device}{files}")


def _available_benchmarks() -> list[str]:
    """Benchmark names: the files in benchmarks/, with dashes for underscores (build_table.py: build-table)."""
    return sorted(p.stem.replace("_", "-") for p in BENCHMARKS_DIR.glob("*.py") if not p.stem.startswith("_"))


def _benchmarks_epilog() -> str:
    """``bench --help``'s list: each benchmark and the first line of its docstring, read without importing it
    (a benchmark imports Ray or torch)."""
    names = _available_benchmarks()
    if not names:
        return f"no benchmarks found in {BENCHMARKS_DIR}: run from a clone of the repository"
    lines = ["benchmarks:"]
    for name in names:
        try:
            source = (BENCHMARKS_DIR / f"{name.replace('-', '_')}.py").read_text(encoding="utf-8")
            summary = (ast.get_docstring(ast.parse(source)) or "").strip().splitlines()[0]
        except (OSError, SyntaxError, ValueError, IndexError):
            summary = "(no description)"
        lines.append(f"  {name:<{max(map(len, names))}}  {summary}")
    return "\n".join(lines)


class _BenchHelp(argparse.Action):
    """``bench -h``: the usage and the benchmark list, read only when asked (parsing the files takes ~15 ms)."""

    def __init__(self, option_strings, dest, **kwargs) -> None:
        super().__init__(option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, nargs=0,
                         help="show this help message, with every benchmark, and exit")

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        parser.epilog = _benchmarks_epilog()
        parser.print_help()
        parser.exit()


def _finish_run(table, config, root: Path, reports_dir: str, address: str | None = None,
                quiet: bool = False, retry_failed: bool = False) -> None:
    """Print what the run holds and write its report; the last line says how many trials failed, and a run in
    which no trial completed exits 1 after its report is written. A study ends with the paper's claims its cells
    test; a search with a ``confirm:`` block then confirms its front, and its last lines say what held beyond noise."""
    counts = status_counts(table)
    front = pareto_set(table, config.objectives)
    summary = ", ".join(f"{n} {status.lower()}" for status, n in counts.items())
    _console().print(f"{len(table)} trials ({summary}); Pareto set of {len(front)}; results in {root}")
    stopped = interrupted(table, config.n_trials, root / "optuna.log")
    if stopped:
        print(f"stopped after {len(table) - retried_failures(table)} of {config.n_trials} trials; continue with "
              f"`ulsam-search resume {root}`", file=sys.stderr)
    started = (root / CONFIRM_DIR / "config.yaml").is_file()  # a confirm stage to continue
    confirming = (config.confirm is not None or started) and config.study is None and not stopped and \
        counts["COMPLETE"] > 0
    baseline = RunFacts.read(root / "run.json").baseline_arch if confirming else None
    if confirming and not started and not confirmable(front, baseline):
        print(f"confirm: the Pareto set holds only the baseline {baseline}; nothing to confirm", file=sys.stderr)
        confirming = False
    if len(table):  # written before a confirm stage too, so that a failed one leaves the search's report
        _console().print(f"report: {write_report(root, Path(reports_dir) / config.name) / 'index.html'}")
    if stopped:  # the resume hint is the last word
        return
    warning = check_trained(table)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    for claim in study_claims(config, table) if config.study is not None else []:
        print(f"paper claim: {claim.sentence()}")
    if confirming:
        _confirm(root, {}, (), address, quiet, Path(reports_dir) / config.name, retry_failed)


def _confirm(run_dir: Path, changes: dict, overrides, address: str | None, quiet: bool, report_dir: Path,
             retry_failed: bool = False) -> None:
    """Confirm the run's front, write its report, and end with the finding in words."""
    confirmation = confirm_run(run_dir, changes, overrides=overrides, progress=not quiet, address=address,
                               retry_failed=retry_failed)
    if confirmation is None:  # interrupted: the resume hint is the last word
        return
    _console().print(f"report: {write_report(run_dir, report_dir) / 'index.html'}")
    print(f"confirmed at {confirmation.epochs} epochs with seeds {', '.join(map(str, confirmation.seeds))}:")
    for line in finding(confirmation):
        print(f"  {line}")


def _cmd_confirm(args) -> None:
    changes = {"top": args.top, "seeds": args.seeds, "epochs": args.epochs, "select": args.select}
    name = Path(args.run_dir).resolve().name
    _confirm(Path(args.run_dir), changes, args.set, args.address, args.quiet, Path(args.reports_dir) / name,
             args.retry_failed)


def _cmd_ablate(args) -> None:
    config = search_config(args.config, args.set, args.name, address=args.address, ablation=True)
    table = run_search(config, args.runs_dir, progress=not args.quiet)
    _finish_run(table, config, Path(args.runs_dir) / config.name, args.reports_dir)


def _cmd_report(args) -> None:
    out = write_report(args.run_dir, args.out)
    _console().print(f"report: {out / 'index.html'} (pareto.md, pareto.csv, summary.json, PNGs beside it)")


def _cmd_run(args) -> None:
    config = search_config(args.config, args.set, args.name, n_trials=args.n_trials, address=args.address)
    table = run_search(config, args.runs_dir, progress=not args.quiet)
    _finish_run(table, config, Path(args.runs_dir) / config.name, args.reports_dir, args.address, args.quiet)


def _cmd_resume(args) -> None:
    table = resume_search(args.run_dir, progress=not args.quiet, address=args.address, retry_failed=args.retry_failed)
    _finish_run(table, load_search_config(Path(args.run_dir) / "config.yaml"), Path(args.run_dir), args.reports_dir,
                args.address, args.quiet, args.retry_failed)


def _cmd_bench(args) -> None:
    available = _available_benchmarks()
    if not available:
        raise InvalidInput(f"no benchmarks found in {BENCHMARKS_DIR}: run from a clone of the repository")
    names = [args.name] if args.name else [n for n in available if n != "build-table"]  # hours, not minutes
    for name in names:
        if name not in available:
            raise InvalidInput(f"unknown benchmark '{name}'; valid: {', '.join(available)}")
        main = runpy.run_path(str(BENCHMARKS_DIR / f"{name.replace('-', '_')}.py"))["main"]
        main(args.bench_args)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="ulsam-search", description="Where should ULSAM go in a MobileNet, and with how "
                                                           "many subspaces? Cost counting, training, search and "
                                                           "reports.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for add_commands in (_add_cost_commands, _add_train_command, _add_search_commands, _add_report_commands):
        add_commands(sub)
    return parser


def _add_cost_commands(sub) -> None:
    count = sub.add_parser("count", help="params, MACs and FLOPs of an ARCH or variant")
    count.add_argument("arch", help="ARCH string (mobilenet_v2:12=4,15=4) or variant name (paper-mv2-c/8)")
    _add_cost_options(count)
    count.set_defaults(func=_cmd_count)

    variants = sub.add_parser("variants", help="the paper's variants with their ARCH and cost")
    _add_cost_options(variants)
    variants.set_defaults(func=_cmd_variants)


def _add_train_command(sub) -> None:
    train = sub.add_parser("train", help="train one ARCH or variant on a dataset and report top-1/top-5")
    train.add_argument("arch", help="ARCH string or variant name")
    train.add_argument("--dataset", choices=DATASETS, default="digits", help="dataset (default digits, embedded)")
    train.add_argument("--data-root", help="folder holding the data (default $ULSAM_SEARCH_DATA or ./data)")
    train.add_argument("--download", action="store_true", help="download CIFAR when missing (needs network)")
    train.add_argument("--epochs", type=_positive_int, default=10, help="epochs (default 10)")
    train.add_argument("--batch-size", type=_positive_int, default=64, help="batch size (default 64)")
    train.add_argument("--lr", type=_positive_float, default=0.05, help="peak learning rate (default 0.05)")
    train.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd", help="sgd (Nesterov) or adamw")
    train.add_argument("--weight-decay", type=_non_negative_float, default=4e-5, help="on conv/linear weights")
    train.add_argument("--warmup-epochs", type=_non_negative_float, default=1.0, help="linear warm-up (default 1)")
    train.add_argument("--label-smoothing", type=_non_negative_float, default=0.1, help="default 0.1")
    train.add_argument("--grad-clip", type=_positive_float, help="clip the gradient norm to this value")
    train.add_argument("--amp", choices=AMP_MODES, default="auto", help="auto: bf16/fp16 on CUDA, fp32 on CPU")
    train.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                       help="channels_last memory format (default on)")
    train.add_argument("--compile", action="store_true", help="torch.compile the model")
    train.add_argument("--seed", type=_non_negative_int, default=0,
                       help="seed of initialisation, data order and augmentation")
    train.add_argument("--device", choices=DEVICES, default="auto", help="auto: CUDA when present")
    train.add_argument("--input-size", type=_positive_int, help="image side (default: the dataset's own)")
    train.add_argument("--num-classes", type=_positive_int, help="check the dataset's class count (fake: set it)")
    train.add_argument("--small-input", action=argparse.BooleanOptionalAction, default=None,
                       help="early strides for small images (default: on when the input side <= 64)")
    train.add_argument("--workers", type=_non_negative_int,
                       help="DataLoader workers for imagefolder/fake (default min(8, CPUs))")
    train.add_argument("--train-limit", type=_positive_int,
                       help="train on N images, a fixed class-stratified subset (a proxy task)")
    train.add_argument("--dataset-option", action="append", default=[], type=_dataset_option, metavar="KEY=N",
                       dest="dataset_options", help="the dataset's own option (repeatable): --dataset-option clutter=8")
    train.add_argument("--pretrained", help="state_dict or checkpoint to load into matching layers")
    train.add_argument("--resume", help="checkpoint (or --out folder) to continue; pass the same settings")
    train.add_argument("--out", help="folder for checkpoint.pt (every epoch) and result.json")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    train.set_defaults(func=_cmd_train)


# Options several commands share, spelled once.
_SHARED_OPTIONS = {
    "--name": dict(help="run name (default: the config's name, else its file name)"),
    "--address": dict(help="Ray cluster to join (default: $RAY_ADDRESS, else a local instance)"),
    "--runs-dir": dict(default="runs", help="where run directories go (default runs/)"),
    "--reports-dir": dict(default="reports", help="where the report goes when it ends (default reports/)"),
    "--set": dict(action="append", default=[], metavar="KEY=VALUE",
                  help="override a config key (dotted, YAML value; repeatable): --set training.epochs=1"),
    "--quiet": dict(action="store_true", help="no live progress view"),
}


def _add_shared(parser, *flags: str) -> None:
    for flag in flags:
        parser.add_argument(flag, **_SHARED_OPTIONS[flag])


def _add_search_commands(sub) -> None:
    run = sub.add_parser("run", help="run a search from a config (continues it when the run exists)")
    run.add_argument("config", help="search config, e.g. search_spaces/quickstart.yaml")
    run.add_argument("--n-trials", type=_positive_int, help="override n_trials")
    _add_shared(run, "--name", "--address", "--runs-dir", "--reports-dir", "--set", "--quiet")
    run.set_defaults(func=_cmd_run)

    resume = sub.add_parser("resume", help="continue an interrupted run")
    resume.add_argument("run_dir", help="the run directory, e.g. runs/quickstart")
    _add_shared(resume, "--address", "--reports-dir", "--quiet")
    resume.add_argument("--retry-failed", action="store_true",
                        help="once a failure's cause is fixed: one more trial for every architecture whose trials all "
                             "failed (beyond n_trials), in the search and in its confirm stage")
    resume.set_defaults(func=_cmd_resume)

    ablate = sub.add_parser("ablate", help="run an ablation study (every cell x seed) and report its statistics")
    ablate.add_argument("config", help="ablation config, e.g. search_spaces/ablation_quick.yaml")
    _add_shared(ablate, "--name", "--address", "--runs-dir", "--reports-dir", "--set", "--quiet")
    ablate.set_defaults(func=_cmd_ablate)

    confirm = sub.add_parser("confirm", help="retrain a run's front and the baseline with new seeds; what holds "
                                             "beyond noise")
    confirm.add_argument("run_dir", help="the run directory of a search, e.g. runs/quickstart")
    confirm.add_argument("--top", type=_positive_int, help="how many front members (default: the config's "
                                                            "confirm.top, else 2)")
    confirm.add_argument("--seeds", type=int, help="new seeds per ARCH, at least 2 (default 3)")
    confirm.add_argument("--epochs", type=_positive_int, help="the budget (default: the search's training.epochs)")
    confirm.add_argument("--select", choices=CONFIRM_SELECTIONS,
                         help="front: most accurate first (default); knee: the knee and its neighbours; crowding: "
                              "the most isolated first")
    confirm.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="override a key of the confirm run's config, e.g. --set resources.cpu=2")
    _add_shared(confirm, "--address", "--reports-dir", "--quiet")
    confirm.add_argument("--retry-failed", action="store_true",
                         help="once a failure's cause is fixed: one more training for every ARCH and seed whose "
                              "trainings all failed")
    confirm.set_defaults(func=_cmd_confirm)


def _add_report_commands(sub) -> None:
    report = sub.add_parser("report", help="write the Pareto report of a run (finished or still running)")
    report.add_argument("run_dir", help="the run directory, e.g. runs/quickstart")
    report.add_argument("--out", help="report folder (default reports/<name>)")
    report.set_defaults(func=_cmd_report)

    bench = sub.add_parser("bench", help="run a benchmark from benchmarks/ (without a name: all but build-table)",
                           add_help=False, formatter_class=argparse.RawDescriptionHelpFormatter)
    bench.add_argument("-h", "--help", action=_BenchHelp)
    bench.add_argument("name", nargs="?", help="benchmark name, e.g. ulsam")
    bench.add_argument("bench_args", nargs=argparse.REMAINDER, help="arguments passed to the benchmark")
    bench.set_defaults(func=_cmd_bench)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        args.func(args)
    except InvalidInput as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except NothingTrained as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # the one place that turns any failure into exit code 1
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
