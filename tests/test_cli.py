"""The command line, called in-process through ``cli.main(argv)`` as the console script does."""
import json
import time

import pytest

from p2pzmq import cli

pytestmark = pytest.mark.timeout(120)


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_default_session_prints_the_original_lines_and_writes_tgf(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "run", "-n", "16", "--seed", "1")
    assert code == 0, err
    lines = out.splitlines()
    has = [line for line in lines if line.endswith(" peers in its tree.")]
    connected = [line for line in lines if " is connected to " in line]
    assert len(has) == len(connected) == 32
    assert lines[0].split()[1:3] == ["has", lines[0].split()[2]] and lines[1].startswith(lines[0].split()[0])
    assert [line for line in lines if line.startswith("Connectivity percentage ")][0].endswith("%")
    assert lines[-1] == f"Writing network structure to {tmp_path / 'network.tgf'}"  # the absolute path written
    tgf = (tmp_path / "network.tgf").read_text().splitlines()
    assert tgf.index("#") == 16


def test_same_seed_gives_byte_identical_output_and_tgf(capsys, tmp_path, monkeypatch):
    outputs = []
    monkeypatch.chdir(tmp_path)  # one directory: the output names the absolute path written
    for _ in range(2):
        code, out, _ = run(capsys, "run", "-n", "12", "--seed", "42", "--metric", "xor")
        assert code == 0
        outputs.append((out, (tmp_path / "network.tgf").read_bytes()))
        (tmp_path / "network.tgf").unlink()
    assert outputs[0] == outputs[1]


def test_commands_run_in_order_with_their_arguments(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "run", "-n", "4", "--seed", "2", "time_lapse", "2", "output_tgf", "a.tgf", "ping")
    assert code == 0
    assert out.splitlines() == ["Doing 2 step time-lapse", f"Writing network structure to {tmp_path / 'a.tgf'}",
                                "4 peers"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tgf", "time-lapse-1.tgf", "time-lapse-2.tgf"]


def test_json_output_parses(capsys):
    code, out, _ = run(capsys, "run", "-n", "3", "--seed", "2", "--json", "net_status", "ping")
    assert code == 0
    results = [json.loads(line) for line in out.splitlines()]
    assert [r["cmd"] for r in results] == ["net_status", "ping"]
    assert results[0]["result"]["n"] == 3 and all(isinstance(p["id"], str) for p in results[0]["result"]["peers"])


@pytest.mark.parametrize("argv", [
    ["run", "-n", "0"],
    ["run", "-n", "-2"],
    ["run", "-n", "2", "bogus"],
    ["run", "-n", "2", "time_lapse"],
    ["run", "-n", "2", "time_lapse", "x"],
    ["run", "-n", "2", "time_lapse", "-1"],
    ["run", "--metric", "euclid"],
    ["frobnicate"],
    [],
])
def test_usage_errors_exit_2_with_one_line(capsys, argv):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_unwritable_tgf_path_is_a_failed_command_exit_1(capsys, tmp_path):
    code, _, err = run(capsys, "run", "-n", "2", "output_tgf", str(tmp_path / "no" / "such" / "dir.tgf"))
    assert code == 1 and "cannot write" in err and len(err.splitlines()) == 1


def test_ctl_without_a_supervisor_exits_3_within_its_timeout(capsys):
    import socket

    with socket.socket() as probe:  # a port that nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    code, _, err = run(capsys, "ctl", "--control", f"tcp://127.0.0.1:{port}", "--timeout", "0.5", "ping")
    assert code == 3 and "no supervisor answered" in err
    assert time.monotonic() - started < 5


def test_help_and_version_exit_0(capsys):
    assert cli.main(["--version"]) == 0
    assert cli.main(["run", "--help"]) == 0
    out, _ = capsys.readouterr()
    assert "net_status" in out


def test_timeout_and_eviction_options_reach_the_network(capsys, monkeypatch):
    built = []

    class Recorded(cli.Network):
        def __init__(self, config, **options):
            built.append(config)
            super().__init__(config, **options)

    monkeypatch.setattr(cli, "Network", Recorded)
    code, out, _ = run(capsys, "run", "-n", "2", "--client-timeout", "250ms", "--evict-after", "3", "ping")
    assert code == 0 and out == "2 peers\n"
    assert (built[0].client_timeout, built[0].evict_after, built[0].refresh_interval) == (0.25, 3, 86400.0)
    code, out, _ = run(capsys, "run", "-n", "2", "ping")
    assert (built[1].client_timeout, built[1].evict_after) == (2.0, 0)  # the original's


def test_run_json_without_a_model_is_the_same_bytes_run_to_run(tmp_path):
    """On the wall clock with no model a result carries no clock readings (seconds, latency, timelines), so one seed
    gives the same bytes every run (docs/DESIGN.md §12)."""
    import subprocess
    import sys
    argv = [sys.executable, "-m", "p2pzmq", "run", "-n", "12", "--seed", "4", "--json", "net_status", "refresh_peers",
            "add_peers", "2"]
    first, second = (subprocess.run(argv, capture_output=True, cwd=tmp_path, timeout=60, check=True).stdout
                     for _ in range(2))
    assert first == second and b'"refreshed": 12' in first and b'"seconds"' not in first
