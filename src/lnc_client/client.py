"""`lnc_client.client`: the admin client under lnc-client 0.2.9's module name, with its cache.

`lnc_client.client.LanceClient` is `lnc_client.LanceClient` plus what 0.2.9 code relies on:

* a name -> `TopicInfo` cache, filled by every topic this client creates or looks up;
  `ensure_topic` and `resolve_topic_id` answer from it without a request;
* `resolve_topic_id(name)` creates a missing topic (`ensure_topic_default`), as in 0.2.9;
* `ensure_topic` also looks the name up after a permanent error (another client may have made
  the topic), and after its last attempt raises a `LanceError` that says "after N attempts".

A cached id goes stale if the topic is deleted and created again elsewhere; new code should
use `lnc_client.LanceClient`, which resolves names on every call. Data flow: as in
`lnc_client.admin`; the cache sits in front of it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from lnc_client import admin
from lnc_client.config import Addresses, ClientConfig
from lnc_client.errors import LanceError, TopicAlreadyExistsError, validate_topic_name
from lnc_client.protocol.control import RetentionInfo, TopicInfo

__all__ = ["LanceClient"]

log = logging.getLogger(__name__)
"""The `lnc_client.client` logger (lnc-client 0.2.9's `client.log`)."""


def _int_field(data: Mapping[str, object], *keys: str, default: int = 0) -> int:
    for key in keys:
        value = data.get(key)
        if type(value) is int:
            return value
    return default


class LanceClient(admin.LanceClient):
    """`lnc_client.LanceClient` with lnc-client 0.2.9's topic cache and name semantics.

    Args:
        address: `host:port`, `[v6]:port`, a bare host, a list of them, or the `ClientConfig`.
        config: Timeouts, TLS, auth token and reconnect policy (defaults if None).
    """

    def __init__(
        self, address: Addresses | ClientConfig | None = None, config: ClientConfig | None = None
    ) -> None:
        super().__init__(address, config)
        self._topic_cache: dict[str, TopicInfo] = {}

    @staticmethod
    def _parse_topic_info(data: object, fallback_name: str = "") -> TopicInfo:
        """Build a `TopicInfo` from a topic JSON object, leniently (0.2.9's parser).

        Accepts `id` or `topic_id`, `name` or `topic_name`, and an optional `retention`
        object; anything missing gets a default, and a non-object gives topic 0.
        """
        if not isinstance(data, Mapping):
            return TopicInfo(id=0, name=fallback_name)
        name = data.get("name", data.get("topic_name"))
        retention = data.get("retention")
        return TopicInfo(
            id=_int_field(data, "id", "topic_id"),
            name=name if isinstance(name, str) else fallback_name,
            created_at=_int_field(data, "created_at"),
            topic_epoch=_int_field(data, "topic_epoch", default=1),
            retention=RetentionInfo(
                _int_field(retention, "max_age_secs"), _int_field(retention, "max_bytes")
            )
            if isinstance(retention, Mapping)
            else None,
        )

    def _cache_topic(self, info: TopicInfo) -> None:
        """Remember `info` under its name (a topic without a name is not cached)."""
        if info.name:
            self._topic_cache[info.name] = info

    async def _recv_topic_response(self, name: str) -> Mapping[str, object]:
        """Create the topic `name` and return the server's answer as its JSON object."""
        info = await super().create_topic_once(name)
        retention = info.retention
        return {
            "id": info.id,
            "name": info.name,
            "created_at": info.created_at,
            "topic_epoch": info.topic_epoch,
            "retention": None
            if retention is None
            else {"max_age_secs": retention.max_age_secs, "max_bytes": retention.max_bytes},
        }

    async def create_topic_once(self, name: str) -> TopicInfo:
        """Create a topic; fail if one of that name exists. The topic is cached.

        Raises:
            InvalidTopicNameError: The name breaks the server's rule (nothing is sent).
            TopicAlreadyExistsError: The topic exists (standalone server).
        """
        validate_topic_name(name)
        info = self._parse_topic_info(await self._recv_topic_response(name), fallback_name=name)
        self._cache_topic(info)
        return info

    async def ensure_topic(
        self,
        name: str,
        max_attempts: int = 20,
        base_backoff_ms: int = 500,
        *,
        timeout: float | None = None,
    ) -> TopicInfo:
        """Return the cached topic, or create it (see `lnc_client.LanceClient.ensure_topic`).

        Raises:
            InvalidTopicNameError: The name breaks the server's rule (nothing is sent).
            LanceError: A permanent error for a topic that does not exist either, or
                "... after N attempts" once the attempts are used up.
        """
        validate_topic_name(name)
        cached = self._topic_cache.get(name)
        if cached is not None:
            return cached
        try:
            info = await super().ensure_topic(name, max_attempts, base_backoff_ms, timeout=timeout)
        except TopicAlreadyExistsError:
            raise
        except LanceError as error:
            existing = await self._find_topic(name)
            if existing is not None:
                info = existing
            elif error.retryable:
                raise LanceError(
                    f"ensure_topic({name!r}) failed after {max_attempts} attempts: {error}"
                ) from error
            else:
                raise
        self._cache_topic(info)
        return info

    async def resolve_topic_id(self, name: str) -> int:
        """Return the id of the topic `name`, from the cache or by `ensure_topic_default`."""
        cached = self._topic_cache.get(name)
        if cached is not None:
            return cached.id
        return (await self.ensure_topic_default(name)).id

    async def _find_topic(self, name: str) -> TopicInfo | None:
        found = await super()._find_topic(name)
        if found is not None:
            self._cache_topic(found)
        return found
