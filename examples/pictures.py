"""Draw the README's pictures: a small and a large overlay, and a time-lapse chart (needs the plot extra).

    python examples/pictures.py [--out docs] [--small 16] [--large 1000] [--lapse-peers 128] [--steps 4]

The time-lapse runs net_status after each refresh (status=True), so its chart shows greedy-routing connectivity.
"""
import argparse
import os
import tempfile

from p2pzmq import Network
from p2pzmq.plot import draw_time_lapse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs")
    parser.add_argument("--small", type=int, default=16)
    parser.add_argument("--large", type=int, default=1000)
    parser.add_argument("--lapse-peers", type=int, default=128)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for n in (args.small, args.large):
        with Network(n, seed=args.seed) as net:
            print(net.output_png(os.path.join(args.out, f"network-{n}.png")))
    with Network(args.lapse_peers, seed=args.seed) as net, tempfile.TemporaryDirectory() as work:
        net.time_lapse(args.steps, work, status=True)
        path = os.path.join(args.out, "time-lapse.png")
        draw_time_lapse(work, path)
        print({"path": path, "steps": args.steps, "peers": args.lapse_peers})


if __name__ == "__main__":
    main()
