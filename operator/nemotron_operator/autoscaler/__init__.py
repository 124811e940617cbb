"""Queue-depth autoscaling: the pure policy, the discrete-event simulator and the loop that
applies decisions through the ``/scale`` subresource."""
