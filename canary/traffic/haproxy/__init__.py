"""HAProxy as the router of local mode: a config rendered once, weights and A/B maps changed
at run time through the runtime API (no reloads)."""
