"""``python -m p2pzmq`` is ``p2p-network`` (local workers are started this way)."""
import sys

from .cli import main

sys.exit(main())
