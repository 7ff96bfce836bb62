"""A Kubernetes API server for tests and benchmarks: the real REST protocol over HTTP.

Kubernetes cannot run where canary's tests run, so they carry this server: discovery, CRUD of
built-in kinds and of any CRD applied to it, resourceVersions and conflicts, merge / JSON /
strategic patches, status and scale subresources, selectors, watches with bookmarks and
410 Gone, server-side dry runs, CRD schema validation, fault injection. `kubectl` and the
official `kubernetes` client both work against it. See docs/testing.md.
(`canary.testing.telemetry`, the mesh telemetry simulator, is a module of its own.)
"""

import importlib.util

_EXTRA = ("aiohttp", "fastjsonschema", "jsonpatch", "jsonschema")
_MISSING = [module for module in _EXTRA if importlib.util.find_spec(module) is None]
if _MISSING:
    raise ImportError(
        f"canary.testing needs {', '.join(_MISSING)}, which the runtime install leaves out: "
        "pip install 'canary-delivery[testing]'"
    )

from canary.testing.apiserver import ApiServer  # noqa: E402
from canary.testing.errors import ApiError  # noqa: E402
from canary.testing.faults import Fault  # noqa: E402

__all__ = ["ApiError", "ApiServer", "Fault"]
