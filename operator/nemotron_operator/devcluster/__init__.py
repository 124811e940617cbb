"""The local real control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok with
simulated GPU nodes) and the pod runner that turns pods into local processes."""
