"""tools/bench.py and tools/codec_bench.py run end to end in their tiny smoke modes, and bench.py writes its report
(the real figures come from full runs, never from a timed test)."""
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(120)

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools", "bench.py")


def test_bench_smoke_prints_ratios_and_writes_the_report(tmp_path):
    done = subprocess.run([sys.executable, BENCH, "--smoke", "--write", "--output", str(tmp_path)],
                          capture_output=True, text=True, timeout=100)
    assert done.returncode == 0, done.stderr
    assert "| 16 |" in done.stdout and "raw zmq.green rt/CPU s | ratio" in done.stdout
    report = (tmp_path / "BENCHMARKS.md").read_text()
    assert "Machine: " in report and "docs/bench.png" in report
    assert (tmp_path / "docs" / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    figures = json.loads((tmp_path / "docs" / "bench.json").read_text())
    assert min(figures["raw"]["green"]) > 0 and figures["rows"][0]["n"] == 16 and figures["rows"][0]["timeouts"] == 0
    assert {row["join_concurrency"] for row in figures["joins"]} == {1, 4, 16}


def test_codec_bench_quick_compares_both_codecs_in_one_run():
    tool = os.path.join(os.path.dirname(BENCH), "codec_bench.py")
    done = subprocess.run([sys.executable, tool, "--quick", "--repeat", "1"], capture_output=True, text=True,
                          timeout=100)
    assert done.returncode == 0, done.stderr
    rows = [line.split("|") for line in done.stdout.splitlines() if line.startswith("| FindClosest")
            or line.startswith("| PeersReply")]
    assert len(rows) == 2
    for row in rows:
        old, new, ratio = float(row[2]), float(row[3]), row[4].strip()
        # the tool divides the unrounded times, which the table prints to 2 decimals: allow that rounding
        low, high = (old - 0.005) / (new + 0.005), (old + 0.005) / (new - 0.005)
        assert old > 0 and new > 0 and ratio.endswith("x") and low - 0.05 <= float(ratio[:-1]) <= high + 0.05


def test_kademlia_bench_quick_measures_both_protocols(tmp_path):
    tool = os.path.join(os.path.dirname(BENCH), "kademlia_bench.py")
    figures_path = tmp_path / "figures.json"
    done = subprocess.run([sys.executable, tool, "--quick", "--json", str(figures_path)], capture_output=True,
                          text=True, timeout=100)
    assert done.returncode == 0, done.stderr
    assert [line.split("|")[1:3] for line in done.stdout.splitlines()[2:]] == [
        [" original ", " 30 "], [" kademlia ", " 30 "], [" original ", " 60 "], [" kademlia ", " 60 "]]
    figures = json.loads(figures_path.read_text())
    for run in figures:
        assert run["build_cpu"] > 0 and run["requests_per_join"] > 0 and run["timeouts"] == 0
        assert run["after_kill"]["alive"] == run["n"] - run["n"] // 5
        assert ("lookups" in run["status"]) == (run["protocol"] == "kademlia")
    assert all(run["status"]["lookups"] == 1.0 for run in figures if run["protocol"] == "kademlia")
