"""A corpus of malformed inputs, each through the real CLI in a subprocess: exit code 2, exactly one line on stderr
naming the problem, no traceback, and no file written or changed anywhere under the working folder."""

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from layouts import write_imagefolder

EXE = str(Path(sys.executable).parent / "ulsam-search")
SEARCH = "backbone: mobilenet_v2\nwidth: 0.35\nspace: {blocks: [12, 15]}\n"


def _prepare(root: Path) -> None:
    """The files the corpus points at: configs, a run directory with a broken table, a file where a folder goes."""
    configs = {
        "unknown_key.yaml": SEARCH + "epochs: 3\n",
        "wrong_type.yaml": SEARCH + "n_trials: many\n",
        "negative_budget.yaml": SEARCH + "training: {epochs: -1}\n",
        "g_not_dividing.yaml": SEARCH + "space: {blocks: [12], per_block: {12: {groups: [5]}}}\n",
        "replace_stride2.yaml": SEARCH + "space: {blocks: [2, 12], per_block: {2: {ops: [replace]}}}\n",
        "empty_space.yaml": SEARCH + "space: {blocks: [12, 15], ops: [none]}\n",
        "unused_g.yaml": SEARCH + "space: {blocks: [12, 15], groups: [1, 5]}\n",
        "impossible.yaml": SEARCH + "constraints: {max_macs: 1000}\n",
        "missing_data.yaml": SEARCH + "dataset: {name: cifar10, root: /nonexistent/cifar}\n",
        "bad_yaml.yaml": "space: [12,\n",
        "not_mapping.yaml": "- backbone\n- width\n",
        "mo_asha_no_top1.yaml": SEARCH + "objectives: [macs, params]\nscheduler: {name: mo-asha}\n",
        "placement_two_g.yaml": SEARCH + "study: {kind: placement, groups: [1, 4]}\n",
        "subspaces_no_archs.yaml": SEARCH + "study: {kind: subspaces}\n",
        "study_bad_block.yaml": SEARCH + "study: {kind: grid, blocks: [40]}\n",
        "valid.yaml": SEARCH,
        "escape_name.yaml": SEARCH + "name: ../../outside\n",
        "negative_retries.yaml": SEARCH + "max_retries: -1\n",
        "negative_seed.yaml": SEARCH + "training: {seed: -1}\n",
        "empty_name.yaml": "name:\n" + SEARCH,
        "my config.yaml": SEARCH,
        "superscript_g.yaml": SEARCH + "study: {kind: subspaces, archs: ['paper-mv2-c/\u00b2']}\n",
        "refused_options.yaml": SEARCH + "sampler: {name: nsga2, options: {population_size: 1}}\n",
        "unknown_option.yaml": SEARCH + "sampler: {name: tpe, options: {bogus: 1}}\n",
        "inf_reduction.yaml": SEARCH + "scheduler: {name: mo-asha, reduction_factor: .inf}\n",
        "nan_grace.yaml": SEARCH + "scheduler: {name: mo-asha, grace_period: .nan}\n",
        "nan_lr.yaml": SEARCH + "training: {lr: .nan}\n",
        "negative_warmup.yaml": SEARCH + "training: {warmup_epochs: -1}\n",
        "inf_decay.yaml": SEARCH + "training: {weight_decay: .inf}\n",
        "smoothing_one.yaml": SEARCH + "training: {label_smoothing: 1.0}\n",
        "fp16_cpu.yaml": SEARCH + "training: {amp: fp16}\n",
        "min_top1_100.yaml": SEARCH + "constraints: {min_top1: 100}\n",
        "one_class.yaml": SEARCH + "dataset: {name: imagefolder, root: one_class}\n",
    }
    for name, text in configs.items():
        (root / name).write_text(text.replace("space: {blocks: [12, 15]}\nspace:", "space:"))
    run = root / "runs" / "broken"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("name: broken\n" + SEARCH)
    (run / "run.json").write_text('{"input_size": 32, "num_classes": 10, "small_input": true, "baseline_arch": '
                                  '"mobilenet_v2@0.35", "baseline_macs": 1, "baseline_params": 1}\n')
    (run / "trials.csv").write_text("number,arch,status,macs,params,top1\n0,mobilenet_v2@0.35,COMPL")
    (root / "runs" / "empty").mkdir()
    good = root / "runs" / "good"
    good.mkdir()
    for name in ("config.yaml", "run.json"):
        (good / name).write_text((run / name).read_text())
    (good / "trials.csv").write_text("number,arch,status,macs,params,top1,top5,epochs_done,epochs_budget,feasible\n"
                                     "0,mobilenet_v2@0.35,COMPLETE,1,1,50.0,60.0,3,3,True\n")
    (root / "a_file").write_text("not a folder\n")
    write_imagefolder(root / "one_class", classes=("only",), per_class=2)
    (root / "cifar_empty").mkdir()


CASES = [
    # configs
    (["run", "unknown_key.yaml"], "epochs: unknown key; valid keys here: name, backbone"),
    (["run", "wrong_type.yaml"], "n_trials: Input should be a valid integer"),
    (["run", "negative_budget.yaml"], "training.epochs: Input should be greater than 0"),
    (["run", "g_not_dividing.yaml"], "space.per_block.12.groups: none of 5 divides the"),
    (["run", "replace_stride2.yaml"], "space.per_block.2.ops: block 2 cannot be replaced"),
    (["run", "empty_space.yaml"], "space: nothing to search"),
    (["run", "unused_g.yaml"], "space.groups: g=5 divides the channels of no candidate block"),
    (["run", "impossible.yaml"], "constraints.max_macs: 1,000 is below the cheapest architecture"),
    (["run", "missing_data.yaml"], "dataset: cifar10 not found"),
    (["run", "bad_yaml.yaml"], "invalid YAML at line"),
    (["run", "not_mapping.yaml"], "expected a mapping of keys"),
    (["run", "missing.yaml"], "config missing.yaml does not exist"),
    (["run", "mo_asha_no_top1.yaml"], "scheduler mo-asha compares accuracy at each rung: add top1"),
    (["run", "escape_name.yaml"], "name: '../../outside' is not a plain folder name"),
    (["run", "valid.yaml", "--name", "/tmp/elsewhere"], "name: '/tmp/elsewhere' is not a plain folder name"),
    (["run", "negative_retries.yaml"], "max_retries: Input should be greater than or equal to 0"),
    (["run", "negative_seed.yaml"], "training.seed: Input should be greater than or equal to 0"),
    (["run", "unknown_key.yaml", "--address", "127.0.0.1:1"], "unknown key"),
    (["run", "impossible.yaml", "--n-trials", "0"], "argument --n-trials: expected a positive integer, got '0'"),
    (["ablate", "placement_two_g.yaml"], "study: a placement study uses one g"),
    (["ablate", "subspaces_no_archs.yaml"], "study: a subspaces study needs archs"),
    (["ablate", "study_bad_block.yaml"], "study.blocks: block 40 out of range for mobilenet_v2"),
    (["ablate", "empty_space.yaml"], "study: missing; an ablation names its study"),
    (["run", "empty_name.yaml"], "name: is empty; give the run a name"),
    (["run", "my config.yaml"], "name: the file name 'my config' is not a plain run name"),
    (["run", "my config.yaml", "--name", "ok", "--set", "dataset={name: cifar10, root: nowhere}"],
     "dataset: cifar10 not found"),  # --name stands in for the file name: the next problem is the data
    (["ablate", "superscript_g.yaml"], "study.archs.0: malformed subspace count '/\u00b2'"),
    (["run", "refused_options.yaml"], "sampler.options: nsga2 refuses {'population_size': 1}"),
    (["run", "unknown_option.yaml"], "sampler.options: tpe refuses {'bogus': 1}"),
    (["run", "inf_reduction.yaml"], "scheduler.reduction_factor: Input should be a finite number"),
    (["run", "nan_grace.yaml"], "scheduler.grace_period: Input should be a finite number"),
    (["run", "nan_lr.yaml"], "training.lr: Input should be a finite number"),
    (["run", "negative_warmup.yaml"], "training.warmup_epochs: Input should be greater than or equal to 0"),
    (["run", "inf_decay.yaml"], "training.weight_decay: Input should be a finite number"),
    (["run", "smoothing_one.yaml"], "training.label_smoothing: Input should be less than 1"),
    (["run", "fp16_cpu.yaml"], "training.amp fp16 needs a GPU per trial"),
    (["run", "min_top1_100.yaml"], "constraints.min_top1: Input should be less than 100"),
    (["run", "one_class.yaml"], "has 1 class; a classifier needs at least 2"),
    # --set overrides and resources
    (["run", "valid.yaml", "--set", "training.epoch=1"], "training.epoch: unknown key; valid keys here: epochs"),
    (["run", "valid.yaml", "--set", "training.epochs=zero"], "training.epochs: Input should be a valid integer"),
    (["run", "valid.yaml", "--set", "training"], "--set training: expected KEY=VALUE"),
    (["run", "valid.yaml", "--set", "training.epochs=[1"], "--set training.epochs=[1: the value is not valid YAML"),
    (["run", "valid.yaml", "--set", "resources.gpu=64"], "resources: each trial asks for 1 CPUs and 64 GPUs, but this"),
    (["run", "valid.yaml", "--set", "resources.cpu=512"], "each trial asks for 512 CPUs and 0 GPUs"),
    # ARCH strings
    (["count", "mobilenet_v2:12=5"], "g=5 does not divide the 96 channels at block 12"),
    (["count", "mobilenet_v2:2=4"], "block 2 of mobilenet_v2 cannot be replaced"),
    (["count", "mobilenet_v3"], "unknown backbone 'mobilenet_v3'"),
    (["count", "paper-mv2-c/\u00b2"], "malformed subspace count '/\u00b2'"),
    (["count", "mobilenet_v2:\u0661\u0662=4"], "malformed placement"),
    (["count", "mobilenet_v2@0.3"], "width 0.3 is not available for mobilenet_v2"),
    (["train", "paper-mv2-z", "--quiet"], "unknown variant 'paper-mv2-z'"),
    # CLI arguments
    (["train", "mobilenet_v2", "--epochs", "-3"], "argument --epochs: expected a positive integer, got '-3'"),
    (["train", "mobilenet_v2", "--lr", "nan"], "argument --lr: expected a positive number"),
    (["count", "mobilenet_v2", "--input-size", "0"], "argument --input-size: expected a positive integer"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["bench", "samplers", "--samplers", "nsga2", "foo"],
     "bench samplers: --samplers foo: unknown; valid: nsga2, tpe, gp, random, grid"),
    (["bench", "build-table", "--out", "a_file"], "a_file is not a tabular benchmark (missing columns: arch, seed"),
    (["bench", "build-table", "--out", "one_class"], "--out one_class is a folder; give the table's file"),
    (["bench", "build-table", "--seeds", "0", "-1"], "--seeds 0 -1: seeds are whole numbers >= 0"),
    (["bench", "samplers", "--seeds", "0"], "bench samplers: --seeds 0: needs at least 1 sampler seed"),
    # a benchmark's own argparse errors are one line too, not its usage block
    (["bench", "build-table", "--limit", "ten"],
     "ulsam-search bench build-table: argument --limit: invalid int value: 'ten'"),
    (["bench", "seed-noise", "--bogus"], "ulsam-search bench seed-noise: unrecognized arguments: --bogus"),
    (["bench", "samplers", "--budgets", "10", "250"],
     "--budgets 250: a budget is a percentage of the space in (0, 100]"),
    # data roots
    (["train", "mobilenet_v2", "--dataset", "imagefolder", "--data-root", "/nonexistent/images", "--quiet"],
     "imagefolder"),
    (["train", "mobilenet_v2", "--dataset", "cifar100", "--data-root", "cifar_empty", "--quiet"],
     "cifar100 not found"),
    # run directories and results files
    (["resume", "runs/nowhere"], "is not a run directory"),
    (["resume", "runs/empty"], "is not a run directory (no config.yaml)"),
    (["report", "runs/nowhere"], "run directory runs/nowhere does not exist"),
    (["report", "runs/broken", "--out", "out"], "trials.csv: row 2 is truncated or corrupt"),
    # unwritable output
    (["train", "mobilenet_v2", "--epochs", "1", "--out", "a_file/run", "--quiet"], "a_file"),
    (["report", "runs/broken", "--out", "a_file/report"], "trials.csv: row 2 is truncated or corrupt"),
    (["report", "runs/good", "--out", "a_file/report"], "report folder a_file/report"),
    (["confirm", "runs/good", "--top", "0"], "argument --top: expected a positive integer, got '0'"),
    (["confirm", "runs/good", "--seeds", "1"], "confirm: seeds: Input should be greater than or equal to 2"),
    (["confirm", "runs/good"], "the run's Pareto set holds no architecture besides the baseline: nothing to confirm"),
    (["confirm", "runs/broken"], "trials.csv: row 2 is truncated or corrupt"),
    (["confirm", "runs/missing"], "run directory runs/missing does not exist"),
    (["confirm", "runs/good", "--select", "best"], "invalid choice: 'best' (choose from 'front', 'knee', 'crowding')"),
    (["confirm", "runs/good", "--set", "study.seeds=[0]"], "--set study.seeds=[0]: the confirm stage sets study.seeds"),
]


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def _run_case(root: Path, argv: list[str]) -> tuple[subprocess.CompletedProcess, bool]:
    """The CLI on ``argv`` in its own prepared folder: its result, and whether the folder is exactly as before."""
    _prepare(root)
    before = _snapshot(root)
    result = subprocess.run([EXE, *argv], cwd=root, capture_output=True, text=True, timeout=120)
    return result, _snapshot(root) == before


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[int, tuple[subprocess.CompletedProcess, bool]]:
    """Every case run once, as many at a time as there are cores: each CLI start spends seconds importing torch."""
    roots = [tmp_path_factory.mktemp(f"case{k}") for k in range(len(CASES))]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        futures = {k: pool.submit(_run_case, roots[k], argv) for k, (argv, _) in enumerate(CASES)}
        return {k: future.result() for k, future in futures.items()}


@pytest.mark.slow
@pytest.mark.parametrize("case", range(len(CASES)), ids=[" ".join(a)[:60] for a, _ in CASES])
def test_malformed_input_exits_2_with_one_line_and_touches_nothing(outcomes, case):
    result, untouched = outcomes[case]
    message = CASES[case][1]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    assert message in lines[0], lines[0]
    assert result.stdout == ""
    assert untouched  # nothing written, nothing changed


def test_the_readme_counts_the_corpus():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert f"writes or changes nothing ({len(CASES)} malformed configs" in readme
