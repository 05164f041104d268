"""The worker link's contacts take exactly what the peer wire codec takes: ids by :func:`p2pzmq.ids.parse_id` and
endpoints by :func:`p2pzmq.addresses.check_peer_endpoint` (a contact the link accepted was once able to carry an
id in another script's digits, or an endpoint the wire then refused)."""
import pytest

from p2pzmq import link, wire
from p2pzmq.contact import Contact
from p2pzmq.errors import ProtocolError

pytestmark = pytest.mark.timeout(30)

GOOD = "tcp://127.0.0.1:5000"
ENDPOINTS = [GOOD, "inproc://p2p-1-s", "tcp://" + "h" * 250, "tcp://" + "h" * 251, "udp://127.0.0.1:1", "ipc://x",
             "", "TCP://127.0.0.1:1", "tcp:/x", "inproc://\u00e9", " tcp://x"]


def wire_takes(server: str, client: str) -> bool:
    raw = wire.pack_contact(Contact(5, server, client))
    try:
        wire.unpack_contact({}, raw, 0)
    except ProtocolError:
        return False
    return True


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_the_link_takes_the_endpoints_the_wire_takes(endpoint):
    for server, client in ((endpoint, GOOD), (GOOD, endpoint)):
        taken = wire_takes(server, client)
        if taken:
            assert link.unpack_contact(["5", server, client]) == Contact(5, server, client)
        else:
            with pytest.raises(ProtocolError):
                link.unpack_contact(["5", server, client])


@pytest.mark.parametrize("item", [["\u0663", GOOD, GOOD], [str(2 ** 160), GOOD, GOOD], ["+5", GOOD, GOOD],
                                  [5, GOOD, GOOD], ["5", GOOD], ["5", GOOD, GOOD, GOOD], ["5", None, GOOD],
                                  ("5", GOOD, GOOD), "5"])
def test_the_link_refuses_a_contact_the_wire_could_not_carry(item):
    with pytest.raises(ProtocolError):
        link.unpack_contact(item)


def test_a_contact_survives_the_link():
    contact = Contact(2 ** 160 - 1, GOOD, "inproc://p2p-9-c")
    assert link.unpack_contact(link.pack_contact(contact)) == contact
