"""Pinned versions of the upstream programs the local cluster is built from.

One place, so the binary cache key, the build and the docs agree. Kubernetes 1.36 supports
etcd 3.6; kwok 0.8 and helm 3.22 build with the same Go toolchain (go 1.26).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KUBERNETES_VERSION", "PROGRAMS", "Program"]


@dataclass(frozen=True)
class Program:
    """An upstream Go program: the module that builds it, at which version, from which package."""

    name: str
    group: str  # programs of one group build together from one pinning module
    module: str
    version: str
    package: str
    # True when the module's go.mod replaces sibling modules with local paths (``=> ../api``),
    # which ``go install pkg@version`` refuses: such programs build from a pinning module whose
    # own replace lines map each sibling to its published version.
    needs_pinning_module: bool = False
    # ``-X`` link flags (package.variable -> value), e.g. the version a binary reports.
    link_vars: tuple[tuple[str, str], ...] = ()
    # Bumped when the build of the same version changes (flags), so caches are not reused.
    revision: int = 1

    @property
    def cache_key(self) -> str:
        suffix = f"-r{self.revision}" if self.revision > 1 else ""
        return f"{self.group}-{self.version}{suffix}"


KUBERNETES_VERSION = "v1.36.3"

# What Kubernetes' own build stamps into its binaries; without it they report v0.0.0-master,
# which tools that check the server version (helm's kubeVersion, kubectl version) reject.
_K8S_VERSION_VARS = tuple(
    (f"{pkg}.{var}", value)
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
    for var, value in (
        ("gitVersion", KUBERNETES_VERSION),
        ("gitMajor", KUBERNETES_VERSION[1:].split(".")[0]),
        ("gitMinor", KUBERNETES_VERSION[1:].split(".")[1]),
        ("gitTreeState", "clean"),
        ("buildDate", "1970-01-01T00:00:00Z"),
    )
)

PROGRAMS: dict[str, Program] = {
    name: Program(
        name=name,
        group="kubernetes",
        module="k8s.io/kubernetes",
        version=KUBERNETES_VERSION,
        package=f"k8s.io/kubernetes/cmd/{name}",
        needs_pinning_module=True,
        link_vars=_K8S_VERSION_VARS,
        revision=2,
    )
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
}
PROGRAMS["etcd"] = Program(
    name="etcd",
    group="etcd",
    module="go.etcd.io/etcd/server/v3",
    version="v3.6.16",
    package="go.etcd.io/etcd/server/v3",
    needs_pinning_module=True,
)
PROGRAMS["kwok"] = Program(
    "kwok", "kwok", "sigs.k8s.io/kwok", "v0.8.0", "sigs.k8s.io/kwok/cmd/kwok"
)
PROGRAMS["helm"] = Program("helm", "helm", "helm.sh/helm/v3", "v3.22.0", "helm.sh/helm/v3/cmd/helm")
