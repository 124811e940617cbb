"""The Helm chart installed into the local cluster (real apiserver, real RBAC authorizer): the
objects exist, the operator's ServiceAccount can do what the controller needs, and cannot do
what it must not (``kubectl auth can-i --as=system:serviceaccount:...``, plus real server-side
dry-run creates where the escalation check matters). The examples pass the real CRD's schema
and CEL rules.

The release runs with ``replicaCount=0``: this test checks what the chart grants, not the
operator process (the lead's end-to-end test runs the pod through the pod runner), and an
extra operator must not start reconciling beside the one other tests run. Each test module
gets its own release and namespaces, removed afterwards; the CRD stays, as helm leaves it.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from nemotron_operator.devcluster.binaries import ensure_binaries
from tests.support.waiting import wait_for
from tests.unit.chart.helm import CHART, REPO, find_helm

if TYPE_CHECKING:
    from tests.cluster.conftest import Kube

pytestmark = pytest.mark.cluster


@dataclass(frozen=True)
class Release:
    name: str
    namespace: str  # the release (operator) namespace
    watched: str  # the one namespace the operator serves
    other: str  # a namespace it does not serve
    service_account: str

    @property
    def subject(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"


@dataclass(frozen=True)
class Tools:
    helm: str
    kubectl: str
    kubeconfig: Path

    def run(
        self, args: list[str], *, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        result = subprocess.run(
            args, capture_output=True, text=True, env=env, input=stdin, timeout=120, check=False
        )
        if check and result.returncode != 0:
            pytest.fail(f"{' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result


@pytest.fixture(scope="module")
def tools(kube: Kube) -> Tools:
    helm, _ = find_helm()
    if helm is None:
        # The cluster tier builds what it needs, as the kube fixture does for kubectl.
        helm = str(ensure_binaries(["helm"])["helm"])
    return Tools(helm=helm, kubectl=str(kube.kubectl_path), kubeconfig=kube.kubeconfig)


@pytest.fixture(scope="module")
def release(tools: Tools) -> Iterator[Release]:
    suffix = uuid.uuid4().hex[:6]
    rel = Release(
        name=f"chart-{suffix}",
        namespace=f"chart-op-{suffix}",
        watched=f"chart-ai-{suffix}",
        other=f"chart-other-{suffix}",
        service_account=f"chart-{suffix}-nemotron-operator",
    )
    for ns in (rel.watched, rel.other):
        tools.run([tools.kubectl, "create", "namespace", ns])
    try:
        tools.run(
            [
                tools.helm,
                "install",
                rel.name,
                str(CHART),
                "--namespace",
                rel.namespace,
                "--create-namespace",
                "--set",
                "replicaCount=0",
                "--set-json",
                f'operator.watchNamespaces=["{rel.watched}"]',
                "--wait=false",
            ]
        )
        yield rel
    finally:
        tools.run([tools.helm, "uninstall", rel.name, "--namespace", rel.namespace], check=False)
        for ns in (rel.namespace, rel.watched, rel.other):
            tools.run([tools.kubectl, "delete", "namespace", ns, "--wait=false"], check=False)


def _can(tools: Tools, rel: Release, verb: str, resource: str, namespace: str | None) -> bool:
    args = [tools.kubectl, "auth", "can-i", verb, resource, f"--as={rel.subject}"]
    args += ["--namespace", namespace] if namespace else ["--all-namespaces"]
    result = tools.run(args, check=False)
    answer = result.stdout.strip()
    # can-i exits 1 for "no"; anything but a yes/no answer is an error of the test itself.
    assert answer in {"yes", "no"}, result.stderr
    return answer == "yes"


def test_objects_exist(tools: Tools, release: Release) -> None:
    full = f"{release.name}-nemotron-operator"
    tools.run(
        [tools.kubectl, "-n", release.namespace, "get", "serviceaccount", release.service_account]
    )
    tools.run([tools.kubectl, "-n", release.namespace, "get", "deployment", full])
    tools.run(
        [
            tools.kubectl,
            "-n",
            release.namespace,
            "get",
            "role,rolebinding",
            f"{full}-leader-election",
        ]
    )
    tools.run([tools.kubectl, "-n", release.watched, "get", "rolebinding", full])
    tools.run([tools.kubectl, "get", "clusterrole", full, f"{full}-discovery"])
    tools.run([tools.kubectl, "get", "crd", "nemotrondeployments.serving.nemotron.dev"])
    deployment = json.loads(
        tools.run(
            [tools.kubectl, "-n", release.namespace, "get", "deployment", full, "-o", "json"]
        ).stdout
    )
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == release.service_account


ALLOWED_IN_WATCHED = [
    ("get", "nemotrondeployments.serving.nemotron.dev"),
    ("watch", "nemotrondeployments.serving.nemotron.dev"),
    ("patch", "nemotrondeployments.serving.nemotron.dev/status"),
    ("update", "nemotrondeployments.serving.nemotron.dev/finalizers"),
    ("create", "deployments.apps"),
    ("patch", "deployments.apps"),
    ("delete", "deployments.apps"),
    ("patch", "deployments.apps/scale"),
    ("create", "configmaps"),
    ("create", "services"),
    ("create", "poddisruptionbudgets.policy"),
    ("create", "persistentvolumeclaims"),
    ("create", "serviceaccounts"),
    ("create", "roles.rbac.authorization.k8s.io"),
    ("create", "rolebindings.rbac.authorization.k8s.io"),
    ("list", "pods"),
    ("watch", "pods"),
    ("get", "secrets"),
    ("create", "events"),
]

DENIED_IN_WATCHED = [
    ("list", "secrets"),
    ("watch", "secrets"),
    ("create", "secrets"),
    ("update", "secrets"),
    ("delete", "secrets"),
    ("create", "pods"),
    ("delete", "pods"),
    ("create", "pods/exec"),
    ("delete", "nemotrondeployments.serving.nemotron.dev"),
    ("create", "leases.coordination.k8s.io"),
    ("bind", "clusterroles.rbac.authorization.k8s.io"),
    ("escalate", "roles.rbac.authorization.k8s.io"),
]


@pytest.mark.parametrize(("verb", "resource"), ALLOWED_IN_WATCHED)
def test_can_in_watched_namespace(tools: Tools, release: Release, verb: str, resource: str) -> None:
    assert _can(tools, release, verb, resource, release.watched)


@pytest.mark.parametrize(("verb", "resource"), DENIED_IN_WATCHED)
def test_cannot_in_watched_namespace(
    tools: Tools, release: Release, verb: str, resource: str
) -> None:
    assert not _can(tools, release, verb, resource, release.watched)


@pytest.mark.parametrize(
    ("verb", "resource"),
    [
        ("create", "deployments.apps"),
        ("get", "secrets"),
        ("list", "pods"),
        ("create", "roles.rbac.authorization.k8s.io"),
    ],
)
def test_nothing_in_namespaces_it_does_not_serve(
    tools: Tools, release: Release, verb: str, resource: str
) -> None:
    assert not _can(tools, release, verb, resource, release.other)


@pytest.mark.parametrize(
    ("verb", "resource"),
    [
        ("delete", "nodes"),
        ("list", "nodes"),
        ("create", "clusterroles.rbac.authorization.k8s.io"),
        ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
        ("create", "customresourcedefinitions.apiextensions.k8s.io"),
        ("delete", "namespaces"),
        ("impersonate", "users"),
        ("impersonate", "serviceaccounts"),
        ("create", "certificatesigningrequests.certificates.k8s.io"),
    ],
)
def test_cannot_cluster_wide(tools: Tools, release: Release, verb: str, resource: str) -> None:
    assert not _can(tools, release, verb, resource, None)


def test_discovery_reads_cluster_wide(tools: Tools, release: Release) -> None:
    assert _can(tools, release, "watch", "customresourcedefinitions.apiextensions.k8s.io", None)
    assert _can(tools, release, "list", "namespaces", None)


def test_lease_only_its_own(tools: Tools, release: Release) -> None:
    assert _can(tools, release, "create", "leases.coordination.k8s.io", release.namespace)
    assert _can(
        tools, release, "update", "leases.coordination.k8s.io/nemotron-operator", release.namespace
    )
    assert not _can(
        tools, release, "update", "leases.coordination.k8s.io/kube-scheduler", release.namespace
    )
    assert not _can(
        tools, release, "update", "leases.coordination.k8s.io/nemotron-operator", "kube-system"
    )


def _role(name: str, namespace: str, resource: str, verbs: list[str]) -> str:
    return json.dumps(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": name, "namespace": namespace},
            "rules": [{"apiGroups": [""], "resources": [resource], "verbs": verbs}],
        }
    )


def _create_as(tools: Tools, release: Release, manifest: str) -> subprocess.CompletedProcess[str]:
    """``kubectl create --dry-run=server`` as the operator: authorization, admission and the
    RBAC escalation check run, nothing is stored."""
    return tools.run(
        [tools.kubectl, "create", "--dry-run=server", f"--as={release.subject}", "-f", "-"],
        check=False,
        stdin=manifest,
    )


def test_can_create_the_router_role(tools: Tools, release: Release) -> None:
    """The per-CR router Role (pods get/list/watch) is within what the operator holds."""
    result = _create_as(
        tools, release, _role("router-probe", release.watched, "pods", ["get", "list", "watch"])
    )
    assert result.returncode == 0, result.stderr


def test_cannot_escalate_through_a_role(tools: Tools, release: Release) -> None:
    """Creating Roles does not let the operator grant itself more: a Role listing Secrets is
    refused by the apiserver's escalation check."""
    result = _create_as(
        tools, release, _role("escalate-probe", release.watched, "secrets", ["list", "watch"])
    )
    assert result.returncode != 0
    assert "forbidden" in result.stderr.lower()


@pytest.mark.parametrize(
    "example", sorted((REPO / "examples").glob("*.yaml")), ids=lambda p: p.name
)
def test_examples_pass_the_real_crd(tools: Tools, release: Release, example: Path) -> None:
    """Server-side dry run: the CRD's OpenAPI schema and CEL rules accept every example."""
    result = tools.run(
        [tools.kubectl, "apply", "--dry-run=server", "-n", release.watched, "-f", str(example)],
        check=False,
    )
    assert result.returncode == 0, result.stderr


# --- the operator with exactly the chart's RBAC ------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _token_kubeconfig(tools: Tools, release: Release, path: Path) -> Path:
    """A kubeconfig for the local apiserver whose only credential is a token of the chart's
    ServiceAccount, so every request the operator makes is authorized as that account."""
    token = tools.run(
        [tools.kubectl, "-n", release.namespace, "create", "token", release.service_account]
    ).stdout.strip()
    admin = yaml.safe_load(tools.kubeconfig.read_text(encoding="utf-8"))
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])
    cluster = next(c for c in admin["clusters"] if c["name"] == context["context"]["cluster"])
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [
            {"name": "operator", "context": {"cluster": cluster["name"], "user": "operator"}}
        ],
        "current-context": "operator",
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _get_json(tools: Tools, *args: str) -> dict[str, object]:
    result: dict[str, object] = json.loads(
        tools.run([tools.kubectl, "get", "-o", "json", *args]).stdout
    )
    return result


def test_operator_reconciles_with_only_the_charts_rbac(
    tools: Tools, release: Release, tmp_path: Path
) -> None:
    """`nemotron-operator run` with the chart's flags, authenticated as the chart's
    ServiceAccount: it takes its Lease, reconciles a CR (server-side apply of every child, the
    router's Role and RoleBinding, status) and is refused nothing. (The end-to-end test runs the
    same command in a pod through the pod runner; this one isolates RBAC.) Another operator
    serving the whole cluster may build the children first; this one still applies each of
    them, so its log is what is checked."""
    kubeconfig = _token_kubeconfig(tools, release, tmp_path / "operator-kubeconfig")
    whoami = tools.run([tools.kubectl, f"--kubeconfig={kubeconfig}", "auth", "whoami"]).stdout
    assert release.subject in whoami
    log_path = tmp_path / "operator.log"
    identity = f"chart-rbac-{release.name}"
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "POD_NAME": identity}
    args = [
        sys.executable, "-m", "nemotron_operator", "run", "--verbose",
        f"--namespace={release.watched}", f"--lease-namespace={release.namespace}",
        "--lease-name=nemotron-operator", "--bind-host=127.0.0.1",
        f"--health-port={_free_port()}", f"--metrics-port={_free_port()}",
    ]  # fmt: skip
    with log_path.open("w", encoding="utf-8") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)

    def log_text() -> str:
        return log_path.read_text(encoding="utf-8", errors="replace")

    try:

        def holder() -> bool:
            assert proc.poll() is None, f"operator exited:\n{log_text()[-3000:]}"
            lease = json.loads(
                tools.run(
                    [tools.kubectl, "-n", release.namespace, "get", "lease", "nemotron-operator",
                     "-o", "json"],
                    check=False,
                ).stdout or "{}"
            )  # fmt: skip
            return bool(lease.get("spec", {}).get("holderIdentity") == identity)

        wait_for(holder, 90, interval=0.5, what="the operator holding its Lease")
        tools.run(
            [
                tools.kubectl,
                "-n",
                release.watched,
                "apply",
                "-f",
                str(REPO / "examples/nano-4b.yaml"),
            ]
        )

        def children() -> dict[str, list[str]] | None:
            listing = _get_json(
                tools, "-n", release.watched, "deploy,svc,cm,pdb,pvc,sa,role,rolebinding",
                "-l", "serving.nemotron.dev/deployment=nano-4b",
            )  # fmt: skip
            kinds: dict[str, list[str]] = {}
            for item in listing["items"]:  # type: ignore[attr-defined]
                kinds.setdefault(item["kind"], []).append(item["metadata"]["name"])
            wanted = {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget",
                      "PersistentVolumeClaim", "ServiceAccount", "Role", "RoleBinding"}  # fmt: skip
            return kinds if wanted <= set(kinds) else None

        kinds = wait_for(children, 90, interval=1.0, what="the CR's children")
        assert sorted(kinds["Deployment"]) == ["nano-4b", "nano-4b-off", "nano-4b-on"]
        # This operator's own reconcile of the CR finished (debug line of controller.handlers).
        wait_for(lambda: "reconciled:" in log_text(), 90, interval=0.5, what="a reconcile")
        cr = _get_json(tools, "-n", release.watched, "nemotrondeployment", "nano-4b")
        status = cr.get("status") or {}
        assert str(status.get("endpoint", "")).startswith(  # type: ignore[union-attr]
            f"http://nano-4b.{release.watched}.svc"
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        tools.run(
            [tools.kubectl, "-n", release.watched, "delete", "nemotrondeployment", "nano-4b",
             "--wait=false"],
            check=False,
        )  # fmt: skip
    # An HTTP 403 status or a Forbidden reason -- not any "403" (a log timestamp's milliseconds).
    refused = [
        line
        for line in log_text().splitlines()
        if re.search(r"HTTP/1\.1 403\b|\b403 Forbidden\b|\bForbidden\b|\bforbidden:", line)
    ]
    assert not refused, "the operator was refused:\n" + "\n".join(refused[:20])
