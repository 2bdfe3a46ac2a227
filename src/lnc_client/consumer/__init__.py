"""`StandaloneConsumer`: reads a topic with Fetch, window by window, and tracks its offset.

Data flow of one `poll()` (the modules of this package: `fetcher` reads, `commits` saves
offsets, `result` holds what is handed out, `facade` is the public class):

1. At most one fetch is in flight: a task that sends `Fetch(topic, position, size)` where
   `position = current_offset + len(tail)` and `size` is `max_fetch_bytes`, grown to fit a
   record whose header is already in the tail (a record larger than the window never stalls;
   the next window shrinks back). When the last known high-water mark could be reached by the
   window, a tail fetch (`u64::MAX`, PROTOCOL.md §5) is pipelined right behind it, so `lag` is
   measured against the server's real end, never faked.
2. The server answers with a raw window that may cut records anywhere.
   `decode_stream(tail + window)` returns the complete records and the bytes they use (opening
   the producer's LZ4 envelopes); the rest becomes the new tail. `current_offset` advances by
   exactly the bytes of the records delivered, so windows as small as 7 bytes lose nothing.
3. A full window starts the next fetch at once (`prefetch`), so the server works while the caller
   handles the records. An empty window means nothing new: the next fetch waits an adaptive
   pause, from 0.1 ms up to an eighth of the usual gap between records (at least 0.4 ms) while
   records flow and up to `poll_interval_ms` when the topic is idle (`fetcher.py`). CatchingUp
   (0x12: the offset lies past the end) backs off `catching_up_backoff_s`, doubling, and
   `poll()` raises `ServerCatchingUpError` once it has lasted `catching_up_timeout_s`.

`poll(timeout)` waits for the in-flight fetch without ever cancelling it: a poll that times out
leaves the fetch running and the next poll takes its answer, so a slow server can never shift
answers onto the wrong request or deliver a record twice (lnc-client 0.2.9's D6). A lost
connection (or a server restart) drops the tail and resumes from `current_offset` on a new
connection. `seek*`/`rewind` are synchronous: they drop the tail and any fetch in flight.

Offsets are saved to an `OffsetStore` by `commit()`, and by auto-commit every
`auto_commit_interval_s` inside `poll()` (before it fetches, so everything the caller received
from the previous polls is committed: at-least-once delivery) and on `close()`. The consumer id
used with the server's Subscribe/CommitOffset is FNV-1a 64 of the UTF-8 consumer name
(`consumer_id_for`), the same in every process and on every machine.
"""

import logging

from lnc_client.consumer.facade import StandaloneConsumer
from lnc_client.consumer.result import PollResult, consumer_id_for

__all__ = ["PollResult", "StandaloneConsumer", "consumer_id_for"]

log = logging.getLogger(__name__)
"""The `lnc_client.consumer` logger (lnc-client 0.2.9's `consumer.log`)."""
