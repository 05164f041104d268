"""Pictures that stay readable as N grows (p2pzmq/plot.py): a seeded choice of the edges drawn, the caption that says
what was left out, one peer's contacts and one route drawn over the rest, and the command's result fields.

Darkness is measured as the share of pixels whose luminance is below 0.25 (near black) in a 1000 x 1000 picture.
"""
import json
import random

import networkx as nx
import pytest
from matplotlib.image import imread
from matplotlib.text import Text

from p2pzmq import cli, control, plot
from p2pzmq.commands import parse_session

pytestmark = pytest.mark.timeout(120)


def dark_share(path) -> float:
    luminance = imread(str(path))[..., :3] @ [0.299, 0.587, 0.114]
    return float((luminance < 0.25).mean())


def _edges(count, seed=1):
    rng = random.Random(seed)
    ids = [str(rng.getrandbits(160)) for _ in range(60)]
    return list({(rng.choice(ids), rng.choice(ids)) for _ in range(count)})


def test_every_edge_is_drawn_up_to_the_budget_and_a_seeded_sample_above_it():
    edges = _edges(500)
    ordered = sorted(edges, key=lambda edge: (int(edge[0]), int(edge[1])))
    assert plot.choose_edges(edges, len(edges)) == ordered
    assert plot.choose_edges(edges, 10 ** 6) == ordered
    chosen = plot.choose_edges(edges, 100, seed=3)
    assert len(chosen) == 100 == len(set(chosen)) and set(chosen) <= set(edges)
    assert chosen == [edge for edge in ordered if edge in set(chosen)]  # in sorted order
    shuffled = list(edges)
    random.Random(9).shuffle(shuffled)
    assert plot.choose_edges(shuffled, 100, seed=3) == chosen  # the graph's order does not matter
    assert plot.choose_edges(edges, 100, seed=4) != chosen
    assert plot.choose_edges(edges, 0) == []


def test_the_sample_is_the_documented_draw():
    edges = _edges(300, seed=2)
    ordered = sorted(edges, key=lambda edge: (int(edge[0]), int(edge[1])))
    picked = sorted(random.Random("p2pzmq-plot:7").sample(range(len(ordered)), 50))
    assert plot.choose_edges(edges, 50, seed=7) == [ordered[index] for index in picked]


def test_captions_say_what_is_left_out():
    assert plot.caption(40, 40, 0) == "all 40 links between peers drawn"
    assert plot.caption(303533, 20000, 5) == \
        "showing 20,000 of 303,533 links between peers (a sample, seed 5, 283,533 left out)"
    long_id = "1234567890123456789"
    assert plot.caption(10, 10, 0, contacts=(long_id, 3), route=["7", "8", long_id]) == \
        "all 10 links between peers drawn; red: the 3 contacts of peer 1234567890…; " \
        "orange: the route from 7 to 1234567890…, 2 hops"
    assert plot.caption(10, 10, 0, route=["7", "8"]).endswith("the route from 7 to 8, 1 hop")


def _ring(count, contacts, seed=1):
    rng = random.Random(seed)
    ids = [str(rng.getrandbits(160)) for _ in range(count)]
    drawn = nx.DiGraph()
    drawn.add_nodes_from((peer, {"tgf": number}) for number, peer in enumerate(ids, 1))
    drawn.add_edges_from((a, a) for a in ids)  # self-loops, as every table holds its peer: never drawn, never counted
    drawn.add_edges_from((a, b) for a in ids for b in rng.sample(ids, contacts) if a != b)
    return drawn, ids


def test_the_picture_carries_the_caption_and_the_result_the_counts(tmp_path, monkeypatch):
    drawn, ids = _ring(200, 30)
    texts = []
    original = plot._save

    def keep(figure, path):
        texts.extend(text.get_text() for text in figure.findobj(Text))
        original(figure, path)

    monkeypatch.setattr(plot, "_save", keep)
    between = drawn.number_of_edges() - 200
    result = plot.draw_overlay(drawn, str(tmp_path / "a.png"), 600, 600, edges=1000, seed=2, peer=ids[5],
                               route=ids[:3])
    assert result["edges_drawn"] == 1000 and result["edges_left_out"] == between - 1000
    assert result["caption"] == plot.caption(between, 1000, 2, (ids[5], drawn.out_degree(ids[5]) - 1), ids[:3])
    assert result["caption"].replace("; ", "\n") in texts
    assert plot.draw_overlay(drawn, str(tmp_path / "b.png"), 600, 600)["edges_left_out"] == 0


def test_a_peer_or_route_no_peer_has_is_refused(tmp_path):
    drawn, ids = _ring(70, 5)
    with pytest.raises(plot.UsageError, match="no peer has id 42"):
        plot.draw_overlay(drawn, str(tmp_path / "a.png"), peer="42")
    with pytest.raises(plot.UsageError, match="no peer has id 43"):
        plot.draw_overlay(drawn, str(tmp_path / "a.png"), route=[ids[0], "43"])
    assert not (tmp_path / "a.png").exists()


def test_two_thousand_peers_of_150_contacts_are_no_black_disc(tmp_path):
    """2,000 peers holding 150 uniformly drawn contacts each (299,855 links): the hardest case for a ring, every
    chord crossing the middle. Drawn whole, as before (measured with the drawing this replaced, same picture),
    48 % of its pixels were near black; a 20,000-link sample at its opacity leaves 0.6 %. The bound, 3 %, is five
    times that and a sixteenth of the black disc: renderers may differ, a black disc cannot pass."""
    drawn, _ = _ring(2000, 150)
    result = plot.draw_overlay(drawn, str(tmp_path / "big.png"))
    assert result["edges_drawn"] == plot.EDGE_BUDGET
    assert dark_share(tmp_path / "big.png") < 0.03


def test_output_png_takes_edges_seed_peer_and_route(make_network, tmp_path):
    net = make_network(10, seed=4)
    ids = [peer["id"] for peer in net.net_status()["peers"]]
    route = net.lookup(ids[0], ids[-1])["route"]["path"]
    request = {"cmd": "output_png", "path": str(tmp_path / "n.png"), "edges": 12, "seed": 1, "peer": ids[2],
               "route": [ids[0], ids[-1]]}
    reply, _ = control.handle(net, json.dumps(request).encode())
    assert reply["ok"], reply
    result = reply["result"]
    links = sum(len(table) for table in net.tables()) - 10
    assert (result["edges_drawn"], result["edges_left_out"], result["seed"]) == (12, links - 12, 1)
    assert (result["peer"], result["route"]) == (ids[2], route)
    assert result["caption"].startswith(f"showing 12 of {links} links between peers (a sample, seed 1, ")
    for bad, says in (({"route": [ids[0]]}, "route must be two peer ids"), ({"edges": -1}, "edges must be at least"),
                      ({"peer": "x"}, "peer must be a peer id"), ({"peer": "42"}, "no peer has id 42")):
        reply, _ = control.handle(net, json.dumps({**request, **bad}).encode())
        assert not reply["ok"] and says in reply["error"], reply


def test_the_command_line_words_of_output_png():
    [(name, arguments)] = parse_session(["output_png", "a.png", "edges=5", "route=1,2", "peer=3", "seed=9"])
    assert name == "output_png" and (arguments["edges"], arguments["route"], arguments["peer"],
                                     arguments["seed"]) == (5, ["1", "2"], "3", 9)
    assert parse_session(["output_png", "a.png"])[0][1]["edges"] == plot.EDGE_BUDGET


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_thousand_kademlia_peers_are_no_black_disc(make_network, tmp_path):
    """The picture of issue's example, built for real: 2,000 Kademlia peers (seed 1: 303,533 table entries, of
    which 301,533 between two peers). Drawn whole with the drawing this replaced, 8.1 % of its pixels were near
    black (its rim a black band, its middle grey); the 20,000-link sample leaves 0.9 %. The bound, 3 %, is under
    half the old picture's, and room for other renderers."""
    net = make_network(2000, seed=1, protocol="kademlia")
    result = net.output_png(str(tmp_path / "k.png"))
    assert (result["edges"], result["edges_drawn"], result["edges_left_out"]) == (303533, 20000, 281533)
    assert dark_share(tmp_path / "k.png") < 0.03


def test_the_console_says_what_was_left_out(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "-n", "6", "--seed", "2", "output_png", "a.png", "edges=3", "width=200",
                     "height=200", "output_png", "b.png", "width=200", "height=200"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"Drawing the network to {tmp_path / 'a.png'}"
    assert lines[1].startswith("showing 3 of ") and lines[1].endswith(" left out)")
    assert lines[2:] == [f"Drawing the network to {tmp_path / 'b.png'}"]  # nothing left out: nothing more said


def test_the_plot_subcommand_says_what_was_left_out(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "-n", "6", "--seed", "3", "output_tgf", "n.tgf"]) == 0
    monkeypatch.setattr(plot, "EDGE_BUDGET", 4)
    capsys.readouterr()
    assert cli.main(["plot", "n.tgf", "-o", "n.png", "--width", "200", "--height", "200"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"Drawing 6 peers to {tmp_path / 'n.png'}"
    assert out[1].startswith("showing 4 of ") and len(out) == 2
