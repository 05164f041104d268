"""The network model's options on the command line: checked before anything is built, refused where the combination
is not supported (docs/DESIGN.md §12), and ``--latency none`` the same bytes as no option at all."""
import pytest

from p2pzmq import cli

pytestmark = pytest.mark.timeout(60)


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("action", ["run", "serve"])
@pytest.mark.parametrize("options, says", [
    (["--loss", "0.01"], "--loss 0.01: needs --clock real until client timeouts run on the virtual clock"),
    (["--latency", "constant:5ms", "--workers", "2", "--clock", "virtual"], "--clock virtual: not available over"),
    (["--latency", "constant:50"], "not a duration with a unit"),
    (["--latency", "uniform:5ms:1ms"], "LO must not exceed HI"),
    (["--latency", "lognormal:nan:1"], "not a duration"),
    (["--latency", "matrix:/nonexistent/sites.csv"], "cannot read it"),
    (["--latency", "teleport"], "unknown model"),
    (["--jitter", "1"], "--jitter must be"), (["--loss", "-0.1"], "--loss must be"), (["--loss", "inf"], "--loss"),
    (["--clock", "sundial"], "unknown clock")])
def test_models_are_refused_with_exit_2_before_anything_is_built(capsys, tmp_path, monkeypatch, action, options,
                                                                 says):
    monkeypatch.chdir(tmp_path)
    # serve would print its listening line and wait; with a refusal it neither binds nor builds
    code, out, err = run(capsys, action, "-n", "3", "--seed", "1", "--control", "ipc://" + str(tmp_path / "c"),
                         *options) if action == "serve" else run(capsys, action, "-n", "3", "--seed", "1", *options)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and says in err and err.startswith("p2p-network: usage error: ")
    assert list(tmp_path.iterdir()) == []


def test_latency_none_and_the_real_clock_are_todays_bytes(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    outputs = []
    for options in ([], ["--latency", "none"], ["--latency", "none", "--jitter", "0", "--loss", "0.0",
                                                 "--clock", "real"]):
        code, out, err = run(capsys, "run", "-n", "6", "--seed", "5", *options)
        assert code == 0, err
        outputs.append((out, (tmp_path / "network.tgf").read_bytes()))
    assert outputs[0] == outputs[1] == outputs[2]
