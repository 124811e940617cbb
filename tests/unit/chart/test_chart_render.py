"""The chart as helm renders it (``helm lint``, ``helm template``): the objects it makes, the
operator pod's command, probes and security settings, and RBAC that is exactly what the
controller's code needs -- checked against the kinds the controller's own desired-state
builders produce for the examples and the kinds its Kubernetes client can touch."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from nemotron_operator.api.models import API_VERSION, KIND, PLURAL
from nemotron_operator.cli import SUBCOMMANDS
from nemotron_operator.controller import cli as controller_cli
from nemotron_operator.controller.desired import context_from_body, desired_state
from nemotron_operator.controller.settings import OperatorSettings
from nemotron_operator.engine.assets import engine_files
from nemotron_operator.kube.client import RESOURCES
from tests.unit.chart.helm import CHART, KUBE_VERSION_ARGS, REPO, helm, render, set_args
from tests.unit.chart.rbac_rules import grants, group_of, rules_of

FULLNAME = "nemotron-operator"  # release "nemotron-operator" + chart "nemotron-operator"
RELEASE_NS = "nemotron-system"
CHART_META = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
WRITE_VERBS = {"create", "patch", "update", "delete", "deletecollection"}
ALL_VERBS = WRITE_VERBS | {"get", "list", "watch", "bind", "escalate", "impersonate", "approve"}


def _one(manifests: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        m
        for m in manifests
        if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"{kind} {name}: {len(found)} rendered"
    return found[0]


def _container(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    pod = _one(manifests, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return dict(container)


@pytest.fixture(scope="module")
def default() -> list[dict[str, Any]]:
    return render()


@pytest.fixture(scope="module")
def namespaced() -> list[dict[str, Any]]:
    return render({"operator.watchNamespaces": 'json:["ai","team-b"]', "replicaCount": "2"})


# --- lint -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"operator.watchNamespaces": 'json:["ai"]', "replicaCount": "2"},
        {
            "metrics.serviceMonitor.enabled": "true",
            "metrics.podMonitor.router.enabled": "true",
            "metrics.podMonitor.engines.enabled": "true",
        },
    ],
    ids=["defaults", "namespaced-ha", "monitoring"],
)
def test_helm_lint_strict(values: dict[str, str]) -> None:
    result = helm(
        ["lint", "--strict", str(CHART), *KUBE_VERSION_ARGS, *set_args(values)], check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


# --- objects ----------------------------------------------------------------------------------


def test_default_objects(default: list[dict[str, Any]]) -> None:
    kinds = sorted((m["kind"], m["metadata"]["name"]) for m in default)
    assert kinds == sorted(
        [
            ("CustomResourceDefinition", f"{PLURAL}.{API_VERSION.split('/')[0]}"),
            ("ServiceAccount", FULLNAME),
            ("ClusterRole", FULLNAME),
            ("ClusterRoleBinding", FULLNAME),
            ("Role", f"{FULLNAME}-leader-election"),
            ("RoleBinding", f"{FULLNAME}-leader-election"),
            ("Deployment", FULLNAME),
            ("Service", f"{FULLNAME}-metrics"),
            ("ConfigMap", f"{FULLNAME}-dashboard"),
        ]
    )
    for obj in default:
        if obj["kind"] not in {"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}:
            assert obj["metadata"]["namespace"] == RELEASE_NS, obj["metadata"]["name"]


def test_crd_is_the_generated_one(default: list[dict[str, Any]]) -> None:
    rendered = _one(default, "CustomResourceDefinition")
    generated = yaml.safe_load((REPO / "crds" / "nemotron-deployment.yaml").read_text())
    assert rendered == generated


def test_namespaced_mode_binds_only_listed_namespaces(namespaced: list[dict[str, Any]]) -> None:
    bindings = [m for m in namespaced if m["kind"] == "RoleBinding"]
    by_ns = {b["metadata"]["namespace"]: b for b in bindings}
    assert set(by_ns) == {"ai", "team-b", RELEASE_NS}
    for ns in ("ai", "team-b"):
        assert by_ns[ns]["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": FULLNAME,
        }
    crbs = {m["metadata"]["name"] for m in namespaced if m["kind"] == "ClusterRoleBinding"}
    # Only the read-only discovery role is bound cluster-wide.
    assert crbs == {f"{FULLNAME}-discovery"}
    discovery = rules_of(namespaced, "ClusterRole", f"{FULLNAME}-discovery")
    assert all(set(r["verbs"]) <= {"list", "watch"} for r in discovery)
    args = _container(namespaced)["args"]
    assert _parse_run(args).namespace == ["ai", "team-b"]


def test_high_availability(namespaced: list[dict[str, Any]], default: list[dict[str, Any]]) -> None:
    deployment = _one(namespaced, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    pdb = _one(namespaced, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    anti = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert anti["preferredDuringSchedulingIgnoredDuringExecution"]
    assert not [m for m in default if m["kind"] == "PodDisruptionBudget"]


def test_without_leader_election_the_rollout_never_overlaps() -> None:
    manifests = render({"operator.leaderElection.enabled": "false"})
    assert _one(manifests, "Deployment")["spec"]["strategy"]["type"] == "Recreate"
    assert not [m for m in manifests if m["kind"] == "Role"]
    assert _parse_run(_container(manifests)["args"]).no_leader_election is True


# --- the operator pod -------------------------------------------------------------------------


def test_image_defaults_to_app_version(default: list[dict[str, Any]]) -> None:
    image = _container(default)["image"]
    assert image == f"ghcr.io/nemotron-operator/nemotron-operator:{CHART_META['appVersion']}"
    digest = "sha256:" + "b" * 64
    pinned = _container(render({"image.digest": digest}))["image"]
    assert pinned == f"ghcr.io/nemotron-operator/nemotron-operator@{digest}"


def _parse_run(args: list[str]) -> argparse.Namespace:
    """``args`` parsed by the operator's real ``run`` parser (controller.cli), as the console
    script would; argparse exits on an unknown flag, which fails the test."""
    parser = argparse.ArgumentParser(prog="nemotron-operator")
    sub = parser.add_subparsers(dest="command", required=True)
    controller_cli.register(sub)
    return parser.parse_args(args)


def test_command_is_the_run_subcommand(default: list[dict[str, Any]]) -> None:
    container = _container(default)
    # The image's ENTRYPOINT is the console script; the chart passes only args.
    assert "command" not in container
    args = container["args"]
    assert args[0] == "run"
    assert args[0] in SUBCOMMANDS
    parsed = _parse_run(args)
    assert parsed.namespace is None  # the whole cluster
    assert parsed.router_image == container["image"]
    assert parsed.router_image_pull_policy == "IfNotPresent"
    assert parsed.lease_name == "nemotron-operator"
    assert parsed.no_leader_election is False
    assert parsed.health_port == 8081
    assert parsed.metrics_port == 9090
    assert parsed.cluster_domain == "cluster.local"


def test_unknown_flags_would_be_caught() -> None:
    """_parse_run is a real check: the parser refuses a flag the operator does not have."""
    with pytest.raises(SystemExit):
        _parse_run(["run", "--all-namespaces"])


def test_security_context(default: list[dict[str, Any]]) -> None:
    pod = _one(default, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = _container(default)["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["privileged"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    # A read-only root needs a writable /tmp (HOME points there).
    mounts = {m["mountPath"]: m["name"] for m in _container(default)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    env = {e["name"]: e for e in _container(default)["env"]}
    assert env["HOME"]["value"] == "/tmp"


def test_probes_and_ports(default: list[dict[str, Any]]) -> None:
    container = _container(default)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": 8081, "metrics": 9090}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] in ports
    assert "--health-port=8081" in container["args"]
    assert "--metrics-port=9090" in container["args"]
    service = _one(default, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    assert (
        service["spec"]["selector"]
        == _one(default, "Deployment")["spec"]["selector"]["matchLabels"]
    )


def test_pod_identity_for_leader_election(default: list[dict[str, Any]]) -> None:
    env = {e["name"]: e for e in _container(default)["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    settings = OperatorSettings()
    # The Role's Lease name is the operator's default one, which the chart also passes.
    role = rules_of(default, "Role", f"{FULLNAME}-leader-election")
    assert grants(
        role, group="coordination.k8s.io", resource="leases", resource_name=settings.lease_name
    ) >= {"get", "update"}


def test_service_account_is_used(default: list[dict[str, Any]]) -> None:
    pod = _one(default, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == _one(default, "ServiceAccount")["metadata"]["name"]
    binding = _one(default, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": FULLNAME, "namespace": RELEASE_NS}
    ]


# --- RBAC: least privilege ----------------------------------------------------------------------


def _operator_rules(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return rules_of(manifests, "ClusterRole", FULLNAME) + rules_of(
        manifests, "Role", f"{FULLNAME}-leader-election"
    )


def test_no_wildcards_and_known_verbs(default: list[dict[str, Any]]) -> None:
    for obj in default:
        for rule in obj.get("rules") or []:
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in rule.get(field, []), rule
            assert set(rule["verbs"]) <= ALL_VERBS
            assert not set(rule["verbs"]) & {"bind", "escalate", "impersonate"}, rule


def test_secrets_get_only(default: list[dict[str, Any]]) -> None:
    rules = _operator_rules(default)
    assert grants(rules, group="", resource="secrets") == {"get"}


def test_pods_read_only(default: list[dict[str, Any]]) -> None:
    rules = _operator_rules(default)
    assert grants(rules, group="", resource="pods") == {"get", "list", "watch"}
    assert not grants(rules, group="", resource="pods/exec")


@pytest.mark.parametrize(
    ("group", "resource"),
    [
        ("", "nodes"),
        ("", "namespaces"),
        ("", "persistentvolumes"),
        ("rbac.authorization.k8s.io", "clusterroles"),
        ("rbac.authorization.k8s.io", "clusterrolebindings"),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
        ("admissionregistration.k8s.io", "validatingwebhookconfigurations"),
    ],
)
def test_never_writes_cluster_scoped_objects(
    default: list[dict[str, Any]], group: str, resource: str
) -> None:
    assert not grants(_operator_rules(default), group=group, resource=resource) & WRITE_VERBS


def test_custom_resource_verbs(default: list[dict[str, Any]]) -> None:
    rules = _operator_rules(default)
    group = group_of(API_VERSION)
    assert grants(rules, group=group, resource=PLURAL) == {
        "get",
        "list",
        "watch",
        "patch",
        "update",
    }
    assert grants(rules, group=group, resource=f"{PLURAL}/status") == {"get", "patch", "update"}
    assert grants(rules, group=group, resource=f"{PLURAL}/finalizers") == {"update"}
    assert grants(rules, group="apps", resource="deployments/scale") == {"get", "patch", "update"}


def _examples() -> list[dict[str, Any]]:
    docs = []
    for path in sorted((REPO / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc and doc.get("kind") == KIND:
                doc["metadata"].update(namespace="ai", uid="u-1", generation=1)
                docs.append(doc)
    return docs


def test_rbac_covers_every_object_the_controller_applies(default: list[dict[str, Any]]) -> None:
    """Every kind the desired-state builders produce for the examples can be applied (server-side
    apply: create + patch), read back and deleted (pruning a disabled pool) by the operator."""
    rules = _operator_rules(default)
    kinds: set[tuple[str, str]] = set()
    for body in _examples():
        state = desired_state(context_from_body(body, OperatorSettings()), engine_files())
        kinds |= {(o["apiVersion"], o["kind"]) for o in state.objects}
        kinds |= {(api_version, kind) for api_version, kind, _ in state.absent}
    assert ("apps/v1", "Deployment") in kinds
    for api_version, kind in sorted(kinds):
        plural = RESOURCES.get((api_version, kind))
        assert plural, f"the controller makes {kind}; add it to the RBAC rules and this map"
        verbs = grants(rules, group=group_of(api_version), resource=plural)
        missing = {"get", "create", "patch", "delete"} - verbs
        assert not missing, f"{kind}: the ClusterRole lacks {sorted(missing)}"


def test_rbac_covers_every_kind_the_client_can_touch(default: list[dict[str, Any]]) -> None:
    """Each kind the Kubernetes client knows (kube.client.RESOURCES) is readable by the operator
    (Events are only written), and nothing beyond these kinds, the scale subresource and the CRD
    status is granted."""
    rules = _operator_rules(default)
    known = {(group_of(v), plural) for (v, _), plural in RESOURCES.items()}
    for group, plural in known:
        # The Lease rules name the one Lease the operator uses.
        name = OperatorSettings().lease_name if plural == "leases" else None
        verbs = grants(rules, group=group, resource=plural, resource_name=name)
        expected = {"create"} if plural == "events" else {"get"}
        assert expected <= verbs, f"{group}/{plural}: {sorted(verbs)}"
    granted = {(g, r) for rule in rules for g in rule["apiGroups"] for r in rule["resources"]}
    extra = (
        granted
        - known
        - {
            ("apps", "deployments/scale"),
            (group_of(API_VERSION), f"{PLURAL}/status"),
            (group_of(API_VERSION), f"{PLURAL}/finalizers"),  # blockOwnerDeletion
            ("events.k8s.io", "events"),  # kopf's events
            ("apiextensions.k8s.io", "customresourcedefinitions"),  # kopf's discovery, read-only
        }
    )
    assert not extra, f"granted but never used: {sorted(extra)}"


# --- monitoring and the dashboard ---------------------------------------------------------------


def test_monitors_off_by_default(default: list[dict[str, Any]]) -> None:
    assert not [m for m in default if m["kind"] in {"ServiceMonitor", "PodMonitor"}]


def test_monitors_select_the_operator_pods() -> None:
    manifests = render(
        {
            "metrics.serviceMonitor.enabled": "true",
            "metrics.podMonitor.router.enabled": "true",
            "metrics.podMonitor.engines.enabled": "true",
            "operator.watchNamespaces": 'json:["ai"]',
        }
    )
    sm = _one(manifests, "ServiceMonitor")
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"
    monitors = {m["metadata"]["name"]: m for m in manifests if m["kind"] == "PodMonitor"}
    router = monitors[f"{FULLNAME}-router"]["spec"]
    engines = monitors[f"{FULLNAME}-engines"]["spec"]
    # Labels and port names from docs/contracts.md.
    assert router["selector"]["matchLabels"]["app.kubernetes.io/name"] == "nemotron-router"
    assert engines["selector"]["matchLabels"]["app.kubernetes.io/name"] == "nemotron-engine"
    for spec in (router, engines):
        assert (
            spec["selector"]["matchLabels"]["app.kubernetes.io/managed-by"] == "nemotron-operator"
        )
        assert spec["namespaceSelector"] == {"matchNames": ["ai"]}
        (endpoint,) = spec["podMetricsEndpoints"]
        assert endpoint["port"] == "http"
        targets = {r["targetLabel"] for r in endpoint["relabelings"]}
        assert {"nemotron_deployment", "pool"} <= targets


def test_monitors_match_the_pods_the_controller_makes() -> None:
    """The PodMonitor selectors match the labels the controller puts on router/engine pods."""
    manifests = render(
        {"metrics.podMonitor.router.enabled": "true", "metrics.podMonitor.engines.enabled": "true"}
    )
    monitors = {m["metadata"]["name"]: m["spec"] for m in manifests if m["kind"] == "PodMonitor"}
    (body,) = [b for b in _examples() if b["metadata"]["name"] == "nano-4b"]
    state = desired_state(context_from_body(body, OperatorSettings()), engine_files())
    pods = [o["spec"]["template"] for o in state.objects if o["kind"] == "Deployment"]
    for suffix, expected in (("router", 1), ("engines", 2)):
        selector = monitors[f"{FULLNAME}-{suffix}"]["selector"]["matchLabels"]
        matched = [p for p in pods if selector.items() <= p["metadata"]["labels"].items()]
        assert len(matched) == expected, suffix
        for pod in matched:
            ports = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
            assert "http" in ports


def test_dashboard_configmap_holds_the_dashboard(default: list[dict[str, Any]]) -> None:
    cm = _one(default, "ConfigMap", f"{FULLNAME}-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads((CHART / "dashboards" / "nemotron-serving.json").read_text())
    assert json.loads(cm["data"]["nemotron-serving.json"]) == shipped


def _render_notes(tmp_path: Path, values: dict[str, str]) -> str:
    """NOTES.txt rendered by helm's engine. `helm template` skips NOTES and a client-side dry
    run still wants a cluster, so a copy of the chart renders the same text through `tpl` into
    a manifest (same values, same named templates)."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    shutil.copy(chart / "templates" / "NOTES.txt", chart / "notes-under-test.txt")
    (chart / "templates" / "zz-notes-under-test.yaml").write_text(
        'notes: {{ tpl (.Files.Get "notes-under-test.txt") . | toJson }}\n'
    )
    result = helm(
        [
            "template",
            "x",
            str(chart),
            "-n",
            RELEASE_NS,
            "--show-only",
            "templates/zz-notes-under-test.yaml",
            *KUBE_VERSION_ARGS,
            *set_args(values),
        ]
    )
    notes: str = yaml.safe_load(result.stdout)["notes"]
    return notes


def test_notes_tell_how_to_reach_an_endpoint(tmp_path: Path) -> None:
    notes = _render_notes(tmp_path, {})
    assert "http://<name>.<namespace>.svc/v1" in notes
    assert "port-forward service/nano-4b 8080:80" in notes
    assert "/v1/chat/completions" in notes
    assert "{.status.endpoint}" in notes
    assert "kubectl apply --server-side -f crds/" in notes
    assert f"rollout status deployment/x-{FULLNAME}" in notes
    assert "every namespace" in notes


def test_notes_follow_the_values(tmp_path: Path) -> None:
    notes = _render_notes(
        tmp_path,
        {
            "operator.watchNamespaces": 'json:["ai","team-b"]',
            "replicaCount": "2",
            "metrics.podMonitor.router.enabled": "true",
        },
    )
    assert "in: ai, team-b." in notes
    assert "2 replicas: the holder of Lease nemotron-system/nemotron-operator reconciles" in notes
    assert "PodMonitor (routers)" in notes


def test_bring_your_own_service_account_and_rbac() -> None:
    manifests = render(
        {"rbac.create": "false", "serviceAccount.create": "false", "serviceAccount.name": "byo"}
    )
    kinds = {m["kind"] for m in manifests}
    assert not kinds & {
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
    }
    pod = _one(manifests, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "byo"


def test_service_monitor_needs_the_metrics_service() -> None:
    result = helm(
        [
            "template", "x", str(CHART), *KUBE_VERSION_ARGS,
            *set_args({"metrics.serviceMonitor.enabled": "true", "metrics.service.enabled": "false"}),
        ],
        check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "metrics.serviceMonitor.enabled needs metrics.service.enabled" in result.stderr
