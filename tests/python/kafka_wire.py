"""Hand-built Kafka wire requests for black-box tests that no real client would send.

Everything here is written from the Kafka protocol description with the `struct`
module; it is deliberately small and explicit so a failing test shows exactly which
bytes went on the wire. All integers are big-endian (network order).

Framing (every request and response):
    int32  size              number of bytes that follow
    ...    header + body

Request header v1 (non-flexible requests):
    int16  api_key
    int16  api_version
    int32  correlation_id
    string client_id         int16 length + UTF-8 bytes (-1 = null)

Request header v2 (flexible requests) = header v1 + tagged fields (varint count, 0 = none).

Response header v0: int32 correlation_id. (Flexible responses add tagged fields; the
versions used here are all non-flexible, and ApiVersions always answers with header v0.)
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field

# API keys (Kafka protocol constants).
PRODUCE = 0
FETCH = 1
LIST_OFFSETS = 2
METADATA = 3
API_VERSIONS = 18
CREATE_TOPICS = 19

# Error codes (Kafka protocol constants) used by the tests.
NONE = 0
OFFSET_OUT_OF_RANGE = 1
CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
UNSUPPORTED_VERSION = 35


# --------------------------------------------------------------------------- CRC-32C
def _make_crc32c_table() -> list[int]:
    poly = 0x82F63B78  # Castagnoli polynomial, reflected
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C_TABLE = _make_crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as used by record batch v2. Pure Python, table driven."""
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283, "CRC-32C check value"


# --------------------------------------------------------------------------- primitives
def string(s: str | None) -> bytes:
    """Kafka STRING / NULLABLE_STRING: int16 length + bytes, -1 for null."""
    if s is None:
        return struct.pack(">h", -1)
    raw = s.encode()
    return struct.pack(">h", len(raw)) + raw


def nullable_bytes(b: bytes | None) -> bytes:
    """Kafka NULLABLE_BYTES / RECORDS: int32 length + bytes, -1 for null."""
    if b is None:
        return struct.pack(">i", -1)
    return struct.pack(">i", len(b)) + b


def array(items: list[bytes]) -> bytes:
    """Kafka ARRAY (non-flexible): int32 count + the encoded items."""
    return struct.pack(">i", len(items)) + b"".join(items)


def uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def varint(n: int) -> bytes:
    """Zig-zag signed varint (record fields); works for 32 and 64 bit values."""
    return uvarint((n << 1) ^ (n >> 63))


def compact_string(s: str) -> bytes:
    raw = s.encode()
    return uvarint(len(raw) + 1) + raw


class Reader:
    """Cursor over a response body."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, fmt: str):
        vals = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return vals if len(vals) > 1 else vals[0]

    def string(self) -> str | None:
        n = self.take(">h")
        if n < 0:
            return None
        s = self.data[self.pos : self.pos + n].decode()
        self.pos += n
        return s

    def nullable_bytes(self) -> bytes | None:
        n = self.take(">i")
        if n < 0:
            return None
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return b

    def remaining(self) -> int:
        return len(self.data) - self.pos


# --------------------------------------------------------------------------- framing
def request_header_v1(api_key: int, version: int, correlation_id: int, client_id: str = "troupe-wire-test") -> bytes:
    return struct.pack(">hhi", api_key, version, correlation_id) + string(client_id)


def request_header_v2(api_key: int, version: int, correlation_id: int, client_id: str = "troupe-wire-test") -> bytes:
    return request_header_v1(api_key, version, correlation_id, client_id) + uvarint(0)


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def connect(host: str, port: int, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def recv_frame(sock: socket.socket) -> bytes:
    """One response frame, without its size prefix (starts with the correlation id)."""
    (size,) = struct.unpack(">i", recv_exact(sock, 4))
    return recv_exact(sock, size)


def roundtrip(sock: socket.socket, header: bytes, body: bytes, correlation_id: int) -> Reader:
    sock.sendall(frame(header + body))
    resp = recv_frame(sock)
    r = Reader(resp)
    got = r.take(">i")
    assert got == correlation_id, f"correlation id {got}, expected {correlation_id}"
    return r


def wait_closed(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Read until the peer closes the connection or `timeout` passes.

    Returns whatever bytes arrived before the close; raises AssertionError when the
    connection is still open at the deadline.
    """
    deadline = time.monotonic() + timeout
    got = bytearray()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"connection still open after {timeout}s (received {len(got)} bytes)")
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return bytes(got)
        if not chunk:
            return bytes(got)
        got += chunk


# --------------------------------------------------------------------------- ApiVersions
def api_versions_v0_request(correlation_id: int) -> bytes:
    """ApiVersions v0: header v1, empty body."""
    return frame(request_header_v1(API_VERSIONS, 0, correlation_id))


def parse_api_versions_v0(r: Reader) -> tuple[int, dict[int, tuple[int, int]]]:
    """ApiVersions response v0 body:
    int16 error_code
    array api_keys: int16 api_key, int16 min_version, int16 max_version
    """
    error = r.take(">h")
    n = r.take(">i")
    versions = {}
    for _ in range(max(n, 0)):
        key, lo, hi = r.take(">hhh")
        versions[key] = (lo, hi)
    return error, versions


def api_versions(host: str, port: int, timeout: float = 5.0) -> dict[int, tuple[int, int]]:
    with connect(host, port, timeout) as s:
        s.sendall(api_versions_v0_request(1))
        r = Reader(recv_frame(s))
        assert r.take(">i") == 1
        err, versions = parse_api_versions_v0(r)
        assert err == NONE, f"ApiVersions v0 error {err}"
        return versions


# --------------------------------------------------------------------------- record batch v2
def record_batch(
    records: list[tuple[bytes | None, bytes | None]],
    base_timestamp: int | None = None,
    corrupt_crc: bool = False,
) -> bytes:
    """A magic-v2 record batch, uncompressed, non-transactional, no producer id.

    int64  baseOffset            0 (the broker assigns offsets)
    int32  batchLength           bytes after this field
    int32  partitionLeaderEpoch  -1
    int8   magic                 2
    uint32 crc                   CRC-32C of everything from attributes to the end
    int16  attributes            0 (no compression, CreateTime, not transactional)
    int32  lastOffsetDelta       len(records) - 1
    int64  baseTimestamp
    int64  maxTimestamp
    int64  producerId            -1
    int16  producerEpoch         -1
    int32  baseSequence          -1
    int32  recordsCount
    records...

    Each record:
    varint   length              bytes after this field
    int8     attributes          0
    varlong  timestampDelta
    varint   offsetDelta
    varint   keyLength (-1 null), key bytes
    varint   valueLength (-1 null), value bytes
    varint   headersCount        0
    """
    ts = int(time.time() * 1000) if base_timestamp is None else base_timestamp
    encoded = bytearray()
    for i, (key, value) in enumerate(records):
        body = bytearray()
        body += struct.pack(">b", 0)
        body += varint(0)  # timestamp delta
        body += varint(i)  # offset delta
        body += varint(-1) if key is None else varint(len(key)) + key
        body += varint(-1) if value is None else varint(len(value)) + value
        body += varint(0)  # no headers
        encoded += varint(len(body)) + body
    after_crc = (
        struct.pack(">hiqqqhii", 0, len(records) - 1, ts, ts, -1, -1, -1, len(records)) + bytes(encoded)
    )
    crc = crc32c(after_crc)
    if corrupt_crc:
        crc ^= 0xDEADBEEF
    after_length = struct.pack(">ibI", -1, 2, crc) + after_crc
    return struct.pack(">qi", 0, len(after_length)) + after_length


def parse_record_batches(data: bytes) -> list[tuple[int, bytes | None, bytes | None]]:
    """(offset, key, value) of every record in uncompressed v2 batches; a trailing
    partial batch (allowed in fetch responses) is ignored."""
    out = []
    pos = 0
    while pos + 12 <= len(data):
        base_offset, batch_len = struct.unpack_from(">qi", data, pos)
        end = pos + 12 + batch_len
        if end > len(data):
            break
        attrs = struct.unpack_from(">h", data, pos + 21)[0]
        assert attrs & 0x7 == 0, "only uncompressed batches are parsed here"
        count = struct.unpack_from(">i", data, pos + 57)[0]
        rpos = pos + 61
        for _ in range(count):
            _length, rpos = _read_varint(data, rpos)
            rpos += 1  # attributes
            _ts, rpos = _read_varint(data, rpos)
            off_delta, rpos = _read_varint(data, rpos)
            klen, rpos = _read_varint(data, rpos)
            key = None if klen < 0 else data[rpos : rpos + klen]
            rpos += max(klen, 0)
            vlen, rpos = _read_varint(data, rpos)
            value = None if vlen < 0 else data[rpos : rpos + vlen]
            rpos += max(vlen, 0)
            hcount, rpos = _read_varint(data, rpos)
            for _ in range(hcount):
                hk, rpos = _read_varint(data, rpos)
                rpos += hk
                hv, rpos = _read_varint(data, rpos)
                rpos += max(hv, 0)
            out.append((base_offset + off_delta, key, value))
        pos = end
    return out


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = 0
    raw = 0
    while True:
        b = data[pos]
        pos += 1
        raw |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
    return (raw >> 1) ^ -(raw & 1), pos


# --------------------------------------------------------------------------- Produce v3
def produce_v3_body(topic: str, partition: int, records: bytes, acks: int = 1, timeout_ms: int = 10000) -> bytes:
    """Produce request v3 body:
    nullable string transactional_id   null
    int16  acks
    int32  timeout_ms
    array  topic_data:
        string name
        array  partition_data:
            int32 index
            records (int32 length + record batches)
    """
    partition_data = struct.pack(">i", partition) + nullable_bytes(records)
    topic_data = string(topic) + array([partition_data])
    return string(None) + struct.pack(">hi", acks, timeout_ms) + array([topic_data])


@dataclass
class ProducePartitionResult:
    topic: str
    partition: int
    error: int
    base_offset: int
    log_append_time: int


def parse_produce_v3(r: Reader) -> list[ProducePartitionResult]:
    """Produce response v3 body:
    array responses:
        string name
        array  partition_responses:
            int32 index, int16 error_code, int64 base_offset, int64 log_append_time_ms
    int32 throttle_time_ms
    """
    out = []
    for _ in range(r.take(">i")):
        name = r.string()
        for _ in range(r.take(">i")):
            idx, err, base, append_time = r.take(">ihqq")
            out.append(ProducePartitionResult(name, idx, err, base, append_time))
    r.take(">i")  # throttle_time_ms
    return out


def produce_v3(sock: socket.socket, topic: str, partition: int, records: bytes, correlation_id: int = 7, acks: int = 1):
    r = roundtrip(
        sock, request_header_v1(PRODUCE, 3, correlation_id), produce_v3_body(topic, partition, records, acks), correlation_id
    )
    return parse_produce_v3(r)


# --------------------------------------------------------------------------- Fetch v4
def fetch_v4_body(
    topic: str, partition: int, offset: int, max_wait_ms: int = 0, min_bytes: int = 1, max_bytes: int = 1 << 20
) -> bytes:
    """Fetch request v4 body:
    int32 replica_id        -1 (a consumer)
    int32 max_wait_ms
    int32 min_bytes
    int32 max_bytes
    int8  isolation_level   0 (read uncommitted)
    array topics:
        string topic
        array  partitions: int32 partition, int64 fetch_offset, int32 partition_max_bytes
    """
    part = struct.pack(">iqi", partition, offset, max_bytes)
    topics = string(topic) + array([part])
    return struct.pack(">iiiib", -1, max_wait_ms, min_bytes, max_bytes, 0) + array([topics])


@dataclass
class FetchPartitionResult:
    topic: str
    partition: int
    error: int
    high_watermark: int
    last_stable_offset: int
    records: bytes | None = field(repr=False, default=None)


def parse_fetch_v4(r: Reader) -> list[FetchPartitionResult]:
    """Fetch response v4 body:
    int32 throttle_time_ms
    array responses:
        string topic
        array  partitions:
            int32 partition_index, int16 error_code, int64 high_watermark,
            int64 last_stable_offset,
            nullable array aborted_transactions: int64 producer_id, int64 first_offset
            records (int32 length, -1 null)
    """
    r.take(">i")
    out = []
    for _ in range(r.take(">i")):
        name = r.string()
        for _ in range(r.take(">i")):
            idx, err, hw, lso = r.take(">ihqq")
            n_aborted = r.take(">i")
            for _ in range(max(n_aborted, 0)):
                r.take(">qq")
            out.append(FetchPartitionResult(name, idx, err, hw, lso, r.nullable_bytes()))
    return out


def fetch_v4(sock: socket.socket, topic: str, partition: int, offset: int, correlation_id: int = 9, **kw):
    r = roundtrip(
        sock, request_header_v1(FETCH, 4, correlation_id), fetch_v4_body(topic, partition, offset, **kw), correlation_id
    )
    return parse_fetch_v4(r)


# --------------------------------------------------------------------------- Fetch v11
def fetch_v11_body(
    topic: str, partition: int, offset: int, rack_id: str = "", current_leader_epoch: int = -1, max_bytes: int = 1 << 20
) -> bytes:
    """Fetch request v11 body (KIP-392 adds rack_id):
    int32 replica_id -1, int32 max_wait_ms 0, int32 min_bytes 1, int32 max_bytes,
    int8 isolation_level 0, int32 session_id 0, int32 session_epoch -1,
    array topics: string topic, array partitions: int32 partition,
        int32 current_leader_epoch, int64 fetch_offset, int64 log_start_offset -1,
        int32 partition_max_bytes
    array forgotten_topics_data (empty), string rack_id
    """
    part = struct.pack(">iiqqi", partition, current_leader_epoch, offset, -1, max_bytes)
    topics = string(topic) + array([part])
    head = struct.pack(">iiiibii", -1, 0, 1, max_bytes, 0, 0, -1)
    return head + array([topics]) + array([]) + string(rack_id)


@dataclass
class FetchV11PartitionResult:
    topic: str
    partition: int
    error: int
    high_watermark: int
    preferred_read_replica: int
    records: bytes | None = field(repr=False, default=None)


def fetch_v11(sock: socket.socket, topic: str, partition: int, offset: int, correlation_id: int = 13, **kw):
    """Fetch v11 round trip; response: int32 throttle, int16 error, int32 session_id,
    array topics: string, array partitions: int32 index, int16 error, int64 hw,
    int64 lso, int64 log_start, nullable array aborted (int64, int64),
    int32 preferred_read_replica, records."""
    r = roundtrip(
        sock, request_header_v1(FETCH, 11, correlation_id), fetch_v11_body(topic, partition, offset, **kw), correlation_id
    )
    r.take(">ihi")
    out = []
    for _ in range(r.take(">i")):
        name = r.string()
        for _ in range(r.take(">i")):
            idx, err, hw, _lso, _start = r.take(">ihqqq")
            for _ in range(max(r.take(">i"), 0)):
                r.take(">qq")
            preferred = r.take(">i")
            out.append(FetchV11PartitionResult(name, idx, err, hw, preferred, r.nullable_bytes()))
    return out


# --------------------------------------------------------------------------- DescribeQuorum v0
DESCRIBE_QUORUM = 55


def read_uvarint(r: Reader) -> int:
    n = shift = 0
    while True:
        b = r.take(">B")
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n


def read_compact_string(r: Reader) -> str | None:
    """A compact nullable string (length + 1 as an unsigned varint; 0 is null)."""
    n = read_uvarint(r) - 1
    if n < 0:
        return None
    v = r.data[r.pos : r.pos + n].decode()
    r.pos += n
    return v


def describe_quorum_v0(sock: socket.socket, topic: str = "__cluster_metadata", partition: int = 0, correlation_id: int = 17):
    """DescribeQuorum v0 (flexible): request topics [name, partitions [index]]; answer
    (error, [(topic, index, error, leader_id, leader_epoch, high_watermark,
    [(voter id, log end offset)])])."""
    part = struct.pack(">i", partition) + uvarint(0)
    topics = compact_string(topic) + uvarint(2) + part + uvarint(0)
    body = uvarint(2) + topics + uvarint(0)
    r = roundtrip(sock, request_header_v2(DESCRIBE_QUORUM, 0, correlation_id), body, correlation_id)
    read_uvarint(r)  # response header tagged fields

    def cstring():
        return read_compact_string(r)

    def replicas():
        out = []
        for _ in range(read_uvarint(r) - 1):
            rid, leo = r.take(">iq")
            read_uvarint(r)
            out.append((rid, leo))
        return out

    error = r.take(">h")
    parts = []
    for _ in range(read_uvarint(r) - 1):
        name = cstring()
        for _ in range(read_uvarint(r) - 1):
            idx, err, leader, epoch, hw = r.take(">ihiiq")
            voters = replicas()
            replicas()  # observers
            read_uvarint(r)
            parts.append((name, idx, err, leader, epoch, hw, voters))
        read_uvarint(r)
    return error, parts


def _describe_metadata_quorum(sock: socket.socket, version: int, correlation_id: int):
    """Sends DescribeQuorum `version` (flexible) for __cluster_metadata-0; returns the
    reader past the response header."""
    part = struct.pack(">i", 0) + uvarint(0)
    topics = compact_string("__cluster_metadata") + uvarint(2) + part + uvarint(0)
    body = uvarint(2) + topics + uvarint(0)
    r = roundtrip(sock, request_header_v2(DESCRIBE_QUORUM, version, correlation_id), body, correlation_id)
    read_uvarint(r)
    return r


def describe_quorum_v1(sock: socket.socket, correlation_id: int = 18):
    """DescribeQuorum v1 for __cluster_metadata-0: (error, leader, epoch, high_watermark,
    voters, observers), each replica (id, log end offset, last fetch ms, last caught-up ms)."""
    r = _describe_metadata_quorum(sock, 1, correlation_id)

    def replicas():
        out = []
        for _ in range(read_uvarint(r) - 1):
            out.append(r.take(">iqqq"))
            read_uvarint(r)
        return out

    error = r.take(">h")
    if read_uvarint(r) - 1 != 1:
        return error, None
    name_len = read_uvarint(r) - 1
    r.pos += name_len  # topic name
    assert read_uvarint(r) - 1 == 1
    _idx, perr, leader, epoch, hw = r.take(">ihiiq")
    voters, observers = replicas(), replicas()
    return (error or perr), (leader, epoch, hw, voters, observers)


def describe_quorum_v2(sock: socket.socket, correlation_id: int = 19):
    """DescribeQuorum v2 (KIP-853) for __cluster_metadata-0: (error, leader, voters,
    nodes): voters [(id, directory id bytes, log end offset)], nodes {id: [(listener
    name, host, port)]}."""
    r = _describe_metadata_quorum(sock, 2, correlation_id)

    def cstring():
        return read_compact_string(r)

    def replicas():
        out = []
        for _ in range(read_uvarint(r) - 1):
            rid = r.take(">i")
            directory = r.data[r.pos : r.pos + 16]
            r.pos += 16
            leo, _fetch, _caught_up = r.take(">qqq")
            read_uvarint(r)
            out.append((rid, directory, leo))
        return out

    error = r.take(">h")
    cstring()  # error message
    leader, voters = None, []
    for _ in range(read_uvarint(r) - 1):
        cstring()  # topic
        for _ in range(read_uvarint(r) - 1):
            _idx, perr = r.take(">ih")
            cstring()
            leader, _epoch, _hw = r.take(">iiq")
            voters = replicas()
            replicas()  # observers
            read_uvarint(r)
            error = error or perr
        read_uvarint(r)
    nodes = {}
    for _ in range(read_uvarint(r) - 1):
        nid = r.take(">i")
        listeners = []
        for _ in range(read_uvarint(r) - 1):
            name, host = cstring(), cstring()
            listeners.append((name, host, r.take(">H")))
            read_uvarint(r)
        read_uvarint(r)
        nodes[nid] = listeners
    read_uvarint(r)
    return error, leader, voters, nodes


# --------------------------------------------------------------------------- Metadata v1
def metadata_v1(sock: socket.socket, topics: list[str] | None, correlation_id: int = 11) -> dict[str, tuple[int, list[int]]]:
    """Metadata v1 (no auto-create flag: v1 always allows auto-creation).

    Request body: array topics: string name (-1 = all topics)
    Response body:
        array brokers: int32 node_id, string host, int32 port, nullable string rack
        int32 controller_id
        array topics: int16 error_code, string name, bool is_internal,
            array partitions: int16 error_code, int32 index, int32 leader,
                array int32 replicas, array int32 isr
    Returns {topic: (error_code, [partition indexes])}.
    """
    body = struct.pack(">i", -1) if topics is None else array([string(t) for t in topics])
    r = roundtrip(sock, request_header_v1(METADATA, 1, correlation_id), body, correlation_id)
    for _ in range(r.take(">i")):
        r.take(">i")
        r.string()
        r.take(">i")
        r.string()
    r.take(">i")
    out = {}
    for _ in range(r.take(">i")):
        err = r.take(">h")
        name = r.string()
        r.take(">b")
        parts = []
        for _ in range(r.take(">i")):
            _perr, idx, _leader = r.take(">hii")
            for _ in range(2):  # replicas, then isr
                for _ in range(r.take(">i")):
                    r.take(">i")
            parts.append(idx)
        out[name] = (err, parts)
    return out


# --------------------------------------------------------------------------- CreateTopics v4
def create_topics_v4(
    sock: socket.socket,
    names: list[str],
    partitions: int = 1,
    replication_factor: int = -1,
    timeout_ms: int = 0,
    correlation_id: int = 19,
) -> dict[str, int]:
    """CreateTopics v4 (non-flexible), no assignments or configs.

    Request body:
        array topics: string name, int32 num_partitions, int16 replication_factor,
            array assignments (empty), array configs (empty)
        int32 timeout_ms          0: answer once committed, without waiting for leaders
        bool validate_only
    Response body: int32 throttle_time_ms,
        array topics: string name, int16 error_code, nullable string error_message
    Returns {topic: error_code}.
    """
    topics = [string(n) + struct.pack(">ihii", partitions, replication_factor, 0, 0) for n in names]
    body = array(topics) + struct.pack(">ib", timeout_ms, 0)
    r = roundtrip(sock, request_header_v1(CREATE_TOPICS, 4, correlation_id), body, correlation_id)
    r.take(">i")
    out = {}
    for _ in range(r.take(">i")):
        name = r.string()
        out[name] = r.take(">h")
        r.string()
    return out
