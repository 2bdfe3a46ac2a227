"""The blocking API cannot drift from the asyncio one: same public names, same parameters.

Every public method and attribute of each asyncio class must exist on its `lnc_client.sync`
twin with the same parameters (names, kinds, defaults; the types differ: awaitables become
results), `async for` / `async with` must have `for` / `with`, and every exception is listed
in `EXCLUDED` with the reason that docs/client.md gives.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

import pytest

import lnc_client
from lnc_client import serde, sync
from lnc_client.streaming import StreamingConsumer

PAIRS: list[tuple[type, type]] = [
    (lnc_client.Producer, sync.Producer),
    (lnc_client.StandaloneConsumer, sync.StandaloneConsumer),
    (StreamingConsumer, sync.StreamingConsumer),
    (lnc_client.LanceClient, sync.LanceClient),
    (lnc_client.SendHandle, sync.SendHandle),
    (serde.SerializingProducer, sync.SerializingProducer),
    (serde.DeserializingConsumer, sync.DeserializingConsumer),
]

POOL = "no `pool=`: a `ConnectionPool` or `ClusterClient` is an asyncio object"
EXCLUDED: dict[tuple[str, str], str] = {
    # (class name, "method" or "method(parameter)"): the reason, as docs/client.md gives it.
    ("Producer", "__init__(pool)"): POOL,
    ("StandaloneConsumer", "__init__(pool)"): POOL,
    ("StandaloneConsumer", "connect(pool)"): POOL,
    ("StreamingConsumer", "__init__(pool)"): POOL,
    ("StreamingConsumer", "connect(pool)"): POOL,
    ("LanceClient", "__init__(pool)"): POOL,
    ("SendHandle", "__init__"): "`send_handle()` makes the handles",
}
CLIENT_MD = Path(__file__).parents[2] / "docs" / "client.md"

ASYNC_PROTOCOLS = {"__aiter__": "__iter__", "__aenter__": "__enter__", "__await__": "wait"}


def public_names(cls: type) -> set[str]:
    names = {name for name in dir(cls) if not name.startswith("_")}
    return names | {"__init__"} | {name for name in ASYNC_PROTOCOLS if hasattr(cls, name)}


def parameters(function: Callable[..., object]) -> list[tuple[str, object, object]]:
    return [
        (p.name, p.kind, p.default)
        for p in inspect.signature(function).parameters.values()
        if p.name != "self"
    ]


@pytest.mark.parametrize(("async_cls", "sync_cls"), PAIRS, ids=lambda cls: cls.__qualname__)
def test_the_blocking_class_has_every_public_method_of_the_asyncio_one(
    async_cls: type, sync_cls: type
) -> None:
    name = async_cls.__name__
    missing = []
    for attribute in sorted(public_names(async_cls)):
        twin = ASYNC_PROTOCOLS.get(attribute, attribute)
        if (name, attribute) in EXCLUDED:
            continue
        if not hasattr(sync_cls, twin):
            missing.append(twin)
            continue
        ours, theirs = getattr(async_cls, attribute), getattr(sync_cls, twin)
        if twin != attribute or not callable(ours) or isinstance(ours, type):
            continue
        expected = [p for p in parameters(ours) if (name, f"{attribute}({p[0]})") not in EXCLUDED]
        assert parameters(theirs) == expected, f"{name}.{attribute}"
    assert missing == [], f"lnc_client.sync.{name} lacks {missing}"


def test_every_exclusion_is_still_needed_and_documented() -> None:
    classes = {cls.__name__: (cls, twin) for cls, twin in PAIRS}
    client_md = " ".join(CLIENT_MD.read_text(encoding="utf-8").split())
    for (name, item), reason in EXCLUDED.items():
        assert reason in client_md, (name, item)
        async_cls, sync_cls = classes[name]
        method, _, parameter = item.partition("(")
        if not parameter:
            assert method in public_names(async_cls), (name, item)
            continue
        parameter = parameter.rstrip(")")
        assert parameter in [p[0] for p in parameters(getattr(async_cls, method))], (name, item)
        assert parameter not in [p[0] for p in parameters(getattr(sync_cls, method))], (name, item)
