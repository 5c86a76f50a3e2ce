"""Dashboards: Ray's starts only when asked and then answers on 127.0.0.1 alone (it runs jobs for whoever reaches
it); optuna-dashboard serves a run's journal with the objectives' names on its axes."""

import csv
import io
import ipaddress
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ulsam_search.cli import main

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI") == "true"
# No proxy for 127.0.0.1, whatever http_proxy says.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _listening() -> set[tuple[str, int]]:
    """(address, port) of every listening TCP socket of this machine, read from /proc/net/tcp and tcp6."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A":  # LISTEN
                continue
            address, port = fields[1].rsplit(":", 1)
            raw = bytes.fromhex(address)
            if sys.byteorder == "little":  # the kernel prints each 32-bit word in host byte order
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            found.add((str(ipaddress.ip_address(raw)), int(port, 16)))
    return found


def _other_addresses() -> list[tuple[int, tuple]]:
    """(family, socket address without the port) of every address of this machine but 127.0.0.1: IPv4 from
    /proc/net/fib_trie, IPv6 (::1 and link-local ones included, with their scope) from /proc/net/if_inet6."""
    found = []
    lines = Path("/proc/net/fib_trie").read_text().splitlines()
    v4 = {previous.split()[-1] for previous, line in zip(lines, lines[1:]) if line.strip() == "/32 host LOCAL"}
    v4 |= {socket.gethostbyname(socket.gethostname())}
    found += [(socket.AF_INET, (address,)) for address in sorted(v4 - {"127.0.0.1"})]
    if Path("/proc/net/if_inet6").exists():
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            address, index = line.split()[:2]
            address = ipaddress.IPv6Address(bytes.fromhex(address))
            found.append((socket.AF_INET6, (str(address), 0, int(index, 16) if address.is_link_local else 0)))
    return found


def _get(url: str, server: subprocess.Popen | None = None, log: Path | None = None,
         wait_s: float = 60.0) -> tuple[int, str, bytes]:
    """(status, content type, body) of GET ``url``, retried while nothing answers yet (and ``server`` runs)."""
    deadline = time.monotonic() + wait_s
    while True:
        if server is not None and server.poll() is not None:
            raise AssertionError(f"the server exited ({server.returncode}) before answering {url}: "
                                 f"{log.read_text()[-2000:] if log else ''}")
        try:
            with _OPENER.open(url, timeout=10) as response:
                return response.status, response.headers.get("Content-Type", ""), response.read()
        except urllib.error.HTTPError:
            raise
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing answered {url} within {wait_s:.0f} s: {error}") from None
            time.sleep(0.25)


def test_a_local_ray_instance_has_no_dashboard_unless_asked():
    import ray

    from ulsam_search.config import SearchConfig
    from ulsam_search.search._ray import connect_ray

    assert SearchConfig().ray.dashboard is False
    assert connect_ray(None, SearchConfig().ray.dashboard)
    try:
        assert not ray._private.worker.global_worker.node.webui_url
        # Ray's dashboard port: it runs jobs for whoever reaches it
        assert 8265 not in {port for _, port in _listening()}
    finally:
        ray.shutdown()


def test_a_dashboard_asked_for_answers_on_127_0_0_1_and_on_no_other_interface():
    import ray

    from ulsam_search.config import SearchConfig
    from ulsam_search.search._ray import connect_ray

    config = SearchConfig(ray={"dashboard": True})
    assert not ray.is_initialized()  # else connect_ray would join it and start nothing
    assert connect_ray(None, config.ray.dashboard)
    try:
        url = ray._private.worker.global_worker.node.webui_url  # ray.init's dashboard_url, "127.0.0.1:8265"
        host, port = url.rsplit(":", 1)
        port = int(port)
        assert host == "127.0.0.1", url
        status, content_type, body = _get(f"http://127.0.0.1:{port}/")
        assert status == 200 and content_type.startswith("text/html") and b"<html" in body.lower()
        # Bound to 127.0.0.1 alone: not 0.0.0.0, not ::, not the machine's own address.
        assert {address for address, p in _listening() if p == port} == {"127.0.0.1"}
        # And nothing answers on the machine's other addresses (::1 and eth0's, where there are any; with none,
        # the bind address above is the check).
        for family, address in _other_addresses():
            with socket.socket(family, socket.SOCK_STREAM) as client:
                client.settimeout(5)
                with pytest.raises(ConnectionRefusedError):
                    client.connect((address[0], port, *address[1:]))
    finally:
        ray.shutdown()
    deadline = time.monotonic() + 30
    while port in {p for _, p in _listening()} and time.monotonic() < deadline:
        time.sleep(0.25)
    assert port not in {p for _, p in _listening()}, "the dashboard outlived ray.shutdown()"


def test_dashboard_without_ray_default_is_bad_input(capsys, monkeypatch, tmp_path):
    """ray[default] is missing: `import aiohttp` fails (a None in sys.modules makes the import raise ImportError)."""
    import ray

    assert not ray.is_initialized()  # else the run would join it, and no check would run
    monkeypatch.setitem(sys.modules, "aiohttp", None)
    config = tmp_path / "cfg.yaml"
    config.write_text("space: {blocks: [12]}\nray: {dashboard: true}\n")
    code = main(["run", str(config), "--runs-dir", str(tmp_path / "runs"), "--reports-dir", str(tmp_path / "rep")])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "") and err.count("\n") == 1, err
    assert "ray.dashboard: Ray's dashboard needs ray[default] (pip install 'ray[default]')" in err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "rep").exists() and not ray.is_initialized()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_optuna_dashboard_serves_a_runs_study_with_its_metric_names(tmp_path):
    import ray

    from ulsam_search.config import load_search_config
    from ulsam_search.search._ray import start_local_ray
    from ulsam_search.search.objectives import get_objective
    from ulsam_search.search.rundir import STUDY_NAME
    from ulsam_search.search.runner import run_search

    executable = Path(sys.executable).parent / "optuna-dashboard"
    if not executable.exists():
        message = f"{executable} is missing: pip install -e '.[test]' (or '.[dashboard]')"
        pytest.fail(message) if IN_CI else pytest.skip(message)
    # The shipped table search, 4 trials (random proposals: the sampler is not what is tested here).
    config = load_search_config(ROOT / "search_spaces" / "tabular_digits_search.yaml",
                                [f"backend.table={ROOT / 'benchmarks' / 'data' / 'tabular_digits.csv'}", "n_trials=4",
                                 "sampler={name: random, seed: 0}"])
    start_local_ray(2)
    try:
        table = run_search(config, tmp_path / "runs", progress=False)
    finally:
        ray.shutdown()
    names = [get_objective(o).column for o in config.objectives]
    assert names == ["top1", "macs"] and len(table) == 4

    port, log = _free_port(), tmp_path / "optuna-dashboard.log"
    with log.open("w") as sink:
        server = subprocess.Popen([str(executable), str(tmp_path / "runs" / config.name / "optuna.log"),
                                   "--host", "127.0.0.1", "--port", str(port)], stdout=sink, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        status, _, body = _get(f"{base}/api/studies", server, log)
        studies = json.loads(body)["study_summaries"]
        assert status == 200 and [s["study_name"] for s in studies] == [STUDY_NAME]
        assert studies[0]["directions"] == ["maximize", "minimize"]
        _, _, body = _get(f"{base}/api/studies/{studies[0]['study_id']}", server, log)
        detail = json.loads(body)
        assert detail["objective_names"] == names  # the axes: top1 and macs, not "Objective 0" and "Objective 1"
        assert len(detail["trials"]) == len(table)
        by_number = table.set_index("number")
        states = {"COMPLETE": "Complete", "INFEASIBLE": "Complete", "PRUNED": "Pruned", "FAILED": "Fail"}
        for trial in detail["trials"]:
            row = by_number.loc[trial["number"]]
            assert trial["state"] == states[row["status"]], (trial["number"], row["status"])
            if trial["state"] == "Complete":
                assert trial["values"] == [row["top1"], row["macs"]], trial["number"]
            assert {"key": "arch", "value": row["arch"]} in trial["user_attrs"]
        assert (table["status"] == "COMPLETE").any()
        _, _, body = _get(f"{base}/csv/{studies[0]['study_id']}", server, log)  # the dashboard's CSV export
        assert next(csv.reader(io.StringIO(body.decode())))[:4] == ["Number", "State", *names]
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert port not in {p for _, p in _listening()}
