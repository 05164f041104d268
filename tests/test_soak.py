"""CI's soak: ``tools/soak.py --seconds 60`` (200 peers under churn, status and snapshots) must hold every
invariant it checks: tables, greenlets, file descriptors, memory, a clean shutdown."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.timeout(300)
def test_soak_for_60_seconds_holds_every_invariant():
    run = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "soak.py"), "--seconds", "60", "--json"],
                         capture_output=True, text=True, timeout=280)
    assert run.stdout, run.stderr[-2000:]
    report = json.loads(run.stdout.splitlines()[-1])
    assert run.returncode == 0 and report["failures"] == [], (report, run.stderr[-2000:])
    assert report["peers"] == 200 and report["status_rounds"] >= 3
    churn = report["churn"]
    assert churn["joined"] > 0 and churn["killed"] > 0 and churn["left"] > 0
    assert report["fds"]["after_die"] <= report["fds"]["before"]
