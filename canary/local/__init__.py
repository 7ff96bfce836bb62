"""Local mode: HAProxy, Prometheus and two versions of a service on one machine."""
