"""The Python API in a few lines: build a 16-peer network in this process, measure it, look a peer up, export it.

    python examples/quickstart.py [OUTPUT_DIR]
"""
import os
import sys

from p2pzmq import Network


def main(out_dir: str) -> None:
    with Network(16, seed=1, metric="xor") as net:  # 16 peers, Kademlia's xor distance, reproducible
        status = net.net_status()
        hops = status["hops"]
        print(f"Connectivity {status['connectivity']}%: {hops['success_rate']:.1%} of lookups arrive, "
              f"in {hops['mean']:.2f} hops on average {hops['histogram']}")
        oldest, newest = net.peers[-1], net.peers[0]
        route = net.lookup(oldest.id, newest.id)["route"]
        print(f"Route from the oldest peer to the newest: {' -> '.join(peer[:8] for peer in route['path'])}")
        net.refresh_peers()
        print(f"After one refresh: {net.net_status()['connectivity']}%")
        written = net.output_graph(os.path.join(out_dir, "quickstart.graphml"), "graphml")
        print(f"Wrote {written['nodes']} peers and {written['edges']} table entries to {written['path']}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
