"""Copy what a table build's resume needs into the repository, so a lost checkout loses no finished trial.

    python scripts/snapshot_build.py RUN_DIR DEST     # e.g. /work/table-runs/tabular_cluttered-seed1
                                                      #      benchmarks/data/building/tabular_cluttered-seed1

Copies the run's ``config.yaml`` and ``run.json``, and its Optuna journal cut at the last complete line: the build
may be appending while this runs, and a partial line would break the resume's next append. Checkpoints are left out
(a trial running at the snapshot trains again from its first epoch). See benchmarks/data/building/README.md.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

RUN_FILES = ("config.yaml", "run.json", "optuna.log")


def snapshot(run_dir: Path, dest: Path) -> int:
    """Write the snapshot; returns the number of journal lines kept."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES[:2]:
        shutil.copyfile(run_dir / name, dest / name)
    journal = (run_dir / "optuna.log").read_bytes()
    kept = journal[: journal.rfind(b"\n") + 1]
    (dest / "optuna.log").write_bytes(kept)
    return kept.count(b"\n")


if __name__ == "__main__":
    if len(sys.argv) != 3 or not all((Path(sys.argv[1]) / name).is_file() for name in RUN_FILES):
        print("error: usage: python scripts/snapshot_build.py RUN_DIR DEST (RUN_DIR: a run directory with "
              f"{', '.join(RUN_FILES)})", file=sys.stderr)
        sys.exit(2)
    print(f"{snapshot(Path(sys.argv[1]), Path(sys.argv[2]))} journal lines -> {sys.argv[2]}")
