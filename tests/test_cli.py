import json
import subprocess
import sys
from pathlib import Path

import pytest

from ulsam_search.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_count_json(capsys):
    code, out, err = run(capsys, "count", "paper-mv2-c", "--json")
    record = json.loads(out)
    assert code == 0 and out.count("\n") == 1
    assert record["arch"] == "mobilenet_v2:12=4,15=4" and record["backbone"] == "mobilenet_v2"
    assert (record["macs"], record["baseline_macs"]) == (262_659_328, 300_774_272)
    assert record["flops"] == 2 * record["macs"] and record["params"] < record["baseline_params"]
    assert {"width", "input_size", "num_classes", "convention"} <= record.keys()


def test_count_baseline_has_no_deltas_and_honours_options(capsys):
    code, out, _ = run(capsys, "count", "mobilenet_v1@0.25", "--input-size", "32", "--num-classes", "10",
                       "--small-input", "--convention", "full", "--json")
    record = json.loads(out)
    assert code == 0 and "baseline_macs" not in record
    assert (record["input_size"], record["num_classes"], record["convention"], record["width"]) == (32, 10, "full", 0.25)


def test_count_table_shows_deltas(capsys):
    code, out, _ = run(capsys, "count", "mobilenet_v2:16+4")
    assert code == 0 and "300,789,952" in out and "+15,680" in out


def test_variants_json(capsys):
    code, out, _ = run(capsys, "variants", "--json")
    payload = json.loads(out)
    names = [v["name"] for v in payload["variants"]]
    assert code == 0 and len(names) == 12 and "paper-mv2-f" in names
    f = next(v for v in payload["variants"] if v["name"] == "paper-mv2-f")
    assert round(1 - f["macs"] / f["baseline_macs"], 2) == 0.25


@pytest.mark.parametrize("argv, message", [
    (["count", "mobilenet_v3"], "unknown backbone 'mobilenet_v3'; valid: mobilenet_v1, mobilenet_v2"),
    (["count", "mobilenet_v2:12=7"], "g=7 does not divide the 96 channels at block 12 of mobilenet_v2; valid g:"),
    (["count", "mobilenet_v2:1=1"], "block 1 of mobilenet_v2 cannot be replaced"),
    (["count", "mobilenet_v1:14+1"], "block 14 out of range for mobilenet_v1; valid blocks: 1..13"),
    (["count", "mobilenet_v1@2.0"], "width 2 is not available for mobilenet_v1; valid widths: 0.25, 0.5, 0.75, 1"),
    (["count", "mobilenet_v2:12-4"], "malformed placement '12-4'"),
    (["count", "paper-mv9"], "unknown variant 'paper-mv9'; valid variants:"),
    (["count", "mobilenet_v2", "--input-size", "0"], "argument --input-size: expected a positive integer, got '0'"),
    (["count", "mobilenet_v2", "--num-classes", "-3"], "argument --num-classes: expected a positive integer"),
    (["count", "mobilenet_v2", "--convention", "flops"], "argument --convention: invalid choice: 'flops'"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["bench", "nope"], "unknown benchmark 'nope'; valid: build-table, report, samplers, search, seed-noise, train, ulsam"),
])
def test_bad_input_exits_2_with_one_line(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err


def test_console_script_exit_codes():
    exe = str(Path(sys.executable).parent / "ulsam-search")  # installed beside the interpreter by `make test`
    ok = subprocess.run([exe, "count", "mobilenet_v2", "--json"], capture_output=True, text=True)
    assert ok.returncode == 0 and json.loads(ok.stdout)["macs"] == 300_774_272
    bad = subprocess.run([exe, "count", "mobilenet_v2:99+1"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stdout == "" and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines() == ["error: block 99 out of range for mobilenet_v2; valid blocks: 1..17"]


TRAIN_KEYS = {"arch", "dataset", "epochs", "top1", "top5", "val_loss", "params", "macs", "train_seconds",
              "images_per_second", "device", "seed"}


@pytest.mark.slow
def test_train_json_out_and_resume(capsys, tmp_path):
    out = tmp_path / "run"
    code, stdout, err = run(capsys, "train", "mobilenet_v1@0.25:7+4", "--epochs", "1", "--seed", "3", "--json",
                            "--out", str(out))
    record = json.loads(stdout)
    assert code == 0 and stdout.count("\n") == 1 and TRAIN_KEYS <= record.keys()
    assert (record["arch"], record["dataset"], record["epochs"], record["seed"], record["device"]) == (
        "mobilenet_v1@0.25:7+4", "digits", 1, 3, "cpu")
    assert record["small_input"] and record["macs"] == 12_038_656 + 2 * 128 * 8 * 8 and record["synthetic"] is False
    assert 0 <= record["top1"] <= record["top5"] <= 100 and record["images_per_second"] > 0
    assert "epoch 1" in err and "digits: 1438 train / 359 val images" in err  # progress on stderr
    assert json.loads((out / "result.json").read_text())["top1"] == record["top1"]
    # The finished run resumes to the same numbers; a second run into the same folder is refused.
    code, stdout, _ = run(capsys, "train", "mobilenet_v1@0.25:7+4", "--epochs", "1", "--seed", "3", "--json",
                          "--resume", str(out), "--quiet")
    assert code == 0 and json.loads(stdout)["top1"] == record["top1"]
    code, stdout, err = run(capsys, "train", "mobilenet_v1@0.25:7+4", "--epochs", "1", "--out", str(out))
    assert code == 2 and "already holds a run (checkpoint.pt); continue it with --resume" in err
    code, _, err = run(capsys, "train", "mobilenet_v1@0.25", "--epochs", "1", "--resume", str(out))
    assert code == 2 and "the checkpoint trained mobilenet_v1@0.25:7+4, not mobilenet_v1@0.25" in err
    # Resuming on other data, another batch size or another model input is refused, naming the field.
    for option, message in ((["--batch-size", "32"], "batch_size=64 (now 32)"),
                            (["--train-limit", "100"], "train_limit=None (now 100)"),
                            (["--input-size", "48"], "input_size=32 (now 48)"),
                            (["--no-small-input"], "small_input=True (now False)"),
                            (["--dataset", "fake", "--num-classes", "10"], "dataset='digits' (now 'fake')")):
        code, stdout, err = run(capsys, "train", "mobilenet_v1@0.25:7+4", "--epochs", "1", "--seed", "3",
                                "--resume", str(out), "--quiet", *option)
        assert code == 2 and f"cannot resume: the checkpoint was trained with {message}" in err, err


def test_train_bad_input_writes_nothing(capsys, tmp_path):
    out = tmp_path / "out"
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00" * 10)
    afile = tmp_path / "afile"
    afile.write_text("")
    cases = [
        (["--dataset", "mnist"], "argument --dataset: invalid choice: 'mnist' (choose from 'digits', 'cifar10'"),
        (["--dataset", "cifar10", "--data-root", str(tmp_path / "none")], "cifar10 not found: expected"),
        (["--dataset", "imagefolder", "--data-root", str(tmp_path)], "imagefolder needs"),
        (["--num-classes", "100"], "dataset digits has 10 classes but --num-classes is 100"),
        (["--resume", str(garbage)], "cannot read checkpoint"),
        (["--pretrained", str(garbage)], "cannot read pretrained weights"),
        (["--device", "cuda"] if not __import__("torch").cuda.is_available() else ["--device", "tpu"], "cuda"),
        (["--lr", "0"], "argument --lr: expected a positive number, got '0'"),
        (["--workers", "-1"], "argument --workers: expected a non-negative integer, got '-1'"),
        (["--seed", "-1"], "argument --seed: expected a non-negative integer, got '-1'"),
        (["--weight-decay", "nan"], "argument --weight-decay: expected a non-negative number, got 'nan'"),
        (["--amp", "fp16", "--device", "cpu"], "amp fp16 needs CUDA"),
        (["--dataset-option", "canvas=40"], "unknown option 'canvas' for dataset digits; valid: none"),
        (["--dataset", "cluttered-mnist", "--dataset-option", "pieces=2"],
         "unknown option 'pieces' for dataset cluttered-mnist; valid: canvas, digit_size, clutter, piece_size"),
        (["--dataset", "cluttered-mnist", "--dataset-option", "clutter=many"],
         "argument --dataset-option: expected KEY=N with N a whole number, got 'clutter=many'"),
        (["--dataset", "cluttered-mnist", "--dataset-option", "digit_size=40"],
         "digit_size 40 and piece_size 6 must fit the canvas 32"),
    ]
    for extra, message in cases:
        code, stdout, err = run(capsys, "train", TINY_ARCH, "--epochs", "1", "--out", str(out), *extra)
        assert (code, stdout) == (2, ""), (extra, err)
        assert err.count("\n") == 1 and message in err, (extra, err)
        assert not out.exists(), extra
    code, _, err = run(capsys, "train", TINY_ARCH, "--out", str(afile / "run"))
    assert code == 2 and "is not writable" in err and "is not a directory" in err


TINY_ARCH = "mobilenet_v1@0.25"


@pytest.mark.parametrize("config_text, extra, message", [
    ("bogus: 1\n", [], "config cfg.yaml: bogus: unknown key; valid keys here: name, backbone"),
    ("training: {epochs: three}\n", [], "config cfg.yaml: training.epochs: Input should be a valid integer"),
    ("space: {blocks: [12, 15], ops: [none]}\n", [], "space: nothing to search"),
    ("space: {blocks: [12, 15], groups: [1, 7]}\n", [], "space.groups: g=7 divides the channels of no candidate"),
    ("space: {blocks: [12]}\nconstraints: {max_macs: 1000}\n", [],
     "constraints.max_macs: 1,000 is below the cheapest architecture in the space (mobilenet_v2:12=1:"),
    ("dataset: {name: cifar10, root: /nonexistent}\n", [], "dataset: cifar10 not found: expected /nonexistent/"),
    ("space: {blocks: [12]}\n", ["--address", "127.0.0.1:1"], "ray.address 127.0.0.1:1 is unreachable"),
    ("space: {blocks: [12]}\n", ["--n-trials", "0"], "argument --n-trials: expected a positive integer, got '0'"),
])
def test_run_bad_input_exits_2_and_writes_nothing(capsys, tmp_path, config_text, extra, message):
    config = tmp_path / "cfg.yaml"
    config.write_text(config_text)
    runs = tmp_path / "runs"
    code, out, err = run(capsys, "run", str(config), "--runs-dir", str(runs), *extra)
    assert (code, out) == (2, "") and err.count("\n") == 1 and message in err, err
    assert not runs.exists()


def test_resume_and_rerun_refuse_what_they_cannot_continue(capsys, tmp_path):
    code, _, err = run(capsys, "resume", str(tmp_path))
    assert code == 2 and "is not a run directory (no config.yaml)" in err
    run_dir = tmp_path / "runs" / "cfg"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text("name: cfg\nspace: {blocks: [12]}\nn_trials: 3\n")
    config = tmp_path / "cfg.yaml"
    config.write_text("space: {blocks: [12, 15]}\n")
    code, _, err = run(capsys, "run", str(config), "--runs-dir", str(tmp_path / "runs"))
    assert code == 2 and "already exists with a different config (space); continue it with `ulsam-search resume" in err
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.yaml"]


def test_a_dataset_option_spelled_out_at_its_default_continues_the_same_run(capsys, tmp_path):
    run_dir = tmp_path / "runs" / "cfg"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text("name: cfg\ndataset: {name: cluttered-mnist}\nspace: {blocks: [12]}\n")
    config = tmp_path / "cfg.yaml"
    for canvas, message in ((32, "resources: each trial asks for 64 CPUs"),  # past the run check, stopped after it
                            (40, "already exists with a different config (dataset)")):
        config.write_text(f"dataset: {{name: cluttered-mnist, options: {{canvas: {canvas}}}}}\n"
                          "space: {blocks: [12]}\nresources: {cpu: 64}\n")
        code, _, err = run(capsys, "run", str(config), "--runs-dir", str(tmp_path / "runs"))
        assert code == 2 and message in err, err
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.yaml"]


def test_bench_help_lists_every_benchmark_with_its_first_docstring_line(capsys, monkeypatch, tmp_path):
    from ulsam_search import cli

    expected = {}
    for path in sorted((Path(__file__).resolve().parent.parent / "benchmarks").glob("*.py")):
        text = path.read_text()
        assert text.startswith('"""'), f"{path.name} opens with no docstring"
        expected[path.stem.replace("_", "-")] = text[3:].lstrip().splitlines()[0].rstrip()
    assert len(expected) >= 6
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--help"])
    out, _ = capsys.readouterr()
    assert exit_.value.code == 0 and out.startswith("usage: ulsam-search bench")
    listed = out.split("\nbenchmarks:\n", 1)[1].splitlines()
    assert [line.split()[0] for line in listed] == list(expected)
    for line, (name, summary) in zip(listed, expected.items()):
        assert line.startswith(f"  {name} ") and line.endswith(f" {summary}") and line.split(None, 1)[1] == summary
    monkeypatch.setattr(cli, "BENCHMARKS_DIR", tmp_path / "benchmarks")  # installed without a clone
    with pytest.raises(SystemExit):
        main(["bench", "-h"])
    out, _ = capsys.readouterr()
    assert f"no benchmarks found in {tmp_path / 'benchmarks'}: run from a clone of the repository" in out
