#!/usr/bin/python3
"""Small .safetensors files for the reader's tests (tests/test_safetensors.cpp).

Run:  /usr/bin/python3 tests/reference/write_safetensors.py   (from anywhere; standard library
only: struct and json, no NumPy, no safetensors package)
Writes tests/reference/data/safetensors/ (deleted and rewritten):

  mixed.safetensors          F32, F16, BF16, F64, I64, U8, empty and 0-d tensors, __metadata__;
                             the header's order is not the data's order nor the names' order
  sharded/                   a 2-shard checkpoint: model.safetensors.index.json and its shards
  single/model.safetensors   a directory holding one file
  expected.json              every float tensor's values, decoded here in Python from the same
                             bit patterns: "values" as float64, "as_float" rounded to float32
                             (struct's 'f'), both as float.hex() strings ("inf", "nan", ...)
  bad/*.safetensors          malformed files, one per error the reader reports
  bad_index/                 malformed model.safetensors.index.json files and a shard

The layout is the reference writer's: 8-byte little-endian header length, the JSON header padded
with spaces to a multiple of 8 bytes, the data section. Half-precision values come from struct's
'e' format, bfloat16 from its bits shifted into a float32's high half; both are exact in float64.
"""
import json
import pathlib
import shutil
import struct

OUT = pathlib.Path(__file__).resolve().parent / "data" / "safetensors"


def f32_bytes(values):
    return b"".join(struct.pack("<f", v) for v in values)


def f64_bytes(values):
    return b"".join(struct.pack("<d", v) for v in values)


def u16_bytes(bits):
    return b"".join(struct.pack("<H", b) for b in bits)


def half(bits):
    return struct.unpack("<e", struct.pack("<H", bits))[0]


def bfloat(bits):
    return struct.unpack("<f", struct.pack("<I", bits << 16))[0]


def as_float(v):
    """v rounded to float32 (round to nearest even), as struct packs it."""
    return struct.unpack("<f", struct.pack("<f", v))[0]


def file_bytes(header, data=b"", pad=True):
    """The file for a header (a dict, or the exact text as str/bytes) and data section."""
    if isinstance(header, dict):
        text = json.dumps(header, separators=(",", ":")).encode()
    elif isinstance(header, str):
        text = header.encode()
    else:
        text = header
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def write(path, header, data=b"", pad=True):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(file_bytes(header, data, pad))


def tensors_file(path, tensors, metadata=None, data_order=None):
    """tensors: [(name, dtype, shape, bytes)] in header order; data_order: the names in the
    order their bytes are laid out (default: header order)."""
    by_name = {t[0]: t for t in tensors}
    offsets, data, at = {}, b"", 0
    for name in data_order or [t[0] for t in tensors]:
        raw = by_name[name][3]
        offsets[name] = [at, at + len(raw)]
        data += raw
        at += len(raw)
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, _ in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": offsets[name]}
    write(path, header, data)


def hexes(values):
    return [float(v).hex() for v in values]


def expect(expected, key, name, dtype, shape, values, to_float=True):
    entry = {"dtype": dtype, "shape": shape, "values": hexes(values)}
    if to_float:
        entry["as_float"] = hexes(as_float(v) for v in values)
    expected.setdefault(key, {})[name] = entry


def mixed(expected):
    f32 = [1.0, -2.5, 3.25, 2.0**-149, 3.4028234663852886e38, -0.0]
    # Half: smallest and largest subnormal, smallest normal, 1, -2, largest, +-inf, -0, 1/3, NaN.
    f16_bits = [0x0001, 0x03FF, 0x0400, 0x3C00, 0xC000, 0x7BFF, 0x7C00, 0xFC00, 0x8000, 0x3555,
                0x7E00]
    # bfloat16: 1, -3.140625, a subnormal (2^-133), the largest, -inf, 0.166015625.
    bf16_bits = [0x3F80, 0xC049, 0x0001, 0x7F7F, 0xFF80, 0x3E2A]
    f64 = [0.1, -1e-300, 1.0 / 3.0, 12345.678]
    f64_huge = [1.0, 1e300, float("inf")]
    linear = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]  # [out 3, in 2]
    tensors = [
        ("z.f32_matrix", "F32", [2, 3], f32_bytes(f32)),
        ("f16_vector", "F16", [11], u16_bytes(f16_bits)),
        ("bf16_matrix", "BF16", [2, 3], u16_bytes(bf16_bits)),
        ("f64_vector", "F64", [4], f64_bytes(f64)),
        ("f64_huge", "F64", [3], f64_bytes(f64_huge)),
        ("linear.weight", "F32", [3, 2], f32_bytes(linear)),
        ("i64_vector", "I64", [3], b"".join(struct.pack("<q", v) for v in [1, -2, 3])),
        ("u8_bytes", "U8", [4], bytes([0, 1, 254, 255])),
        ("empty", "F32", [0, 4], b""),
        ("scalar", "F32", [], f32_bytes([7.0])),
    ]
    names = [t[0] for t in tensors]
    tensors_file(OUT / "mixed.safetensors", tensors, {"format": "pt", "note": "posenc test"},
                 data_order=list(reversed(names)))
    key = "mixed.safetensors"
    expect(expected, key, "z.f32_matrix", "F32", [2, 3], f32)
    expect(expected, key, "f16_vector", "F16", [11], [half(b) for b in f16_bits])
    expect(expected, key, "bf16_matrix", "BF16", [2, 3], [bfloat(b) for b in bf16_bits])
    expect(expected, key, "f64_vector", "F64", [4], f64)
    expect(expected, key, "f64_huge", "F64", [3], f64_huge, to_float=False)
    expect(expected, key, "linear.weight", "F32", [3, 2], linear)
    expect(expected, key, "empty", "F32", [0, 4], [])
    expected[key]["__order__"] = names


def sharded(expected):
    d = OUT / "sharded"
    emb = [0.5 * i - 1.0 for i in range(8)]
    q_bits = [0x3F80, 0x4000, 0xBF00, 0x3E80]  # 1, 2, -0.5, 0.25
    k_bits = [0x3C00, 0x0200, 0xBC00, 0x7BFF]  # 1, a subnormal, -1, 65504
    head = [float(i) for i in range(8)]
    s1 = [("model.embed_tokens.weight", "F32", [4, 2], f32_bytes(emb)),
          ("model.layers.0.self_attn.q_proj.weight", "BF16", [2, 2], u16_bytes(q_bits))]
    s2 = [("model.layers.0.self_attn.k_proj.weight", "F16", [2, 2], u16_bytes(k_bits)),
          ("lm_head.weight", "F32", [2, 4], f32_bytes(head))]
    tensors_file(d / "model-00001-of-00002.safetensors", s1, {"format": "pt"})
    tensors_file(d / "model-00002-of-00002.safetensors", s2, {"format": "pt"})
    weight_map = {}
    for name, *_ in [s2[1], s1[0], s1[1], s2[0]]:  # neither sorted nor in shard order
        weight_map[name] = ("model-00001-of-00002.safetensors" if name in dict(
            (t[0], 0) for t in s1) else "model-00002-of-00002.safetensors")
    total = sum(len(t[3]) for t in s1 + s2)
    (d / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2) + "\n")
    key = "sharded"
    expect(expected, key, s1[0][0], "F32", [4, 2], emb)
    expect(expected, key, s1[1][0], "BF16", [2, 2], [bfloat(b) for b in q_bits])
    expect(expected, key, s2[0][0], "F16", [2, 2], [half(b) for b in k_bits])
    expect(expected, key, s2[1][0], "F32", [2, 4], head)
    expected[key]["__order__"] = list(weight_map)


def single(expected):
    tensors_file(OUT / "single" / "model.safetensors", [("w", "F32", [2], f32_bytes([1.5, -1.5]))])
    expect(expected, "single", "w", "F32", [2], [1.5, -1.5])


def entry(dtype="F32", shape=(1,), offsets=(0, 4)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


def bad():
    d = OUT / "bad"
    d.mkdir(parents=True, exist_ok=True)
    four = b"\0\0\x80\x3f"  # 1.0f

    (d / "empty.safetensors").write_bytes(b"")
    (d / "short.safetensors").write_bytes(b"\x10\0\0\0\0")
    (d / "header_over_limit.safetensors").write_bytes(struct.pack("<Q", 100000001) + b"{}")
    (d / "header_beyond_file.safetensors").write_bytes(struct.pack("<Q", 1000) + b"{}" + b" " * 6)
    write(d / "not_json.safetensors", '{"a": {"dtype": "F32",', four)
    write(d / "not_object.safetensors", "[1, 2]", four)
    write(d / "invalid_utf8.safetensors", b'{"a\xff": ' + json.dumps(entry()).encode() + b"}",
          four)
    write(d / "trailing_garbage.safetensors", json.dumps({"a": entry()}) + " x", four)
    write(d / "deep.safetensors", '{"a": ' + "[" * 100 + "]" * 100 + "}", b"")
    write(d / "no_dtype.safetensors", {"a": {"shape": [1], "data_offsets": [0, 4]}}, four)
    write(d / "no_shape.safetensors", {"a": {"dtype": "F32", "data_offsets": [0, 4]}}, four)
    write(d / "no_offsets.safetensors", {"a": {"dtype": "F32", "shape": [1]}}, four)
    write(d / "dtype_not_string.safetensors", {"a": entry(dtype=32)}, four)
    write(d / "unknown_dtype.safetensors", {"a": entry(dtype="F128")}, four)
    write(d / "shape_not_array.safetensors", {"a": dict(entry(), shape=1)}, four)
    write(d / "negative_dim.safetensors", {"a": entry(shape=(-1,))}, four)
    write(d / "float_dim.safetensors", {"a": entry(shape=(1.0,))}, four)
    write(d / "string_dim.safetensors", {"a": entry(shape=("1",))}, four)
    write(d / "dim_over_int64.safetensors", {"a": entry(shape=(2**63,))}, four)
    write(d / "shape_overflow.safetensors", {"a": entry(shape=(2**32, 2**32))}, four)
    write(d / "offsets_one.safetensors", {"a": entry(offsets=(0,))}, four)
    write(d / "offsets_string.safetensors", {"a": dict(entry(), data_offsets="0,4")}, four)
    write(d / "offsets_negative.safetensors", {"a": entry(offsets=(-4, 0))}, four)
    write(d / "offsets_float.safetensors", {"a": entry(offsets=(0, 4.0))}, four)
    write(d / "begin_after_end.safetensors", {"a": entry(offsets=(4, 0))}, four)
    write(d / "end_beyond_data.safetensors", {"a": entry(shape=(100,), offsets=(0, 400))}, four)
    write(d / "offsets_huge.safetensors", {"a": entry(offsets=(0, 2**64 - 1))}, four)
    write(d / "size_mismatch.safetensors", {"a": entry(shape=(3,), offsets=(0, 8))}, four * 2)
    write(d / "overlap.safetensors",
          {"a": entry(shape=(2,), offsets=(0, 8)), "b": entry(shape=(2,), offsets=(4, 12))},
          four * 3)
    write(d / "hole.safetensors",
          {"a": entry(offsets=(0, 4)), "b": entry(offsets=(8, 12))}, four * 3)
    write(d / "hole_at_start.safetensors", {"a": entry(offsets=(4, 8))}, four * 2)
    write(d / "trailing_bytes.safetensors", {"a": entry()}, four * 2)
    write(d / "duplicate_name.safetensors",
          '{"a": ' + json.dumps(entry()) + ', "a": ' + json.dumps(entry(offsets=(4, 8))) + "}",
          four * 2)
    write(d / "duplicate_field.safetensors",
          '{"a": {"dtype": "F32", "dtype": "F16", "shape": [1], "data_offsets": [0, 4]}}', four)
    write(d / "empty_name.safetensors", {"": entry()}, four)
    write(d / "entry_not_object.safetensors", {"a": [0, 4]}, four)
    write(d / "metadata_not_strings.safetensors", {"__metadata__": {"k": 1}, "a": entry()}, four)
    write(d / "metadata_not_object.safetensors", {"__metadata__": "pt", "a": entry()}, four)
    write(d / "sub_byte.safetensors", {"a": entry(dtype="F4", shape=(3,), offsets=(0, 2))},
          b"\0\0")
    write(d / "bad_name_bytes.safetensors", {"a\nb\x01": entry(dtype="I8")}, four)

    bi = OUT / "bad_index"
    tensors_file(bi / "shard.safetensors", [("w", "F32", [1], four)])
    indexes = {
        "no_weight_map": {"metadata": {}},
        "weight_map_not_object": {"weight_map": ["shard.safetensors"]},
        "value_not_string": {"weight_map": {"w": 1}},
        "missing_shard": {"weight_map": {"w": "shard.safetensors", "v": "absent.safetensors"}},
        "absent_tensor": {"weight_map": {"w": "shard.safetensors", "w2": "shard.safetensors"}},
        "shard_escapes": {"weight_map": {"w": "../sharded/model-00001-of-00002.safetensors"}},
        "shard_absolute": {"weight_map": {"w": "/etc/passwd"}},
    }
    for name, content in indexes.items():
        (bi / (name + ".index.json")).write_text(json.dumps(content) + "\n")
    (bi / "not_json.index.json").write_text('{"weight_map": {"w": "shard.safetensors",}}\n')
    (bi / "duplicate.index.json").write_text(
        '{"weight_map": {"w": "shard.safetensors", "w": "shard.safetensors"}}\n')


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    expected = {}
    mixed(expected)
    sharded(expected)
    single(expected)
    bad()
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    main()
