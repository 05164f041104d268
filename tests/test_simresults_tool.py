"""tools/simresults.py writes the results section from networks it builds on the virtual clock (slow: it builds
dozens of small networks)."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_quick_results_have_every_section_with_measured_rows(tmp_path):
    out = tmp_path / "RESULTS.md"
    done = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "simresults.py"), "--quick", "--out",
                           str(out)], capture_output=True, text=True, timeout=880)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    for heading in ("## Lookup latency against N, α and k", "## Loss", "## Churn", "## Against published figures"):
        assert heading in text
    rows = [line for line in text.splitlines() if line.startswith("| constant:50ms | 12 |")]
    assert len(rows) == len((8, 20)) * len((1, 2, 3, 5)) + 1  # every k and alpha, and the original's walk
    kademlia = [row.split(" | ") for row in rows if "kademlia" in row]
    assert all(float(cells[8]) >= 100 for cells in kademlia if cells[8] != "–")  # a round: 2 x 50 ms at least
    assert text.count("| 1 % |") == 2 and text.count("| 10 % |") == 2
