"""Drive a network through its control socket, as a remote script would: here the supervisor serves from a greenlet
of this same process, on a tcp port the system picks, and a ControlClient talks to it.

    python examples/control_socket.py
"""
from p2pzmq import ControlClient, ControlServer, Network


def main() -> None:
    with Network(8, seed=2) as net:
        server = ControlServer(net, "tcp://127.0.0.1:0").start()
        with ControlClient(server.endpoint, timeout=30) as client:
            print(f"{client.call('ping')['n']} peers behind {server.endpoint}")
            status = client.call("net_status")
            print(f"Connectivity {status['connectivity']}%, mean hops {status['hops']['mean']}")
            first, last = status["peers"][0]["id"], status["peers"][-1]["id"]
            print(f"Route: {client.call('lookup', **{'from': first, 'id': last})['route']}")
            print(client.call("die"))
        server.wait()
        server.stop()


if __name__ == "__main__":
    main()
