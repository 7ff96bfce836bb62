"""The `canary` command (also installed as `kubectl-canary`)."""
