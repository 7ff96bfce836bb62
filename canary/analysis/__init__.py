"""Turning observations into verdicts: samples, judges (and, next, metric providers)."""
