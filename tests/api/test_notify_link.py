"""The link a waiting message carries (`NotifyConfig.api_url`) is a URL the API serves: with a
read token it answers the rollout, its status and its latest check numbers."""

from __future__ import annotations

import httpx
from api_support import READ, Served, progressing

from canary.notify import NotifyConfig


def test_the_rollout_link_is_served_by_the_api(served: Served) -> None:
    progressing(served.workspace)
    link = NotifyConfig(api_url=served.url + "/").rollout_url("test", "podinfo")
    assert link == f"{served.url}/api/v1/namespaces/test/rollouts/podinfo"
    answer = httpx.get(link, headers=READ, timeout=10)
    assert answer.status_code == 200
    body = answer.json()
    assert (body["namespace"], body["name"]) == ("test", "podinfo")
    assert body["status"]["checks"][0]["canary"] == {
        "requests": 1200,
        "failures": 18,
        "value": 1.5,
        "quantile": None,
        "quantileLow": None,
        "quantileHigh": None,
    }
    assert httpx.get(link, timeout=10).status_code == 401, "a token is needed"
    assert NotifyConfig().rollout_url("test", "podinfo") is None
