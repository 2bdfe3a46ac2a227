"""`Producer`: batching, pipelined, reconnecting ingest with exact per-batch outcomes.

Data flow (each step is a module of this package: `accumulator`, `window`, `facade`; `batch`
holds the values they share, `topics` the topic-name cache).

1. **Append** (`send_async`, `send_nowait`, `send`, `send_handle`): the record's TLV bytes
   (`[type u8][length u32 LE][value]`) are appended to its topic's *open batch* (one
   `bytearray`). Nothing per record is allocated besides those bytes: no future, no task, no
   await that suspends unless the buffer is full. The batch id is assigned when the batch opens,
   so `send_async` can return the id its record will travel in.
2. **Seal**: a batch is sealed when it reaches `batch_size` bytes, when its linger timer fires
   (armed once per batch with `loop.call_later(linger_ms)`), when someone awaits it with `send`
   (sealed at the end of the current loop iteration, so concurrent senders still share it),
   or on `flush`/`close`. Linger is Nagle-style, so it never delays a lone record: a batch that
   opens while nothing is queued or in flight is sealed at the end of the current loop
   iteration; records that come while batches are in flight gather in their open batch, which
   is sealed when the last in-flight batch is acked (or at its linger, whichever is first). A
   linger that expires while the window is full (or batches wait for it) does not seal: the
   batch becomes *due* and keeps taking records until a window slot frees, so a slow server or
   many topics make fuller batches, not more of them. Sealing makes one payload (optionally one
   LZ4 envelope record, `protocol.records.compress_records`, when that is smaller) and queues
   the batch.
3. **Send**: queued batches are written with one `Connection.send_ingest` each while fewer than
   `max_pending_acks` are in flight. Batches to resend go first, in batch-id order.
4. **Settle**: the connection calls back once per batch: after its Ack, or with an error. The
   ErrorResponse is attributed exactly by the connection's ack barrier (PROTOCOL.md §2.7: error
   frames carry no batch id). An Ack frees the window slot and the buffer memory and resolves the
   batch's one shared future (created only if someone waits: `send`, a `SendHandle`, `flush`) and
   its callbacks. A non-retryable error fails just that batch, keeping the server's text. A
   retryable error or a lost connection puts the batch back to be resent with the **same batch
   id** after a reconnect (or after a backoff, for a retryable error frame), until its
   `delivery_timeout_s` runs out; with `auto_reconnect=False` it fails instead.

A background *sender* task does only what may wait: reconnecting (backoff, seeds, auth), waiting
until a peer that stopped reading accepts data again, holding sends after Backpressure frames,
and housekeeping (ack timeouts reset the connection; batches past their delivery timeout fail).

Batch ids are the producer's own (1, 2, 3, ... per producer, kept on resends). Its connections
carry nothing but its ingests and its own ListTopics/CreateTopic requests, never an Unsubscribe,
so no Ack can be mistaken for an Unsubscribe's (`Connection.send_ingest` would refuse such an
id with `ValueError`; it cannot happen here).

Delivery: an Ack means the server has the batch durably (fsync). A batch that is resent after a
lost connection or an ack timeout may have been written already: the server does not detect
duplicate batch ids, so those records can appear twice (at-least-once; docs/client.md).
"""

import logging

from lnc_client.producer.batch import ProducerMetrics, SendAck, SendCallback, SendHandle
from lnc_client.producer.facade import Producer

__all__ = ["Producer", "ProducerMetrics", "SendAck", "SendCallback", "SendHandle"]

log = logging.getLogger(__name__)
"""The `lnc_client.producer` logger (lnc-client 0.2.9's `producer.log`)."""
