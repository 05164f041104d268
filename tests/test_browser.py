"""The web view in a real browser (marker ``browser``; ``.ci/run`` installs Debian's chromium first): the page loads
against a served network without console errors, draws the graph (pixels of a screenshot, not the DOM), redraws it
within 2 s of ``add_peers 10`` sent over the control socket, and runs a command from its controls."""
import contextlib
import os
import shutil
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

web_view = pytest.importorskip("web_view")
pytest.importorskip("playwright")
if not shutil.which("chromium"):
    pytest.skip("needs Debian's chromium (apt-get install -y chromium)", allow_module_level=True)


@contextlib.contextmanager
def opened(*extra):
    """A page open on ``serve -n 32 --seed 1 EXTRA...``, its graph drawn."""
    served = web_view.Served(32, 1, *extra).ready()
    try:
        with web_view.browser() as page:
            page.goto(served.url)
            page.wait_for_function("() => document.querySelector('#legend').textContent.includes('32 peers')")
            yield served, page
    finally:
        served.close()


@pytest.fixture
def page_on_network():
    with opened() as both:
        yield both


def reply_of(page, text: str) -> str:
    """Wait until the controls' reply box shows ``text``; its whole text."""
    page.wait_for_function("(text) => document.querySelector('#reply').textContent.includes(text)", arg=text)
    return page.inner_text("#reply")


def test_partition_and_heal_run_from_the_page_under_a_model():
    """The partition row's buttons run partition groups=K, heal and advance through the command declarations: the
    page colours the peers by group when the partition event comes, and says so."""
    with opened("--latency", "constant:1ms") as (served, page):
        page.fill("#partition-k", "3")
        page.click("button[data-cmd=partition]")
        groups = __import__("json").loads(reply_of(page, "groups"))["groups"]
        assert sorted(groups) == [10, 11, 11]
        page.wait_for_function("() => document.querySelector('#legend').textContent.includes('(3 groups')")
        assert page.input_value("#colour") == "group"
        assert "partition: " in page.inner_text("#log")
        page.fill("#advance-s", "5")
        page.click("button[data-cmd=advance]")
        assert __import__("json").loads(reply_of(page, "now"))["now"] >= 5
        page.click("button[data-cmd=heal]")
        assert '"healed": true' in reply_of(page, "healed")
        page.wait_for_function("() => document.querySelector('#log').textContent.includes('partition healed')")
        assert page.problems == []


def test_partition_without_a_model_is_refused_as_the_control_socket_refuses_it(page_on_network):
    served, page = page_on_network
    page.click("button[data-cmd=partition]")
    page.wait_for_function("() => document.querySelector('#reply').className === 'error'")
    assert page.inner_text("#reply") == served.ask("partition", groups=2)["error"]


def test_the_page_draws_the_overlay_and_follows_it(page_on_network):
    served, page = page_on_network
    drawn, before = web_view.drawn_pixels(page)
    assert drawn > 2000, "the graph area is blank"
    sent = time.monotonic()
    assert served.ask("add_peers", n=10)["ok"]
    while web_view.drawn_pixels(page)[1] == before:
        assert time.monotonic() - sent < 2.0, "the picture did not change within 2 s of add_peers 10"
        page.wait_for_timeout(50)
    page.wait_for_function("() => document.querySelector('#legend').textContent.includes('42 peers')")
    assert page.problems == []


def test_a_control_runs_its_command_and_shows_the_reply(page_on_network):
    served, page = page_on_network
    page.fill("#add-n", "3")
    page.click("button[data-cmd=add_peers]")
    page.wait_for_function("() => document.querySelector('#reply').textContent.includes('\"added\"')")
    assert served.ask("ping")["result"]["n"] == 35
    page.fill("#add-n", "0")  # refused by the command's own check, as the control socket refuses it
    page.click("button[data-cmd=add_peers]")
    page.wait_for_function("() => document.querySelector('#reply').className === 'error'")
    assert "at least 1" in page.inner_text("#reply")
    # Chromium logs every 4xx response; the refusal's 400 is the one expected
    assert page.problems == ["Failed to load resource: the server responded with a status of 400 (Bad Request)"]


def test_a_clicked_peer_shows_its_counts_and_a_lookup_from_it_is_drawn(page_on_network):
    served, page = page_on_network
    peer = served.ask("peers")["result"]["peers"][5]["id"]
    box = page.locator("#graph").bounding_box()
    where = page.evaluate("(id) => window.P2PPage.where(id)", peer)
    reddish = web_view.red_pixels(page)
    page.mouse.click(box["x"] + where["x"], box["y"] + where["y"])
    page.wait_for_function("() => document.querySelector('#peer-info').textContent.includes('served')")
    info = page.inner_text("#peer-info")
    assert f"id {peer}" in info and "joins 1" in info and "failed" in info
    deadline = time.monotonic() + 2  # its contacts drawn over the graph in red, as output_png peer=ID draws them
    while web_view.red_pixels(page) < reddish + 200:
        assert time.monotonic() < deadline, "the peer's contacts were not drawn"
        page.wait_for_timeout(50)
    before = web_view.amber_pixels(page)
    page.click("#lookup")
    page.wait_for_function("() => document.querySelector('#lookup-info').textContent.includes('path')")
    route = __import__("json").loads(page.inner_text("#lookup-info"))["route"]
    assert route["path"][0] == peer
    if len(route["path"]) > 1:  # the route is drawn over the graph in amber
        deadline = time.monotonic() + 2
        while web_view.amber_pixels(page) <= before:
            assert time.monotonic() < deadline, "the lookup's path was not drawn"
            page.wait_for_timeout(50)
    assert page.problems == []


# pixels of a chart's canvas in the page's series colour (#4fc3f7): bars or a line, not the labels' grey
PAINTED = "(selector) => { const c = document.querySelector(selector); " \
          "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0; " \
          "for (let i = 0; i < d.length; i += 4) n += d[i] < 130 && d[i + 1] > 150 && d[i + 2] > 200; return n; }"


def test_every_chart_draws_what_it_charts(page_on_network):
    """Table sizes from the graph read, requests per second from stats, joins and departures from the event feed,
    connectivity and the hop histogram from a net_status; the latency chart stays hidden without a latency
    model."""
    served, page = page_on_network
    assert served.ask("add_peers", n=4)["ok"] and served.ask("kill_peers", count=1)["ok"]
    page.click("button[data-cmd=net_status]")
    page.wait_for_function("() => document.querySelector('#hops-summary').textContent.includes('reached')",
                           timeout=30_000)
    for chart in ("tables", "requests", "churn", "connectivity", "hops"):
        page.wait_for_function(f"() => ({PAINTED})('#chart-{chart}') > 5", timeout=10_000)  # one point: 9
    assert page.locator("#latency").is_hidden()
    assert page.problems == []


@pytest.mark.slow
@pytest.mark.timeout(400)
@pytest.mark.parametrize("layout", ["ring", "force"])
def test_20000_peers_are_drawn_thinned_and_the_page_says_what_it_leaves_out(layout):
    """A graph read of 20,000 peers (a synthetic overlay through the server's own Snapshots: no test run can build
    that many) drawn in both layouts: pixels, no errors, and the legend's account of the edges left out."""
    served = web_view.Served(8, 1).ready()
    try:
        with web_view.browser() as page:
            drawn = web_view.draw(page, served, 20_000, layout)
            shown, total = drawn["edges_shown"], drawn["edges_total"]
            assert drawn["drawn"] > 20_000 and shown == 60_000 and drawn["per_peer"] == 3 and total > 300_000
            assert f"20000 peers; {shown} of {total} table entries drawn" in drawn["legend"]
            assert f"at most 3 a peer, spread over its table: {total - shown} left out" in drawn["legend"]
            assert page.problems == []
    finally:
        served.close()


def test_the_tools_modes_run_end_to_end(tmp_path, capsys):
    """tools/web_view.py's screenshot, voice and read, on small networks: the picture is a PNG, the voice check
    prints its ratios, the read its pings."""
    shot = tmp_path / "view.png"
    assert web_view.main(["screenshot", "-n", "24", "-o", str(shot)]) == 0
    assert shot.read_bytes().startswith(b"\x89PNG")
    assert web_view.main(["voice", "-n", "24", "--tail", "1"]) == 0
    out = capsys.readouterr().out
    assert "refresh_cpu" in out and "ping, page open" in out and "p99" in out
    figures = web_view.read(24, 1)
    assert [version for _, version, _ in figures["reads"]][0] == 1 and figures["pings"]["reading"]
