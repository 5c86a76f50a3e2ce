"""Every CUDA path once, on one GPU, in about 8 minutes; writes a Markdown record of what ran and its figures.

    make gpu-check                       # or: python scripts/gpu_check.py [--out gpu-check.md] [--rehearse-on-cpu]

Steps: the CUDA tests (``pytest -m cuda``), ``bench ulsam --device cuda`` (fused against the loop and the composite
path), ``bench train --device cuda``, and a 4-trial quick-start search with ``resources.gpu: 0.25`` (four trials
sharing the GPU) under bf16 autocast and under fp16 with a gradient scaler. Each step runs as its own process with a
time limit; the record keeps its command, exit code, seconds and the last lines of its output. Exit 1 when a step
failed. Without CUDA it refuses (exit 2), unless ``--rehearse-on-cpu`` runs the same steps on the CPU (the CUDA tests
skip, fp16 is left out) to check the script itself.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
EXE = str(Path(sys.executable).parent / "ulsam-search")
SEARCH = ["--set", "n_trials=4", "--set", "max_concurrent=4", "--set", "training.epochs=2",
          "--set", "scheduler.name=fifo", "--set", "confirm=null", "--quiet"]  # no confirm stage: minutes, not seconds


def steps(device: str, work: Path) -> list[tuple[str, list[str], int]]:
    """(title, command, time limit in s) of every step on ``device``."""
    gpu = "0.25" if device == "cuda" else "0"
    search = [EXE, "run", str(ROOT / "search_spaces" / "quickstart.yaml"), "--runs-dir", str(work / "runs"),
              "--reports-dir", str(work / "reports"), *SEARCH, "--set", f"resources.gpu={gpu}"]
    amps = ["bf16", "fp16"] if device == "cuda" else ["bf16"]
    return [
        ("CUDA tests", [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "-m", "cuda",
                        str(ROOT / "tests" / "test_cuda.py")], 90),
        (f"bench ulsam --device {device}", [EXE, "bench", "ulsam", "--device", device], 90),
        (f"bench train --device {device}", [EXE, "bench", "train", "--device", device, "--repeats", "3"], 120),
        *((f"4-trial search, resources.gpu {gpu}, {amp}", [*search, "--name", f"gpu-check-{amp}",
                                                            "--set", f"training.amp={amp}"], 60) for amp in amps),
    ]


def device_facts(device: str) -> list[str]:
    facts = [f"- host: {platform.node()}, Python {platform.python_version()}, torch {torch.__version__}"]
    if device == "cuda":
        name = torch.cuda.get_device_name(0)
        capability = torch.cuda.get_device_capability(0)
        memory = torch.cuda.get_device_properties(0).total_memory / 2**30
        facts.append(f"- GPU: {name}, compute capability {capability[0]}.{capability[1]}, {memory:.0f} GiB; "
                     f"{torch.cuda.device_count()} visible; CUDA {torch.version.cuda}; cuDNN "
                     f"{torch.backends.cudnn.version()}")
    else:
        facts.append("- no CUDA: a CPU rehearsal of the script (the CUDA tests skip, fp16 is left out)")
    return facts


def run_step(title: str, command: list[str], limit: int) -> tuple[bool, str]:
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=limit, cwd=ROOT)
        code, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as expired:
        code, output = "timeout", f"{expired.stdout or ''}{expired.stderr or ''}"
        output = output.decode() if isinstance(output, bytes) else output
    seconds = time.perf_counter() - start
    tail = "\n".join(output.rstrip().splitlines()[-25:])
    print(f"{title}: exit {code} in {seconds:.0f} s", flush=True)
    ok = code == 0
    return ok, (f"## {title}: {'ok' if ok else 'FAILED'}\n\n`{' '.join(command)}`: exit {code}, {seconds:.0f} s"
                f"\n\n```\n{tail}\n```\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gpu-check.md"))
    parser.add_argument("--rehearse-on-cpu", action="store_true")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available() and not args.rehearse_on_cpu:
        print("error: no CUDA device here; gpu-check needs one (--rehearse-on-cpu checks the script on the CPU)",
              file=sys.stderr)
        return 2
    device = "cuda" if torch.cuda.is_available() else "cpu"
    sections = [f"# gpu-check, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n", *device_facts(device), ""]
    failed = []
    with tempfile.TemporaryDirectory(prefix="ulsam-gpu-check-") as work:
        for title, command, limit in steps(device, Path(work)):
            ok, section = run_step(title, command, limit)
            sections.append(section)
            failed += [] if ok else [title]
    sections.append(f"**{'all steps passed' if not failed else 'failed: ' + ', '.join(failed)}**\n")
    args.out.write_text("\n".join(sections))
    print(f"record: {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
