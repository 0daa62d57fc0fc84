"""The Kubernetes operator (TaskDag CRD, worker autoscaling): not built yet, see issue 3."""
