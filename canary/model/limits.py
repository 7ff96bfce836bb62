"""Upper bounds on what a tenant object may hold, so none can make the controller do unbounded
work (docs/security.md). Each bound is in the pydantic models and, through them, in the CRD
schemas (``maxLength``, ``maxItems``, ``maxProperties``), so the API server refuses an object
that breaks it before the controller sees it; the controller checks again (a CRD installed from
an older chart may lack a bound).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

MAX_NAME = 63
"""Characters in a Rollout's, check's or webhook's name: the Services and files derived from a
name (``<name>-primary``, ``NAME.state.json``) must fit the 63-character DNS label."""

MAX_QUERY = 4096
"""Characters of a PromQL query as written, and of a policy variable's value."""

MAX_EXPANDED_QUERY = 16384
"""Characters of a query once a policy's variables are written in."""

MAX_VARIABLES = 32
"""Variables of one policy."""

MAX_EXPANSION_PASSES = 8
"""How deep policy variables may refer to each other (a variable using a variable ...)."""

MAX_CHECKS = 32
"""Checks of a policy, or inline checks of a Rollout."""

MAX_POLICIES = 16
"""Policies a Rollout names."""

MAX_WEBHOOKS = 32
"""Gate webhooks of a Rollout."""

MAX_CHANNELS = 16
"""Notification channels of a Rollout."""

MAX_METADATA_ENTRIES = 32
"""Entries of a webhook's ``metadata``."""

MAX_TEXT = 1024
"""Characters of a short free text: a description, a metadata value, a header value."""

MAX_URL = 2048
"""Characters of a URL."""

MAX_DURATION_SECONDS = 366 * 24 * 3600.0
"""The longest duration (a year): longer ones are typos, and overflow datetime arithmetic."""

MAX_DURATION_TEXT = 32
"""Characters of a duration string such as ``1h30m``."""

MAX_COUNT = 1_000_000_000
"""The largest count a field takes (requests, seconds): bigger integers are refused."""

ShortText = Annotated[str, Field(max_length=MAX_TEXT)]
Query = Annotated[str, Field(min_length=1, max_length=MAX_QUERY)]
Url = Annotated[str, Field(max_length=MAX_URL, pattern=r"^https?://[^\s]+$")]
