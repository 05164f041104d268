"""The same peers over tcp: one seed builds the same network over inproc and over tcp (and the oracle's)."""
import pytest

from model import ModelNetwork
from p2pzmq.timeline import untimed

TRANSPORTS = ["inproc", "tcp"]


@pytest.mark.timeout(120)
def test_same_seed_inproc_and_tcp_build_the_same_network(make_network, tmp_path):
    tgfs, statuses = [], []
    for transport in TRANSPORTS:
        net = make_network(24, seed=7, transport=transport)
        net.refresh_peers()
        path = tmp_path / f"{transport}.tgf"
        net.output_tgf(str(path))
        tgfs.append(path.read_bytes())
        statuses.append(net.net_status())
        assert all(peer.contact.server.startswith(f"{transport}://") for peer in net.peers)
        net.die()
    assert tgfs[0] == tgfs[1]
    assert untimed(statuses[0]) == untimed(statuses[1])
    model = ModelNetwork(7)
    model.create(24)
    model.refresh_peers()
    assert untimed(statuses[1]) == model.net_status()
