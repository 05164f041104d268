"""The project's front door: README commands, CI script, launcher and exported names stay in step."""
import ast
import configparser
import fnmatch
import os
import re
import subprocess
import sys

import pytest

import p2pzmq

pytestmark = pytest.mark.timeout(60)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme_commands():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    block = re.search(r"```sh\n(.*?)```", text, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_readme_opens_with_exactly_two_setup_commands():
    install_and_run, install_and_test = readme_commands()
    assert "pip install" in install_and_run and "p2p-network run -n 16" in install_and_run
    assert "'.[test]'" in install_and_test and "pytest" in install_and_test


def test_ci_runs_the_readme_test_command_verbatim():
    ci = open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8").read()
    assert ci.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in ci
    assert readme_commands()[1] in ci.splitlines()


def test_ci_runs_every_marked_test_that_the_default_run_deselects():
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, "setup.cfg"))
    markers = {line.split(":")[0].strip() for line in cfg["tool:pytest"]["markers"].strip().splitlines()}
    assert markers == {"slow", "soak", "heavy", "browser"}
    assert '-m "not slow and not soak and not heavy and not browser"' in cfg["tool:pytest"]["addopts"]
    ci = open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8").read().splitlines()
    after = ci[ci.index(readme_commands()[1]) + 1:]
    assert 'python -m pytest -q -m "slow or soak"' in after and "python -m pytest -q -m heavy" in after
    assert "python -m pytest -q -m browser" in after


def test_the_web_views_files_are_package_data():
    """Every file the page loads, and every vendored licence, is declared so that a pip install carries it."""
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, "setup.cfg"))
    patterns = [p.strip() for p in cfg["options.package_data"]["p2pzmq.web"].split(",")]
    static = os.path.join(ROOT, "p2pzmq", "web")
    shipped = [os.path.relpath(os.path.join(d, f), static) for d, _, fs in os.walk(os.path.join(static, "static"))
               for f in fs]
    assert any(name.startswith("static/vendor/LICENSE.sigma") for name in shipped)
    assert all(any(fnmatch.fnmatch(name, pattern) for pattern in patterns) for name in shipped), shipped


def test_setup_cfg_declares_the_console_script_and_extras():
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, "setup.cfg"))
    assert "p2p-network = p2pzmq.cli:main" in cfg["options.entry_points"]["console_scripts"]
    required = {re.split(r"[<>=!~\[ ]", req)[0] for req in cfg["options"]["install_requires"].split()}
    # exactly what the package imports beyond the standard library (pyzmq is imported as zmq)
    assert {"zmq" if name == "pyzmq" else name for name in required} == third_party_imports()
    assert "msgpack" in cfg["options.extras_require"]["test"]  # tools/codec_bench.py, smoke-run by the tests
    assert "pytest-timeout" in cfg["options.extras_require"]["test"]
    assert "pytest-xdist" in cfg["options.extras_require"]["test"]  # the README's test command says -n auto


def third_party_imports() -> set[str]:
    """The top-level modules the package imports that are neither its own nor the standard library's, minus the
    optional ones each extra brings (matplotlib: plot) and greenlet, which gevent requires."""
    found = set()
    for directory, _, names in os.walk(os.path.join(ROOT, "p2pzmq")):
        for name in names:
            if name.endswith(".py"):
                with open(os.path.join(directory, name)) as source:
                    tree = ast.parse(source.read())
                for node in ast.walk(tree):
                    if isinstance(node, ast.Import):
                        found.update(alias.name.partition(".")[0] for alias in node.names)
                    elif isinstance(node, ast.ImportFrom) and node.level == 0:
                        found.add(node.module.partition(".")[0])
    return found - set(sys.stdlib_module_names) - {"p2pzmq", "__future__", "matplotlib", "greenlet"}


def test_bin_launcher_is_the_cli():
    out = subprocess.run([sys.executable, os.path.join(ROOT, "bin", "p2p-network"), "--version"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.strip() == f"p2p-network {p2pzmq.__version__}"


def test_exported_names():
    assert sorted(p2pzmq.__all__) == sorted(name for name in p2pzmq.__all__ if hasattr(p2pzmq, name))
    assert {"Network", "Config", "ControlClient", "P2PError"} <= set(p2pzmq.__all__)
