"""Each command is declared once (``p2pzmq.commands.COMMANDS``) and every way in comes from that declaration: the
control socket, the web API, ``ctl``, ``run``'s session and the Python API take the same arguments and refuse the
same bad input with the same words. Parametrised over the table, so a command declared later is covered too."""
import json

import pytest

from p2pzmq import Network, cli, commands, control
from test_web import http, resolver, served  # noqa: F401 (fixtures)
from p2pzmq.timeline import untimed

pytestmark = pytest.mark.timeout(60)

#: A value of each type that no parameter of that type takes.
WRONG = {int: "x", float: "x", bool: "x", str: "\0", list: ["\0"]}
#: Values tried, in order, until one is taken: a well-formed value for a parameter (what it names need not exist).
CANDIDATES = {int: [1, 0], float: [1.0], bool: [True], list: [["1", "2"], ["1"]],
              str: ["1", "x", "tcp://127.0.0.1:1"]}


def well_formed(command: commands.Command, param: commands.Param):
    for value in ([] if param.default is None else [param.default]) + CANDIDATES[param.type]:
        try:
            return param.value(command.name, value)
        except commands.UsageError:
            pass
    raise AssertionError(f"no well-formed value for {command.name} {param.name}: add one to CANDIDATES")


def bad_inputs(command: commands.Command) -> list[dict]:
    """Arguments that the declaration refuses: a required one missing, an unknown one, and each parameter given a
    value it does not take (the required ones well formed, so that the refusal is the bad value's)."""
    required = {param.name: well_formed(command, param) for param in command.params if param.required}
    cases = [{**required, "bogus": 1}]
    if required:
        cases.append({})
    for param in command.params:
        cases.append({**required, param.name: WRONG[param.type]})
    return cases


def refusal(command: commands.Command, arguments: dict) -> str | None:
    try:
        command.arguments(arguments)
    except commands.UsageError as exc:
        return str(exc)
    return None


def words(arguments: dict) -> list[str]:
    """The command-line words of ``arguments``, each as key=value."""
    def text(value):
        if isinstance(value, bool):
            return str(value).lower()
        return ",".join(value) if isinstance(value, list) else str(value)
    return [f"{key}={text(value)}" for key, value in arguments.items()]


def test_every_command_has_its_method_and_the_method_its_declaration():
    for command in commands.COMMANDS.values():
        method = getattr(Network, command.attribute)
        assert method.command is command and method.__doc__.startswith(f"``{command.usage()}``"), command.name


@pytest.mark.parametrize("name", list(commands.COMMANDS))
def test_every_way_in_refuses_bad_input_with_the_same_words(served, capsys, name):  # noqa: F811
    command = commands.COMMANDS[name]
    network, view = served(n=2)
    checked = 0
    for arguments in bad_inputs(command):
        expected = refusal(command, arguments)
        if expected is None:  # a value this type may take after all: nothing to refuse
            continue
        reply, stop = control.handle(network, json.dumps({"cmd": name, **arguments}).encode())
        assert reply == {"ok": False, "error": expected} and not stop, arguments
        assert http(view, "POST", f"/api/{name}", arguments) == (400, reply), arguments
        with pytest.raises(commands.UsageError) as api:
            getattr(network, command.attribute)(**arguments)
        assert str(api.value) == expected, arguments
        ways = [["ctl", "--control", "tcp://127.0.0.1:1", "--timeout", "1", name]]
        if command.session:
            ways.append(["run", "-n", "1", name])
        for way in ways:
            assert cli.main([*way, *words(arguments)]) == cli.EXIT_USAGE, (way, arguments)
            assert capsys.readouterr().err == f"p2p-network: usage error: {expected}\n", (way, arguments)
        checked += 1
    assert checked >= 1 + len(command.params) and len(network.peers) == 2 and not network.closed  # nothing ran


@pytest.mark.parametrize("name", [name for name, command in commands.COMMANDS.items() if command.quick
                                  and name not in ("die", "progress", "cancel")] + ["peers", "net_status"])
def test_the_same_answer_from_every_way_in(served, name):  # noqa: F811
    network, view = served(n=3)
    command = commands.COMMANDS[name]
    direct = getattr(network, command.attribute)()
    reply, _ = control.handle(network, json.dumps({"cmd": name}).encode())
    status, over_http = http(view, "POST", f"/api/{name}", {})
    assert status == 200
    for answer in (reply, over_http):
        assert answer["ok"] and answer["result"].keys() == direct.keys()
        if name != "stats":  # its figures (CPU seconds, memory, counters) move between two calls
            assert untimed(answer["result"]) == untimed(direct)  # two calls, two readings of the clock


def test_the_api_takes_ids_as_ints_too(make_network):
    network = make_network(3)
    a, b = network.peers[0].id, network.peers[-1].id
    assert untimed(network.lookup(a, b)) == untimed(network.lookup(str(a), str(b)))
    with pytest.raises(commands.UsageError, match="from must be a peer id"):
        network.lookup(-1, b)
    with pytest.raises(commands.UsageError, match="lookup takes 2 arguments, not 3"):
        network.lookup(a, b, 1)
    with pytest.raises(commands.UsageError, match="from is given twice"):
        network.lookup(a, **{"from": a, "id": b})
