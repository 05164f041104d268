"""p2pzmq: a peer-to-peer network simulator on gevent and ZeroMQ.

Peers are pairs of greenlets (server and client) talking over ZeroMQ, inproc or tcp; a supervisor builds the network
and answers a control socket. See README.md and docs/DESIGN.md.
"""

__version__ = "0.1.0"

from .config import Config  # noqa: E402  (after __version__, which setup.cfg reads)
from .control import ControlClient, ControlServer  # noqa: E402
from .errors import (  # noqa: E402
    Cancelled, ClosedError, ControlError, OutputError, P2PError, ProtocolError, RpcTimeout, TransportError,
    UsageError,
)
from .network import Network  # noqa: E402

__all__ = [
    "Cancelled", "ClosedError", "Config", "ControlClient", "ControlError", "ControlServer", "Network", "OutputError",
    "P2PError", "ProtocolError", "RpcTimeout", "TransportError", "UsageError", "__version__",
]
