#!/usr/bin/env python3
"""Prints a safetensors checkpoint (as vkt_model_save writes it): every tensor's
name, dtype, shape, CRC-32 of its raw bytes and sum, then the metadata.
Only the standard library and numpy: usage: read_checkpoint.py FILE"""
import json, struct, sys, zlib
import numpy as np

DTYPES = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I32": "<i4", "I64": "<i8", "U8": "u1"}

with open(sys.argv[1], "rb") as f:
    blob = f.read()
(n,) = struct.unpack("<Q", blob[:8])
header = json.loads(blob[8:8 + n])
meta = header.pop("__metadata__", {})
data = memoryview(blob)[8 + n:]
for name, t in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
    begin, end = t["data_offsets"]
    raw = data[begin:end]
    dtype = DTYPES.get(t["dtype"], "u1")  # others: summed as bytes
    a = np.frombuffer(raw, dtype=dtype)
    print(f"{name} {t['dtype']} {t['shape']} crc32={zlib.crc32(raw):08x} sum={a.sum(dtype=np.float64):.9g}")
for key, value in meta.items():
    print(f"meta {key}={value}")
