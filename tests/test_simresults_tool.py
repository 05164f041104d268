"""tools/simresults.py writes the results section from the points it measures on the virtual clock and caches:
its plan, its fit and its writer on their own (fast), and a whole quick run resumed from its cache (slow: it
builds dozens of small networks)."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(ROOT, "tools", "simresults.py")
pytestmark = pytest.mark.timeout(900)


def tool():
    spec = importlib.util.spec_from_file_location("simresults", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(30)
def test_fit_recovers_a_line_and_refuses_one_x():
    simresults = tool()
    a, b = 1.25, 0.375
    xs = [10.0, 11.0, 12.3, 13.3]
    got = simresults.fit(xs, [a + b * x for x in xs])
    assert got == pytest.approx((a, b))
    assert simresults.fit([10.0, 10.0], [1.0, 2.0]) is None


@pytest.mark.timeout(30)
def test_a_point_not_measured_is_shown_as_such_never_as_a_figure(tmp_path):
    simresults = tool()
    out = tmp_path / "RESULTS.md"
    cache = tmp_path / "cache.json"
    assert simresults.main(["--sizes", "1000", "--out", str(out), "--cache", str(cache)]) == 0  # no --write: no run
    text = out.read_text()
    assert not cache.exists()
    rows = [line for line in text.splitlines() if line.startswith("| 1,000 | 10.0 | kademlia |")]
    assert len(rows) == len(simresults.MODELS) * len(simresults.KS) * len(simresults.ALPHAS)
    assert all("not measured yet" in row for row in rows)
    assert "points of the plan not measured yet" in text


@pytest.mark.timeout(30)
def test_the_plan_runs_small_sizes_first_and_keys_are_stable():
    simresults = tool()
    points = simresults.plan(simresults.parse(["--sizes", "1000", "2000", "5000", "--full-grid-up-to", "2000"]))
    sizes = [point["n"] for point in points if point["kind"] in ("kademlia", "original")]
    assert sizes == sorted(sizes)
    assert not any(point["k"] != 20 for point in points if point["kind"] == "kademlia" and point["n"] > 2000)
    keys = [simresults.key_of(point) for point in points]
    assert len(set(keys)) == len(keys)
    assert all(simresults.key_of(json.loads(key)) == key for key in keys)


@pytest.mark.slow
def test_quick_run_writes_every_section_and_resumes_from_its_cache(tmp_path):
    out, again, cache = tmp_path / "RESULTS.md", tmp_path / "again.md", tmp_path / "cache.json"
    done = subprocess.run([sys.executable, TOOL, "--quick", "--out", str(out), "--cache", str(cache)],
                          capture_output=True, text=True, timeout=880)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    for heading in ("## Kademlia lookup latency against N, α and k", "## Rounds against log₂ N", "## Loss",
                    "## Churn", "## Against published figures", "## What each point cost"):
        assert heading in text
    simresults = tool()
    rows = [line for line in text.splitlines() if line.startswith("| 12 | 3.6 |")]
    kademlia = [row for row in rows if "kademlia" in row]
    assert len(kademlia) == len(simresults.MODELS) * len(simresults.KS) * len(simresults.ALPHAS)
    assert len(rows) - len(kademlia) == len(simresults.MODELS)  # the original's walk beside each model
    constant = text.split("### `constant:50ms`")[1].split("### `lognormal")[0]
    medians = [row.split(" | ")[9] for row in constant.splitlines() if " | kademlia | " in row]
    round_trip = 2 * 50  # constant:50ms there and back, in ms: no lookup that leaves its source is faster
    assert medians and all(float(p50) >= round_trip for p50 in medians)
    assert "not measured yet" not in text
    measured = json.loads(cache.read_text())["points"]
    assert measured and all(point["cpu_s"] > 0 and len(point["load"]) == 3 for point in measured.values())
    resumed = subprocess.run([sys.executable, TOOL, "--quick", "--out", str(again), "--cache", str(cache)],
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert "0 CPU s in new points" in resumed.stderr
    assert again.read_text() == text
