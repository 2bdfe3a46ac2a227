"""`lnc_client.tlv`: the TLV record API under the module name lnc-client 0.2.9 used.

The implementation lives in `lnc_client.protocol.records` (sans-I/O); this module re-exports its
public names so that `from lnc_client.tlv import TlvRecord, RecordType` keeps working.
"""

from lnc_client.protocol.records import (
    EXTENDED_HEADER_SIZE,
    RECORD_HEADER_SIZE,
    CompressionCodec,
    RecordType,
    TlvRecord,
    compress_records,
    decode_records,
    decode_stream,
    encode_records,
    encode_values,
)

__all__ = [
    "EXTENDED_HEADER_SIZE",
    "RECORD_HEADER_SIZE",
    "CompressionCodec",
    "RecordType",
    "TlvRecord",
    "compress_records",
    "decode_records",
    "decode_stream",
    "encode_records",
    "encode_values",
]
