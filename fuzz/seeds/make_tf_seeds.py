#!/usr/bin/env python3
"""Writes the tf_bundle seeds: TensorFlow bundle `.index` tables built by the format's rules
(as tests/inpaint.rs builds one), with the tensor data placed at the start of the same file,
since the fuzz target reads its input as both the index and its one data shard."""
import struct, sys, os

def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)

def field_varint(field, v):
    return varint(field << 3) + varint(v)

def field_bytes(field, b):
    return varint((field << 3) | 2) + varint(len(b)) + b

def entry(dtype, shape, offset, size, shard=0, sliced=False):
    shape_proto = b"".join(field_bytes(2, field_varint(1, d)) for d in shape)
    e = field_varint(1, dtype) + field_bytes(2, shape_proto)
    if shard:
        e += field_varint(3, shard)
    e += field_varint(4, offset) + field_varint(5, size)
    if sliced:
        e += field_bytes(7, b"")
    return e

def block(entries, restarts=(0,)):
    out = bytearray()
    last = b""
    for key, value in entries:
        shared = 0
        while shared < min(len(key), len(last)) and key[shared] == last[shared]:
            shared += 1
        out += varint(shared) + varint(len(key) - shared) + varint(len(value))
        out += key[shared:] + value
        last = key
    for r in restarts:
        out += struct.pack("<I", r)
    out += struct.pack("<I", len(restarts))
    return bytes(out)

def table(data, entries, num_shards=1):
    header = field_varint(1, num_shards)
    data_block = block([(b"", header)] + entries)
    out = bytearray(data)
    data_offset = len(out)
    out += data_block + b"\0" * 5
    index_block = block([(entries[-1][0] if entries else b"", varint(data_offset) + varint(len(data_block)))])
    index_offset = len(out)
    out += index_block + b"\0" * 5
    meta_block = block([])
    meta_offset = len(out)
    out += meta_block + b"\0" * 5
    footer = varint(meta_offset) + varint(len(meta_block)) + varint(index_offset) + varint(len(index_block))
    footer = footer.ljust(40, b"\0") + struct.pack("<Q", 0xDB4775248B80FB57)
    return bytes(out + footer)

kernel = b"".join(struct.pack("<f", i * 0.5 - 3.0) for i in range(24))
bias = b"".join(struct.pack("<f", v) for v in (0.25, -1.5, 7.0))
data = kernel + bias + struct.pack("<q", 42)
seeds = {
    "model.index": table(data, [
        (b"global_step", entry(9, [], 108, 8)),
        (b"net/conv1/bias", entry(1, [3], 96, 12)),
        (b"net/conv1/kernel", entry(1, [2, 2, 2, 3], 0, 96)),
    ]),
    "sliced_and_scalar.index": table(data, [
        (b"a/scalar", entry(1, [], 0, 4)),
        (b"a/sliced", entry(1, [4], 4, 16, sliced=True)),
        (b"b/matrix", entry(1, [2, 3], 20, 24)),
    ]),
    "empty.index": table(b"", []),
}
out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "tf_bundle")
os.makedirs(out_dir, exist_ok=True)
for name, b in seeds.items():
    with open(os.path.join(out_dir, name), "wb") as f:
        f.write(b)
