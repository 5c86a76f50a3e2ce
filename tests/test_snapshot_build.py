"""scripts/snapshot_build.py: a build's journal copied mid-append keeps only its complete lines."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "snapshot_build.py"


def test_a_snapshot_cuts_the_journal_at_its_last_complete_line(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("name: x\n")
    (run / "run.json").write_text("{}")
    (run / "optuna.log").write_bytes(b'{"op": 0}\n{"op": 1}\n{"op": 2, "half')
    done = subprocess.run([sys.executable, str(SCRIPT), str(run), str(tmp_path / "snap")], capture_output=True,
                          text=True)
    assert done.returncode == 0 and done.stdout.startswith("2 journal lines"), done
    assert (tmp_path / "snap" / "optuna.log").read_bytes() == b'{"op": 0}\n{"op": 1}\n'
    assert (tmp_path / "snap" / "config.yaml").read_text() == "name: x\n"
    assert subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True).returncode == 2
    (run / "run.json").unlink()  # a run directory without the facts a resume needs: refused, nothing written
    refused = subprocess.run([sys.executable, str(SCRIPT), str(run), str(tmp_path / "snap2")], capture_output=True,
                             text=True)
    assert refused.returncode == 2 and refused.stderr.startswith("error: usage:") and "run.json" in refused.stderr
    assert not (tmp_path / "snap2").exists()
