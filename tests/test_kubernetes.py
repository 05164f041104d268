"""deploy/kubernetes, checked offline (heavy: ``pytest -m heavy`` after .ci/setup-heavy and the ``heavy`` extra).

No cluster can run here, and ``kubectl create --dry-run=client`` still asks an API server for its resource types, so
the manifests are checked without one: ``kubectl kustomize`` composes them as ``kubectl apply -k`` would; every object
is validated strictly (no unknown field) against the schemas of the oldest and newest Kubernetes that
kubernetes-validate ships; the objects must refer to each other correctly; and the containers' command lines run
here as processes, with loopback addresses in place of pod IPs, and build the network.
"""
import os
import re
import subprocess
import sys

import pytest

from launchers import ENV, ROOT, ctl, free_port, one_process_tgf, require, stop_process
from p2pzmq import security

pytestmark = [pytest.mark.heavy, pytest.mark.timeout(600)]
KUBERNETES_VERSIONS = ("1.25.0", "1.37.0")


@pytest.fixture(scope="module")
def objects() -> dict:
    """The objects ``kubectl apply -k deploy/kubernetes`` would create, by (kind, name)."""
    import yaml  # the heavy extra's (imported here: the default run collects this module without it)

    require("kubectl")
    done = subprocess.run(["kubectl", "kustomize", os.path.join(ROOT, "deploy", "kubernetes")], capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    return {(item["kind"], item["metadata"]["name"]): item for item in yaml.safe_load_all(done.stdout)}


def test_every_object_is_valid_for_kubernetes(objects):
    import kubernetes_validate

    assert sorted(objects) == [("ConfigMap", "p2pzmq-settings"), ("Deployment", "p2pzmq-supervisor"),
                               ("Job", "p2pzmq-workers"), ("NetworkPolicy", "p2pzmq"),
                               ("Service", "p2pzmq-supervisor"), ("Service", "p2pzmq-workers")]
    for item in objects.values():
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(item, version, strict=True)  # raises on any error


def pod_spec(objects, kind, name) -> dict:
    return objects[(kind, name)]["spec"]["template"]["spec"]


def test_the_objects_fit_together(objects):
    settings = objects[("ConfigMap", "p2pzmq-settings")]["data"]
    job = objects[("Job", "p2pzmq-workers")]["spec"]
    assert job["completionMode"] == "Indexed" and job["completions"] == job["parallelism"] == int(
        settings["P2P_WORKERS"])
    service = objects[("Service", "p2pzmq-supervisor")]["spec"]
    supervisor = pod_spec(objects, "Deployment", "p2pzmq-supervisor")
    worker = pod_spec(objects, "Job", "p2pzmq-workers")
    assert objects[("Service", "p2pzmq-workers")]["spec"]["clusterIP"] == "None" and worker["subdomain"] == (
        "p2pzmq-workers")
    for (kind, name), pod in {("Deployment", "p2pzmq-supervisor"): supervisor,
                              ("Job", "p2pzmq-workers"): worker}.items():
        labels = objects[(kind, name)]["spec"]["template"]["metadata"]["labels"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        (container,) = pod["containers"]
        assert {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}} in container["env"]
        assert container["envFrom"] == [{"configMapRef": {"name": "p2pzmq-settings"}}]
        assert "$(POD_IP)" in container["args"] and container["args"][container["args"].index("--curve-dir") + 1] \
            == "/keys" == container["volumeMounts"][0]["mountPath"]
        assert pod["volumes"][0]["secret"]["secretName"] == "p2pzmq-curve"
        for variable in re.findall(r"\$\((\w+)\)", " ".join(container["args"])):
            assert variable in settings or variable == "POD_IP"
        selected = objects[("Service", name)]["spec"]["selector"]
        assert selected.items() <= labels.items()
    control_port = {port["name"]: port["containerPort"] for port in supervisor["containers"][0]["ports"]}
    assert control_port[service["ports"][0]["targetPort"]] == 5555
    args = worker["containers"][0]["args"]
    assert args[args.index("--supervisor") + 1] == f"tcp://p2pzmq-supervisor:{service['ports'][0]['port']}"
    assert supervisor["containers"][0]["image"] == worker["containers"][0]["image"]


def command_line(objects, kind, name, values: dict, swaps: dict) -> list[str]:
    """A container's command line with ``$(VAR)`` filled in from ``values`` and words replaced by ``swaps``."""
    (container,) = pod_spec(objects, kind, name)["containers"]
    args = [re.sub(r"\$\((\w+)\)", lambda match: values[match.group(1)], word) for word in container["args"]]
    return [sys.executable, "-m", "p2pzmq", *(swaps.get(word, word) for word in args)]


def test_the_containers_command_lines_build_the_network(objects, tmp_path):
    """The pods' command lines as local processes: the supervisor's pod IP is 127.0.0.1, each worker's 127.0.1.x;
    its Service name resolves to 127.0.0.1; the Secret is a keys directory made by ``p2p-network keys``."""
    keys = str(tmp_path / "keys")
    security.generate(keys)
    port, peers = free_port(), 60
    settings = {**objects[("ConfigMap", "p2pzmq-settings")]["data"], "P2P_PEERS": str(peers)}
    swaps = {"/keys": keys, "tcp://*:5555": f"tcp://127.0.0.1:{port}",
             "tcp://p2pzmq-supervisor:5555": f"tcp://127.0.0.1:{port}"}
    workers = int(settings["P2P_WORKERS"])
    procs = [subprocess.Popen(command_line(objects, "Deployment", "p2pzmq-supervisor",
                                           {**settings, "POD_IP": "127.0.0.1"}, swaps), cwd=tmp_path, env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)]
    procs += [subprocess.Popen(command_line(objects, "Job", "p2pzmq-workers", {**settings, "POD_IP": f"127.0.1.{i}"},
                                            swaps), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, stdin=subprocess.DEVNULL) for i in range(1, workers + 1)]
    endpoint = f"tcp://127.0.0.1:{port}"
    try:
        assert procs[0].stdout.readline() == f"Network created and supervisor listening on {endpoint}\n"
        ping = ctl(endpoint, "--curve-dir", keys, "ping")
        assert ping["n"] == peers and sorted(w["host"] for w in ping["workers"]) == [f"127.0.1.{i}"
                                                                                    for i in range(1, workers + 1)]
        assert ctl(endpoint, "--curve-dir", keys, "net_status")["n"] == peers
        ctl(endpoint, "--curve-dir", keys, "output_tgf", str(tmp_path / "net.tgf"))
        assert (tmp_path / "net.tgf").read_bytes() == one_process_tgf(tmp_path, peers, int(settings["P2P_SEED"]))
        assert ctl(endpoint, "--curve-dir", keys, "die") == {"stopping": True}
        assert [proc.wait(30) for proc in procs] == [0] * (workers + 1)  # a Job's workers complete with exit 0
    finally:
        for proc in procs:
            stop_process(proc)
            proc.communicate()
