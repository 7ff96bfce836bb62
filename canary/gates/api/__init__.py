"""The incoming API that CI/CD pipelines and the `canary` CLI use.

- `RolloutStore` (`store.py`): where rollouts are read and commands are left for the shell
  that ticks them; `FileStore` (`filestore.py`) backs it with the local runner's state files.
- `create_app` (`app.py`): the FastAPI application; `serve.py` runs it with uvicorn.
- `TokenSet` (`auth.py`): bearer tokens with a ``read`` or ``operate`` scope.
"""

from canary.gates.api.models import RolloutView, WaitOutcome, WaitResult
from canary.gates.api.store import RolloutNotFoundError, RolloutStore, StoreError

__all__ = [
    "RolloutNotFoundError",
    "RolloutStore",
    "RolloutView",
    "StoreError",
    "WaitOutcome",
    "WaitResult",
]
