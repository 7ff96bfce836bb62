"""A small Kubernetes API server for tests, speaking the real REST protocol over HTTP.

    with ApiServer() as api:
        api.kubeconfig(tmp_path / "kubeconfig")   # for kubectl --kubeconfig and the client
        api.apply_file("charts/canary/crds/rollouts.canary.dev.yaml")
        ...
        api.set_deployment_ready("test", "podinfo")

It runs in a thread of its own (an aiohttp server on its own event loop), so synchronous
tests, the official client and `kubectl` subprocesses all talk to it over HTTP while the test
also reaches the store directly through the helpers below. See docs/testing.md.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import yaml
from aiohttp import web

from canary.testing.admission import User
from canary.testing.faults import Fault, Faults
from canary.testing.jsontree import clone
from canary.testing.resources import Registry, ResourceType
from canary.testing.routing import Settings, make_app
from canary.testing.selectors import selector
from canary.testing.storage import Store, as_version

Json = dict[str, Any]


class ApiServer:
    """The test API server; start it with `with ApiServer() as api:` or `start()`/`stop()`.

    history_size: how many events are kept for watches that resume from a resourceVersion;
        a watch from an older one gets 410 Gone (0 makes every resume from the past fail).
    bookmark_interval: seconds between BOOKMARK events on watches that allow them.
    """

    def __init__(
        self,
        *,
        history_size: int = 1000,
        bookmark_interval: float = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.registry = Registry()
        self.store = Store(self.registry, history_size)
        self.faults = Faults()
        self._settings = Settings(self.store, self.faults, bookmark_interval)
        self._host, self._port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # --- life cycle --------------------------------------------------------------------------

    def start(self) -> Self:
        if self._thread is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        self._port = sock.getsockname()[1]
        self._settings.address = f"{self._host}:{self._port}"
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        async def serve() -> None:
            runner = web.AppRunner(
                make_app(self._settings),
                handler_cancellation=True,
                shutdown_timeout=1.0,
                access_log=None,
            )
            await runner.setup()
            await web.SockSite(runner, sock).start()
            self._runner = runner

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(serve())
            except BaseException as exc:  # reported to start()'s caller
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="test-apiserver", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise RuntimeError("the test API server did not start") from failure[0]
        return self

    def stop(self) -> None:
        loop, thread, runner = self._loop, self._thread, self._runner
        if loop is None or thread is None:
            return
        self.stop_watches()

        async def shutdown() -> None:
            if runner is not None:
                await runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        self._loop = self._thread = self._runner = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}"

    # --- clients -----------------------------------------------------------------------------

    def add_user(self, name: str, groups: tuple[str, ...] = ("system:authenticated",)) -> str:
        """A bearer token that authenticates as ``name`` (see canary.testing.admission)."""
        return self._settings.identities.add(User(name, groups))

    def install_admission_policies(self, docs: Iterable[Json]) -> None:
        """Evaluate these ValidatingAdmissionPolicies on every create and update they match."""
        self._settings.admission.install(list(docs))

    def kubeconfig(
        self, path: str | Path, namespace: str = "default", token: str = "canary-test"
    ) -> Path:
        """Write a kubeconfig for this server (plain HTTP; ``token`` from `add_user` to act as
        that user, else the default user) and return its path."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "canary-test", "cluster": {"server": self.url}}],
            "users": [{"name": "canary-test", "user": {"token": token}}],
            "contexts": [
                {
                    "name": "canary-test",
                    "context": {
                        "cluster": "canary-test",
                        "user": "canary-test",
                        "namespace": namespace,
                    },
                }
            ],
            "current-context": "canary-test",
        }
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return target

    @property
    def requests(self) -> list[tuple[str, str, int]]:
        """(method, path with query, status code) of every request answered, in order."""
        return self._settings.requests

    @property
    def requests_by_agent(self) -> list[tuple[str, str, str, int]]:
        """(User-Agent, method, path with query, status code) of every request answered."""
        settings = self._settings
        return [(a, *r) for a, r in zip(settings.agents, settings.requests, strict=False)]

    # --- the store, directly (no HTTP) -------------------------------------------------------

    def _type(self, api_version: str, kind: str) -> ResourceType:
        return self.registry.find_kind(api_version, kind)

    def create(self, obj: Json) -> Json:
        rt = self._type(obj["apiVersion"], obj["kind"])
        return self.store.create(rt, (obj.get("metadata") or {}).get("namespace", "default"), obj)[
            0
        ]

    def apply(self, obj: Json) -> Json:
        """Create `obj`, or replace the stored one with it (its status kept, as a PUT would)."""
        rt = self._type(obj["apiVersion"], obj["kind"])
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace", "default") if rt.namespaced else ""
        with self.store.lock:
            current = self.store.find(rt.key, namespace, meta.get("name", ""))
            if current is None:
                return self.store.create(rt, namespace, obj)[0]
            body = clone(obj)
            body["metadata"].pop("resourceVersion", None)
            return self.store.update(rt, namespace, meta["name"], body)[0]

    def apply_file(self, *paths: str | Path) -> list[Json]:
        """`apply` every document of the YAML files (CRDs first within a file's order)."""
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        docs = [
            d for p in paths for d in yaml.load_all(Path(p).read_text(encoding="utf-8"), loader)
        ]
        return self.apply_all(d for d in docs if d)

    def apply_all(self, objs: Iterable[Json]) -> list[Json]:
        return [self.apply(o) for o in objs]

    def get(self, api_version: str, kind: str, name: str, namespace: str = "default") -> Json:
        rt = self._type(api_version, kind)
        return self.store.get(rt, namespace, name)

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[Json]:
        rt = self._type(api_version, kind)
        return self.store.select(rt, namespace, selector(label_selector, None))[0]

    def delete(self, api_version: str, kind: str, name: str, namespace: str = "default") -> Json:
        rt = self._type(api_version, kind)
        return self.store.delete(rt, namespace, name)

    def update_status(
        self, api_version: str, kind: str, name: str, status: Json, namespace: str = "default"
    ) -> Json:
        """Replace the status of an object, as its controller would (through `/status`)."""
        rt = self._type(api_version, kind)
        return self.store.update(rt, namespace, name, {"status": status}, "status")[0]

    def create_namespace(self, name: str) -> Json:
        return self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    # --- what controllers would do -----------------------------------------------------------

    def set_deployment_ready(self, namespace: str, name: str, ready: int | None = None) -> Json:
        """Write the status the Deployment controller would once `ready` pods are up (all the
        replicas when None): observedGeneration, replicas, updated/ready/available counts and
        the Available/Progressing conditions. Nothing else ever writes a Deployment's status."""
        rt = self._type("apps/v1", "Deployment")
        with self.store.lock:
            deployment = self.store.get(rt, namespace, name)
            wanted = deployment["spec"].get("replicas", 1)
            up = wanted if ready is None else min(ready, wanted)
            counts = {
                "replicas": wanted,
                "updatedReplicas": wanted,
                "readyReplicas": up,
                "availableReplicas": up,
            }
            status: Json = {"observedGeneration": deployment["metadata"].get("generation", 1)}
            status.update({k: v for k, v in counts.items() if v})  # zeros are omitted, as real
            if wanted - up:
                status["unavailableReplicas"] = wanted - up
            stamp = deployment["metadata"]["creationTimestamp"]
            complete = up >= wanted
            status["conditions"] = [
                {
                    "type": "Available",
                    "status": "True" if complete else "False",
                    "reason": "MinimumReplicasAvailable"
                    if complete
                    else "MinimumReplicasUnavailable",
                    "lastUpdateTime": stamp,
                    "lastTransitionTime": stamp,
                },
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                    "lastUpdateTime": stamp,
                    "lastTransitionTime": stamp,
                },
            ]
            return self.store.update(rt, namespace, name, {"status": status}, "status")[0]

    # --- faults, history, watches ------------------------------------------------------------

    def fail(
        self, path: str, code: int = 500, times: int | None = 1, method: str | None = None
    ) -> Fault:
        """The next `times` requests whose path matches the regex `path` fail with `code`."""
        return self.faults.fail(path, code, times, method)

    def delay(
        self, seconds: float, path: str = "", times: int | None = None, method: str | None = None
    ) -> Fault:
        """Requests whose path matches the regex `path` are answered `seconds` late."""
        return self.faults.delay(seconds, path, times, method)

    @property
    def history_size(self) -> int:
        return self.store.history_size

    @history_size.setter
    def history_size(self, size: int) -> None:
        self.store.history_size = size

    def compact(self) -> None:
        """Forget every past event: watches resuming from an earlier version get 410 Gone."""
        self.store.compact()

    @property
    def resource_version(self) -> int:
        return self.store.resource_version

    def stop_watches(self) -> int:
        """End every open watch stream now (as a server restart would); returns how many."""
        watchers = list(self._settings.watchers)
        for watcher in watchers:
            watcher.stop()
        return len(watchers)

    def raw(self, api_version: str, kind: str, name: str, namespace: str = "default") -> Json:
        """The stored object itself at its storage version (a copy)."""
        rt = self._type(api_version, kind)
        found = self.store.find(rt.key, namespace if rt.namespaced else "", name)
        if found is None:
            raise KeyError(f"{kind} {namespace}/{name}")
        return as_version(found, rt)
