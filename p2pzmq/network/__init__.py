"""The supervisor: builds a network of peers and drives it (docs/DESIGN.md §4.8, §8).

:class:`Network` is the façade, one method per control command; the work lives in the modules of this package, each
of one concern: the command channel to peers (:mod:`.channel`), membership (:mod:`.members`), the hosts
(:mod:`.workforce`), building and changing the network (:mod:`.building`), routing (:mod:`.routing`), exports
(:mod:`.exports`), background churn (:mod:`.churning`) and pure CPU work off the event loop (:mod:`.offload`).
"""
from ..status import ROUTINGS
from .supervisor import Network, Progress

__all__ = ["Network", "Progress", "ROUTINGS"]
