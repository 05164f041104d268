"""CURVE on the control socket and the worker link, and the loopback-only default."""
import subprocess
import sys

import pytest
from hangs import end_process

from p2pzmq import addresses, cli, security
from p2pzmq.errors import UsageError

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def serve_secured(tmp_path):
    """A supervisor (2 peers on 1 worker) whose control socket and worker link need the keys in tmp_path/keys."""
    keys = tmp_path / "keys"
    assert cli.main(["keys", "--curve-dir", str(keys)]) == 0
    process = subprocess.Popen([sys.executable, "-m", "p2pzmq", "serve", "-n", "2", "--workers", "1", "--curve-dir",
                                str(keys), "--control", "tcp://127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("Network created and supervisor listening on "), line
        yield line.rsplit(" ", 1)[1].strip(), keys
    finally:
        end_process(process)  # and its worker
        process.stdout.close()


def test_only_a_client_with_the_key_is_answered(serve_secured, tmp_path, capsys):
    endpoint, keys = serve_secured
    other = tmp_path / "other"
    security.generate(str(other))
    assert cli.main(["ctl", "--control", endpoint, "--timeout", "1", "ping"]) == 3
    assert cli.main(["ctl", "--control", endpoint, "--timeout", "1", "--curve-dir", str(other), "ping"]) == 3
    assert cli.main(["ctl", "--control", endpoint, "--timeout", "20", "--curve-dir", str(keys), "ping"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == "2 peers" and err.count("no supervisor answered") == 2
    assert cli.main(["ctl", "--control", endpoint, "--curve-dir", str(keys), "die"]) == 0


def test_keys_are_not_overwritten_and_bad_key_files_are_usage_errors(tmp_path):
    security.generate(str(tmp_path))
    assert (tmp_path / security.SECRET_FILE).stat().st_mode & 0o777 == 0o600
    with pytest.raises(UsageError):
        security.generate(str(tmp_path))
    (tmp_path / security.PUBLIC_FILE).write_text("short\n")
    with pytest.raises(UsageError):
        security.load(str(tmp_path))
    with pytest.raises(UsageError):
        security.load(str(tmp_path / "missing"))


@pytest.mark.parametrize("endpoint, loopback", [("tcp://127.0.0.1:5555", True), ("tcp://127.9.9.9:1", True),
                                                ("tcp://[::1]:5", True), ("inproc://x", True), ("ipc:///tmp/c", True),
                                                ("localhost", True),
                                                ("tcp://0.0.0.0:5555", False), ("tcp://*:5555", False),
                                                ("198.18.0.1", False), ("tcp://example.org:1", False)])
def test_loopback_detection(endpoint, loopback):
    assert addresses.is_loopback(endpoint) is loopback


def test_exposed_endpoints_need_keys_or_insecure(capsys, tmp_path):
    assert cli.main(["serve", "-n", "1", "--control", "tcp://0.0.0.0:0"]) == 2
    assert cli.main(["worker", "--host", "198.18.0.1"]) == 2
    assert "--insecure" in capsys.readouterr().err
    assert security.check_exposure("control socket", "tcp://0.0.0.0:1", None, True).startswith("WARNING")
    assert security.check_exposure("control socket", "tcp://0.0.0.0:1", security.generate(str(tmp_path)),
                                   False) is None


@pytest.mark.parametrize("endpoint, bind, parsed", [
    ("tcp://127.0.0.1:5555", False, ("tcp", "127.0.0.1", 5555)), ("tcp://[::1]:1", False, ("tcp", "[::1]", 1)),
    ("tcp://*:0", True, ("tcp", "*", 0)), ("ipc:///tmp/c.sock", False, ("ipc", "/tmp/c.sock", None)),
    ("tcp://127.0.0.1:0", False, None), ("tcp://*:5555", False, None), ("tcp://127.0.0.1:65536", True, None),
    ("tcp://127.0.0.1", True, None), ("tcp://:5555", True, None), ("tcp://127.0.0.1:+5", True, None),
    ("tcp://127.0.0.1:\u0665", True, None), ("inproc://x", True, None), ("ipc://", False, None),
    ("udp://127.0.0.1:1", False, None), ("127.0.0.1:5555", False, None), ("tcp://a b:1", True, None),
])
def test_typed_endpoints_are_checked_before_any_socket(endpoint, bind, parsed):
    if parsed is None:
        with pytest.raises(UsageError):
            addresses.parse_endpoint(endpoint, bind)
    else:
        assert addresses.parse_endpoint(endpoint, bind) == parsed
