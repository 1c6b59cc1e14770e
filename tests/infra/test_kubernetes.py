"""The Kubernetes manifests in infra/k8s/, rendered with ``kubectl kustomize`` exactly as an
operator applies them, and checked object by object: residency pinning, probes on the health
endpoints the nodes really serve, drain hooks, disruption budgets, network policies, and node
command lines and config files that the real ``regio`` parser and config loader accept."""

from __future__ import annotations

import functools
import importlib
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from control.cli import build_parser
from control.cluster_ca import create_ca, issue_node_certificate
from control.config import load
from control.topology import load_topology
from geo.frontdoor.config import FrontdoorConfig
from router.config import RouterConfig
from turn.server.config import TurnConfig

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "infra" / "k8s"
TOPOLOGY = load_topology(REPO / "infra" / "local" / "topology.toml")
REGIONS = sorted(p.name for p in (K8S / "overlays").iterdir())
EEA_BUILDS = [f"overlays/{r}" for r in REGIONS
              if TOPOLOGY.regions[r].jurisdiction == "EEA"] + ["etcd"]
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
NODE_KINDS = {"regio-router": "router", "regio-turn": "turn", "regio-frontdoor": "frontdoor"}
CONFIGS = {"router": RouterConfig, "turn": TurnConfig, "frontdoor": FrontdoorConfig}
CLI_MODULES = {"router": "router.cli", "turn": "turn.cli", "frontdoor": "geo.frontdoor.cli"}
HEALTH_PATHS = {"router": "/healthz", "turn": "/healthz", "frontdoor": "/healthz",
                "etcd": "/health"}


@functools.cache
def render(build: str) -> tuple[dict[str, Any], ...]:
    result = subprocess.run(["kubectl", "kustomize", str(K8S / build)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def objects(build: str, *kinds: str) -> list[dict[str, Any]]:
    return [o for o in render(build) if o["kind"] in kinds]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]  # type: ignore[no-any-return]


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"]["labels"]  # type: ignore[no-any-return]


def node_workloads(build: str) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(node kind, workload, its container) for every Regio node in a build."""
    for workload in objects(build, *WORKLOADS):
        kind = NODE_KINDS.get(pod_labels(workload).get("app.kubernetes.io/name", ""))
        if kind is not None:
            (container,) = pod_spec(workload)["containers"]
            yield kind, workload, container


POD_NAME = "router-5d8f7-x2x9q"


def config_files(build: str, tmp_path: Path) -> Path:
    """The regio-config ConfigMap's files, written where the node args can point, and a trunk
    certificate from a fresh cluster CA naming the pod (what the CSI volume provides)."""
    (configmap,) = [c for c in objects(build, "ConfigMap")
                    if c["metadata"]["name"].startswith("regio-config")]
    for name, text in configmap["data"].items():
        (tmp_path / name).write_text(text)
    create_ca(tmp_path / "ca")
    creds = issue_node_certificate(tmp_path / "ca", POD_NAME, tmp_path / "issued")
    (tmp_path / "trunk").mkdir()
    for source, name in ((creds.cert, "tls.crt"), (creds.key, "tls.key"), (creds.ca, "ca.crt")):
        (tmp_path / "trunk" / name).write_bytes(source.read_bytes())
    return tmp_path


def env_of(build: str) -> dict[str, str]:
    (configmap,) = [c for c in objects(build, "ConfigMap")
                    if c["metadata"]["name"].startswith("regio-env")]
    return dict(configmap["data"])


def args_of(container: dict[str, Any], build: str, config_dir: Path) -> list[str]:
    """The container's arguments as the kubelet expands them (``$(VAR)``), with the config
    directory pointing at the rendered ConfigMap's files."""
    values = {**env_of(build), "POD_NAME": POD_NAME, "HOST_IP": "198.18.0.10"}
    out = []
    for arg in container["args"]:
        arg = re.sub(r"\$\((\w+)\)", lambda m: values[m.group(1)], arg)
        arg = arg.replace("/etc/regio/config/", f"{config_dir}/")
        out.append(arg.replace("/etc/regio/trunk/", f"{config_dir}/trunk/"))
    return out


def flag(args: list[str], name: str) -> str:
    values = [a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")]
    assert len(values) == 1, (name, args)
    return values[0]


def node_config(kind: str, args: list[str]) -> Any:
    """What the node would run with: its command's own validation (``build_config``)."""
    parsed = build_parser().parse_args(args)
    assert parsed.command == kind
    module = importlib.import_module(CLI_MODULES[kind])
    return module.build_config(parsed)


def named_port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return int(number)


@pytest.mark.parametrize("region", REGIONS)
def test_overlays_match_the_topology_and_set_their_namespace(region: str) -> None:
    build = f"overlays/{region}"
    assert region in TOPOLOGY.regions
    assert env_of(build)["REGIO_REGION"] == region
    for obj in render(build):
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == f"regio-{region}", obj["metadata"]
    kinds = {NODE_KINDS[pod_labels(w)["app.kubernetes.io/name"]]
             for w in objects(build, *WORKLOADS)}
    assert kinds == {"router", "turn", "frontdoor"}
    for workload in objects(build, *WORKLOADS):
        for term in required_terms(workload):
            assert {"key": "regio.io/region", "operator": "In", "values": [region]} in term


def required_terms(workload: dict[str, Any]) -> list[list[dict[str, Any]]]:
    spec = pod_spec(workload)
    assert "nodeName" not in spec and "nodeSelector" not in spec
    required = (spec.get("affinity", {}).get("nodeAffinity", {})
                .get("requiredDuringSchedulingIgnoredDuringExecution", {}))
    terms = [t.get("matchExpressions", []) for t in required.get("nodeSelectorTerms", [])]
    assert terms, f"{workload['metadata']['name']} has no required node affinity"
    return terms


@pytest.mark.parametrize("build", EEA_BUILDS)
def test_every_eea_workload_is_pinned_to_eea_nodes(build: str) -> None:
    workloads = objects(build, *WORKLOADS)
    assert workloads
    for workload in workloads:
        # Terms are ORed: every one of them must demand an EEA node.
        for term in required_terms(workload):
            assert {"key": "regio.io/jurisdiction", "operator": "In", "values": ["EEA"]} in term
            assert not any(e["key"] == "regio.io/jurisdiction" and e != {
                "key": "regio.io/jurisdiction", "operator": "In", "values": ["EEA"]}
                for e in term)


def test_non_eea_regions_are_not_pinned_to_eea() -> None:
    for region in REGIONS:
        if TOPOLOGY.regions[region].jurisdiction != "EEA":
            for workload in objects(f"overlays/{region}", *WORKLOADS):
                assert all(e["key"] != "regio.io/jurisdiction"
                           for term in required_terms(workload) for e in term)


@pytest.mark.parametrize("region", REGIONS)
def test_node_args_and_config_files_are_accepted(region: str, tmp_path: Path) -> None:
    build = f"overlays/{region}"
    config_dir = config_files(build, tmp_path)
    for kind, _, container in node_workloads(build):
        config = node_config(kind, args_of(container, build, config_dir))
        assert isinstance(config, CONFIGS[kind])
        if kind != "frontdoor":
            assert config.region == region
        # The file alone loads too (unknown keys would be refused).
        load(CONFIGS[kind], config_dir / f"{kind}.toml", section=kind)


@pytest.mark.parametrize("build", [f"overlays/{r}" for r in REGIONS] + ["etcd"])
def test_probes_hit_the_health_endpoints_the_processes_serve(build: str, tmp_path: Path
                                                              ) -> None:
    config_dir = config_files(build, tmp_path) if build != "etcd" else tmp_path
    for workload in objects(build, *WORKLOADS):
        name = pod_labels(workload)["app.kubernetes.io/name"]
        kind = NODE_KINDS.get(name, name)
        for container in pod_spec(workload)["containers"]:
            for probe in ("readinessProbe", "livenessProbe"):
                get = container[probe]["httpGet"]
                assert get["path"].split("?")[0] == HEALTH_PATHS[kind], (kind, probe)
                port = named_port(container, get["port"])
                if kind == "etcd":
                    assert f"--listen-metrics-urls=http://0.0.0.0:{port}" in container["command"]
                    continue
                # The probe reaches the listener that serves /healthz in this process.
                config = node_config(kind, args_of(container, build, config_dir))
                attribute = {"router": "signaling", "turn": "metrics", "frontdoor": "listen"}[kind]
                listener = getattr(config, attribute)
                assert listener.endswith(f":{port}"), (kind, listener, port)
                tls = kind in ("router", "frontdoor")  # both refuse plain HTTP off loopback
                assert get.get("scheme", "HTTP") == ("HTTPS" if tls else "HTTP")


@pytest.mark.parametrize("region", REGIONS)
def test_routers_and_turn_drain_before_they_stop(region: str, tmp_path: Path) -> None:
    build = f"overlays/{region}"
    config_dir = config_files(build, tmp_path)
    for kind, workload, container in node_workloads(build):
        spec = pod_spec(workload)
        hook = container["lifecycle"]["preStop"]["exec"]["command"]
        if kind == "frontdoor":
            assert hook == ["sleep", "5"]
            continue
        assert hook[:2] == ["sh", "-c"]
        words = shlex.split(hook[2])
        assert words[:5] == ["exec", "regio", "node", "drain", "$POD_NAME"]
        assert "--wait" in words
        # The drain command parses with the real CLI.
        drain = build_parser().parse_args(
            [w.replace("$POD_NAME", "router-1").replace("$REGIO_ETCD", "https://e:2379")
             for w in words[2:]])
        deadline = load(CONFIGS[kind], config_dir / f"{kind}.toml", section=kind).drain_deadline
        grace = spec["terminationGracePeriodSeconds"]
        assert deadline < drain.timeout < grace, "the pod must outlive its drain"
        assert (workload["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0
                ), "a new pod cannot take the host ports before the old one left"


@pytest.mark.parametrize("build", [f"overlays/{r}" for r in REGIONS] + ["etcd"])
def test_every_workload_has_a_disruption_budget(build: str) -> None:
    budgets = objects(build, "PodDisruptionBudget")
    for workload in objects(build, *WORKLOADS):
        labels = pod_labels(workload)
        matching = [b for b in budgets
                    if b["spec"]["selector"]["matchLabels"].items() <= labels.items()]
        assert len(matching) == 1, workload["metadata"]["name"]
        (budget,) = matching
        if workload["metadata"]["name"] == "etcd":
            assert budget["spec"] == {**budget["spec"], "minAvailable": 2}
        elif "maxUnavailable" in budget["spec"]:
            assert budget["spec"]["maxUnavailable"] == 1


def policy(build: str, name: str) -> dict[str, Any]:
    (found,) = [p for p in objects(build, "NetworkPolicy") if p["metadata"]["name"] == name]
    return found


@pytest.mark.parametrize("build", [f"overlays/{r}" for r in REGIONS] + ["etcd"])
def test_namespaces_deny_ingress_by_default(build: str) -> None:
    deny = policy(build, "default-deny-ingress")
    assert deny["spec"]["podSelector"] == {} and deny["spec"]["policyTypes"] == ["Ingress"]
    assert "ingress" not in deny["spec"]


@pytest.mark.parametrize("region", REGIONS)
def test_only_routers_reach_the_trunk_port(region: str) -> None:
    build = f"overlays/{region}"
    (router,) = [w for k, w, _ in node_workloads(build) if k == "router"]
    (container,) = pod_spec(router)["containers"]
    (trunk,) = [p for p in container["ports"] if p["name"] == "trunk"]
    assert trunk["protocol"] == "UDP"
    assert f"--trunk-port={trunk['containerPort']}" in container["args"]
    # The trunk certificate must name the node id (CN and URI SAN), which is the pod name.
    assert "--node-id=$(POD_NAME)" in container["args"]
    (volume,) = [v for v in pod_spec(router)["volumes"] if v["name"] == "trunk"]
    attributes = volume["csi"]["volumeAttributes"]
    assert attributes["csi.cert-manager.io/common-name"] == "${POD_NAME}"
    assert attributes["csi.cert-manager.io/uri-sans"] == "urn:regio:node:${POD_NAME}"
    rules = policy(build, "router")["spec"]["ingress"]
    trunk_rules = [r for r in rules if any(p["port"] in ("trunk", trunk["containerPort"])
                                           for p in r.get("ports", []))]
    assert len(trunk_rules) == 1
    (source,) = trunk_rules[0]["from"]
    assert source["podSelector"] == {"matchLabels": {
        "app.kubernetes.io/name": "regio-router"}}
    assert source["namespaceSelector"] == {"matchLabels": {"regio.io/cluster": "regio"}}
    # Rules without a port list would open every port, the trunk's included.
    assert all(r.get("ports") for r in rules)
    namespace = next(o for o in render(build) if o["kind"] == "Namespace")
    assert namespace["metadata"]["labels"]["regio.io/cluster"] == "regio"


def test_only_regio_nodes_reach_etcd() -> None:
    rules = policy("etcd", "etcd")["spec"]["ingress"]
    client_rules = [r for r in rules if any(p["port"] == "client" for p in r["ports"])]
    assert len(client_rules) == 1
    pods = [s for s in client_rules[0]["from"] if "podSelector" in s]
    assert pods == [{"namespaceSelector": {"matchLabels": {"regio.io/cluster": "regio"}},
                     "podSelector": {"matchLabels": {"regio.io/etcd-client": "true"}}}]
    blocks = [s for s in client_rules[0]["from"] if "ipBlock" in s]
    assert len(blocks) == 1  # the node network, for TURN on the host network
    peer = [r for r in rules if any(p["port"] == "peer" for p in r["ports"])]
    assert peer[0]["from"] == [{"podSelector": {"matchLabels": {
        "app.kubernetes.io/name": "etcd"}}}]
    # The label that opens etcd is carried by Regio's nodes and nothing else.
    for region in REGIONS:
        for workload in objects(f"overlays/{region}", *WORKLOADS):
            labels = pod_labels(workload)
            assert labels.get("regio.io/etcd-client") == "true"
            assert labels["app.kubernetes.io/name"] in NODE_KINDS
            uses_host_network = pod_spec(workload).get("hostNetwork", False)
            assert uses_host_network == (labels["app.kubernetes.io/name"] == "regio-turn")


@pytest.mark.parametrize("region", REGIONS)
def test_metrics_ports_are_where_the_processes_serve_metrics(region: str, tmp_path: Path
                                                            ) -> None:
    """The port the NetworkPolicies open to the monitoring namespace is each node's real
    /metrics listener (the front door's operator listener, never its join port)."""
    build = f"overlays/{region}"
    config_dir = config_files(build, tmp_path)
    for kind, _, container in node_workloads(build):
        config = node_config(kind, args_of(container, build, config_dir))
        listener = config.metrics_listen if kind == "frontdoor" else config.metrics
        assert listener.endswith(f":{named_port(container, 'metrics')}"), (kind, listener)
    rules = [r for name in ("router", "frontdoor") for r in policy(build, name)["spec"]["ingress"]
             if r.get("from") == [{"namespaceSelector": {"matchLabels": {
                 "kubernetes.io/metadata.name": "monitoring"}}}]]
    assert [p["port"] for r in rules for p in r["ports"]] == ["metrics", "metrics"]


@pytest.mark.parametrize("region", REGIONS)
def test_nodes_can_unseal_the_secrets_in_etcd(region: str) -> None:
    build = f"overlays/{region}"
    key = Path(env_of(build)["REGIO_SECRETS_KEY"])
    for _, workload, container in node_workloads(build):
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod_spec(workload)["volumes"]}
        (name,) = [n for n, path in mounts.items() if Path(path) == key.parent]
        assert volumes[name]["secret"]["secretName"] == "regio-secrets-key"
