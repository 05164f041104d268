"""tools/bench.py and tools/codec_bench.py run end to end in their tiny smoke modes: every goal, ratio and table is
printed, and the report's generated blocks are written while the hand-written sections stay (the real figures
come from full runs, never from a timed test)."""
import json
import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(120)

TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools")
BENCH = os.path.join(TOOLS, "bench.py")
sys.path.insert(0, TOOLS)

import bench_profile  # noqa: E402
import bench_report  # noqa: E402

HAND_WRITTEN = "## Multi-process\n\nMeasured by hand with tools/scale.py.\n\n## Codec\n\nBy hand too.\n"
RATIO = re.compile(r"^\d+\.\d+x$")


def run_bench(*args):
    done = subprocess.run([sys.executable, BENCH, "--smoke", *args], capture_output=True, text=True, timeout=100)
    assert done.returncode == 0, done.stderr
    return done.stdout


def table(text, header_start):
    """The rows (lists of cells) of the Markdown table in ``text`` whose header begins with ``header_start``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows[0], rows[2:]


def ratio_cells(header, row):
    return [cell for name, cell in zip(header, row) if name == "ratio" or name == "against the old code"]


def test_bench_smoke_prints_every_goal_and_ratio_and_writes_its_block_keeping_the_rest(tmp_path):
    (tmp_path / "BENCHMARKS.md").write_text("# Benchmarks\n\nAn old generated part.\n\n" + HAND_WRITTEN)
    out = run_bench("--write", "--output", str(tmp_path))

    header, goals = table(out, "| goal |")
    assert len(goals) == 7 and all(goal[3] in ("met", "**not met**", "not measured") for goal in goals)
    assert [goal[3] for goal in goals].count("not measured") == 3  # no 1,000-peer build, 4,000 row or status
    _, raws = table(out, "| raw round trip")
    assert len(raws) == 5 and all(float(cell.replace(",", "")) > 0 for row in raws for cell in row[1:])
    for transport, raws_named in (("inproc", ["zmq.green inproc", "plain pyzmq inproc"]),
                                  ("tcp", ["zmq.green inproc", "plain pyzmq tcp", "zmq.green tcp"])):
        header, rows = table(out, f"| N | {transport} rounds |")
        assert [name for name in header if name.startswith("raw ")] == [f"raw {name} rt/CPU s" for name in raws_named]
        assert len(rows) == 1 and rows[0][-1] == "yes"  # the tables equal the oracle's
        assert len(ratio_cells(header, rows[0])) == len(raws_named) + 1
        assert all(RATIO.match(cell) for cell in ratio_cells(header, rows[0]))
    header, floors = table(out, "| N | protocol alone CPU s |")
    assert len(floors) == 1 and floors[0][0] == "16" and floors[0][-1] == "yes"  # the lean build = the oracle
    assert all(float(cell) >= 0 for cell in floors[0][1:4])  # printed to 0.01 s: the protocol of 16 peers may be 0.00
    assert RATIO.match(floors[0][header.index("p2pzmq / lean")])
    shares = [int(floors[0][header.index(name)].rstrip("%")) for name in
              ("protocol", "messages (lean − protocol)", "p2pzmq's layers (p2pzmq − lean)")]
    assert sum(shares) == pytest.approx(100, abs=2)
    header, rows = table(out, "| N | create s wall / CPU | CPU ms/peer |")
    assert [row[0] for row in rows] == ["16"] and all(RATIO.match(cell) for cell in ratio_cells(header, rows[0]))
    _, joins = table(out, "| N | join concurrency J |")
    assert [row[1] for row in joins] == ["1", "4", "16"]

    report = (tmp_path / "BENCHMARKS.md").read_text()
    begin, end = bench_report.BLOCKS["bench"]
    assert report.startswith("# Benchmarks\n\n" + begin) and report.count(begin) == 1
    assert "An old generated part" not in report and report.endswith(HAND_WRITTEN)
    block = report[report.index(begin):report.index(end)]
    for section in ("## Goals", "## Raw round trips", "## Sequential builds in one process",
                    "## Where a sequential build's CPU goes", "## The simulator against N",
                    "![time and memory against N](docs/bench.png)", "Machine: "):
        assert section in block
    assert (tmp_path / "docs" / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    figures = json.loads((tmp_path / "docs" / "bench.json").read_text())
    assert set(figures["raw"]) == {"green", "plain", "lean", "plain_tcp", "green_tcp"}
    assert [(build["transport"], build["oracle"]) for build in figures["builds"]] == [("inproc", True), ("tcp", True)]
    floor = figures["builds"][0]["floor"]
    assert floor["oracle"] and "floor" not in figures["builds"][1]
    assert 0 < floor["protocol_cpu_s"] <= floor["lean_cpu_s"] and figures["builds"][0]["cpu_s"] > 0
    assert figures["rows"][0]["timeouts"] == 0 and len(figures["load_average"]) == 2

    rewritten = tmp_path / "again"
    rewritten.mkdir()
    (rewritten / "BENCHMARKS.md").write_text(report)
    subprocess.run([sys.executable, BENCH, "--from-json", str(tmp_path / "docs" / "bench.json"), "--output",
                    str(rewritten)], check=True, timeout=60)
    assert (rewritten / "BENCHMARKS.md").read_text() == report  # the same figures give the same file


@pytest.mark.slow  # ten seconds of py-spy and strace: the tool's own smoke run, for CI's slow pass
@pytest.mark.skipif(bool(bench_profile.missing_tools()), reason="needs py-spy (.[test]) and strace")
def test_profile_smoke_samples_the_build_counts_syscalls_and_writes_its_own_block(tmp_path):
    (tmp_path / "BENCHMARKS.md").write_text("# Benchmarks\n\n" + HAND_WRITTEN)
    out = run_bench("--profile", "--write", "--output", str(tmp_path))

    header, shares = table(out, "| where the build's CPU goes")
    assert header[1:] == ["inproc, N = 64", "tcp, N = 16"]
    samples = shares.pop()
    assert samples[0] == "samples" and all(int(cell.replace(",", "")) > 0 for cell in samples[1:])
    assert sum(float(row[1].rstrip(" %")) for row in shares) == pytest.approx(100, abs=1)
    for transport in ("inproc", "tcp"):
        _, hottest = table(out, f"| {transport}: hottest lines")
        assert hottest and all(row[0].startswith("`") for row in hottest)
    header, syscalls = table(out, "| syscalls (`strace -c -f`)")
    assert len(header) == 6 and syscalls[0][0] == "all"
    assert all(float(cell) > 0 for cell in syscalls[0][1:])

    report = (tmp_path / "BENCHMARKS.md").read_text()
    begin, end = bench_report.BLOCKS["profile"]
    assert report.count(begin) == 1 and report.index(end) < report.index(HAND_WRITTEN)
    assert "## Profile of the build" in report and report.endswith(HAND_WRITTEN)
    figures = json.loads((tmp_path / "docs" / "profile.json").read_text())
    assert set(figures["sampled"]) == {"inproc", "tcp"} and len(figures["syscalls"]) == 5


def test_blocks_are_replaced_in_place_added_after_the_others_and_migrated_from_the_old_layout():
    bench, profile = bench_report.BLOCKS["bench"], bench_report.BLOCKS["profile"]
    legacy = "# Benchmarks\n\nold figures\n\n" + HAND_WRITTEN
    text = bench_report.replace_block(legacy, "bench", "new figures")
    assert text == f"# Benchmarks\n\n{bench[0]}\nnew figures\n{bench[1]}\n\n" + HAND_WRITTEN
    text = bench_report.replace_block(text, "profile", "a profile")
    assert text == (f"# Benchmarks\n\n{bench[0]}\nnew figures\n{bench[1]}\n\n{profile[0]}\na profile\n{profile[1]}\n"
                    "\n" + HAND_WRITTEN)
    again = bench_report.replace_block(bench_report.replace_block(text, "bench", "newer"), "profile", "another")
    assert again == text.replace("new figures", "newer").replace("a profile", "another")
    assert bench_report.replace_block("", "profile", "p") == f"# Benchmarks\n\n{profile[0]}\np\n{profile[1]}\n"


def test_codec_bench_quick_compares_both_codecs_in_one_run():
    tool = os.path.join(TOOLS, "codec_bench.py")
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


def test_clock_bench_quick_compares_each_wait_and_read_with_the_direct_call_in_one_run():
    tool = os.path.join(TOOLS, "clock_bench.py")
    done = subprocess.run([sys.executable, tool, "--quick", "--repeat", "1"], capture_output=True, text=True,
                          timeout=100)
    assert done.returncode == 0, done.stderr
    rows = {row[1].strip(): (float(row[2]), row[3].strip()) for row in
            (line.split("|") for line in done.stdout.splitlines()) if len(row) == 5 and row[2].strip()[:1].isdigit()}
    assert set(rows) == {"fresh gevent.Timeout", "REAL.wait", "FakeClock.wait", "time.monotonic()", "REAL.now()"}
    assert rows["fresh gevent.Timeout"][1] == rows["time.monotonic()"][1] == "1.00x"
    for name, base in (("REAL.wait", "fresh gevent.Timeout"), ("REAL.now()", "time.monotonic()")):
        cost, ratio = rows[name]
        assert cost > 0 and ratio.endswith("x")
        # the tool divides unrounded figures, printed rounded: allow that rounding
        assert abs(float(ratio[:-1]) - cost / rows[base][0]) < 0.1


@pytest.mark.slow  # four builds in subprocesses; the protocols themselves are tested in the default suite
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


@pytest.mark.slow  # a worker process and a bind-floor subprocess; restoring over workers is in the default suite
def test_snapshot_bench_quick_restores_and_saves_the_same_file(tmp_path):
    tool = os.path.join(TOOLS, "snapshot_bench.py")
    figures_path = tmp_path / "figures.json"
    done = subprocess.run([sys.executable, tool, "--quick", "--json", str(figures_path)], capture_output=True,
                          text=True, timeout=100)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[2].startswith("| 200 | 1 | ")
    (figures,) = json.loads(figures_path.read_text())
    assert figures["same_file"] is True and figures["n"] == 200
    # 200 peers of 160 entries: the header, 20 bytes of id and 4 of length each, 4 an entry, the checksum
    assert figures["bytes"] > 200 * (20 + 4 + 160 * 4) + 32
    assert figures["bind_floor"]["binds"] == 400 and figures["bind_floor"]["seconds"] > 0
    assert all(figures[key] > 0 for key in ("write_s", "read_s", "restore_s", "save_s"))
