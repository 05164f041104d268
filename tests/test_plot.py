"""Pictures: PNGs of the requested size that are not blank, the plot subcommand, and the hint without matplotlib."""
import json
import sys
import warnings

import networkx as nx
import pytest
from matplotlib.image import imread
from matplotlib.text import Text

from p2pzmq import cli, control, plot

pytestmark = pytest.mark.timeout(90)


def assert_picture(path, width, height):
    pixels = imread(str(path))
    assert pixels.shape[:2] == (height, width)
    assert pixels[..., :3].std() > 0.05, "blank picture"


def test_output_png_has_the_requested_size_and_is_not_blank(make_network, tmp_path):
    net = make_network(8, seed=1)
    result = net.output_png(str(tmp_path / "net.png"), 640, 480)
    assert result == {"path": str(tmp_path / "net.png"), "width": 640, "height": 480, "nodes": 8,
                      "edges": sum(len(table) for table in net.tables()), "edges_drawn": 40, "edges_left_out": 0,
                      "caption": "all 40 links between peers drawn", "seed": 0}
    assert_picture(tmp_path / "net.png", 640, 480)
    reply, _ = control.handle(net, json.dumps({"cmd": "output_png", "path": str(tmp_path / "c.png")}).encode())
    assert reply["ok"] and reply["result"]["width"] == 1000
    assert_picture(tmp_path / "c.png", 1000, 1000)


def test_a_large_overlay_uses_the_id_ring(tmp_path):
    drawn = nx.DiGraph()
    ids = [(index * 7919 + 1) * 2 ** 150 for index in range(plot.SMALL + 36)]
    for number, peer_id in enumerate(ids, start=1):
        drawn.add_node(str(peer_id), tgf=number)
    drawn.add_edges_from((str(a), str(b)) for a in ids for b in ids[:5])
    plot.draw_overlay(drawn, str(tmp_path / "big.png"), 300, 200)
    assert_picture(tmp_path / "big.png", 300, 200)


def test_plot_subcommand_draws_tgf_and_graphml(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "-n", "6", "--seed", "3", "output_tgf", "n.tgf",
                     "output_graph", "n.graphml", "format=graphml"]) == 0
    for source in ("n.tgf", "n.graphml"):
        assert cli.main(["plot", source, "-o", f"{source}.png", "--width", "400", "--height", "300"]) == 0
        assert_picture(tmp_path / f"{source}.png", 400, 300)
    out = capsys.readouterr().out.splitlines()
    assert out[-2:] == [f"Drawing 6 peers to {tmp_path / name}" for name in ("n.tgf.png", "n.graphml.png")]


def test_plot_time_lapse_with_and_without_status(capsys, tmp_path, monkeypatch):
    for status in ("true", "false"):
        directory = tmp_path / status
        directory.mkdir()
        monkeypatch.chdir(directory)
        assert cli.main(["run", "-n", "8", "--seed", "2", "time_lapse", "2", f"status={status}"]) == 0
        assert (directory / "time-lapse.json").exists() == (status == "true")
        assert cli.main(["plot", "--time-lapse", str(directory), "-o", "lapse.png"]) == 0
        assert_picture(directory / "lapse.png", 1000, 600)
    out = capsys.readouterr().out.splitlines()
    for status in ("true", "false"):  # two refreshes, charted from time-lapse.json (with step 0) or from the files
        assert out.count(f"Drawing a 2 step time-lapse to {tmp_path / status / 'lapse.png'}") == 1
    summary = json.loads((tmp_path / "true" / "time-lapse.json").read_text())
    assert [step["step"] for step in summary["steps"]] == [0, 1, 2]
    assert all(0 <= step["connectivity"] <= 100 and step["mean_table_size"] >= 1 for step in summary["steps"])


@pytest.mark.parametrize("argv", [["plot", "-o", "x.png"], ["plot", "a.tgf", "--time-lapse", ".", "-o", "x.png"],
                                  ["plot", "missing.tgf", "-o", "x.png"], ["plot", "--time-lapse", ".", "-o", "x.png"]])
def test_plot_usage_errors(capsys, tmp_path, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_without_matplotlib_a_one_line_hint_and_exit_1(capsys, make_network, tmp_path, monkeypatch):
    net = make_network(3)
    net.output_tgf(str(tmp_path / "n.tgf"))
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    assert cli.main(["plot", str(tmp_path / "n.tgf"), "-o", str(tmp_path / "n.png")]) == 1
    err = capsys.readouterr().err
    assert err == "p2p-network: plotting needs matplotlib: pip install 'p2pzmq[plot]'\n"
    reply, _ = control.handle(net, json.dumps({"cmd": "output_png", "path": str(tmp_path / "n.png")}).encode())
    assert reply == {"ok": False, "error": plot.INSTALL_HINT}
    assert not (tmp_path / "n.png").exists()


@pytest.mark.parametrize("width, height", [(100, 100), (400, 300), (2000, 150), (150, 1200)])
def test_nothing_is_cut_off_at_any_allowed_size(make_network, tmp_path, monkeypatch, width, height):
    """Every title, tick label and colour-bar label lies inside the picture, and no layout warning is printed."""
    saved = []
    original = plot._save

    def inspect(figure, path):
        renderer = figure.canvas.get_renderer()
        drawn = figure.get_tightbbox(renderer)  # everything drawn, in inches
        figure_width, figure_height = figure.get_size_inches()
        assert drawn.x0 >= 0 and drawn.y0 >= 0 and drawn.x1 <= figure_width and drawn.y1 <= figure_height, drawn
        assert [text for text in figure.findobj(Text) if text.get_text()], "no text drawn"
        saved.append(path)
        original(figure, path)

    monkeypatch.setattr(plot, "_save", inspect)
    net = make_network(8, seed=1)
    big = nx.DiGraph()
    big.add_nodes_from((str(index * 2 ** 150 + 1), {"tgf": index + 1}) for index in range(plot.SMALL + 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net.output_png(str(tmp_path / "small.png"), width, height)
        plot.draw_overlay(big, str(tmp_path / "big.png"), width, height)
        net.time_lapse(1, str(tmp_path), status=True)
        plot.draw_time_lapse(str(tmp_path), str(tmp_path / "lapse.png"), width, height)
    assert len(saved) == 3
    for name in ("small.png", "big.png", "lapse.png"):
        assert_picture(tmp_path / name, width, height)
