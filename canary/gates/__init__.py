"""Gates: the outgoing webhooks a rollout calls at its points, and the incoming API.

Outgoing webhooks: `canary.gates.webhooks` (the shells' entry point), built from
`payload` (what is sent), `signing` (how receivers trust it), `secret_source` (where the
signing keys come from) and `caller` (HTTP with timeouts, retries and deadlines).
"""
