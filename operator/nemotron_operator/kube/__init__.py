"""A thin async Kubernetes client (``kube.client``) for the controller: server-side apply,
get/list/create/delete, merge patches of subresources. The one place that talks HTTP to the
apiserver on the controller's behalf (kopf keeps its own client for watching)."""
