"""A model that matches a SHA-256 card and still crashes LiteRT: one per-channel weight scale set to 1e30.

LiteRT's XNNPACK delegate then aborts with "double free or corruption" while it allocates tensors (found by
corrupting 4 random bytes of the shipped model: 3 in 300 do this; the byte that mattered was in a conv's scales).
A minimal FlatBuffers walk over the TFLite schema finds the scales: Model.subgraphs (field 2) ->
SubGraph.tensors (0) -> Tensor.type (1), Tensor.quantization (4) -> QuantizationParameters.scale (2).
Used by the tests and by the system check (tests/system/run.py).
"""

from __future__ import annotations

import struct

INT8 = 9  # TensorType.INT8


def _u32(blob: bytes, at: int) -> int:
    return struct.unpack_from("<I", blob, at)[0]


def _field(blob: bytes, table: int, field: int) -> int | None:
    """Position of `field` in the table at `table`, or None when it is absent."""
    vtable = table - struct.unpack_from("<i", blob, table)[0]
    size = struct.unpack_from("<H", blob, vtable)[0]
    if 4 + 2 * field >= size:
        return None
    offset = struct.unpack_from("<H", blob, vtable + 4 + 2 * field)[0]
    return table + offset if offset else None


def _vector(blob: bytes, at: int) -> tuple[int, int]:
    """(first element, length) of the vector that the offset at `at` points to."""
    start = at + _u32(blob, at)
    return start + 4, _u32(blob, start)


def _tables(blob: bytes, at: int) -> list[int]:
    start, n = _vector(blob, at)
    return [start + 4 * i + _u32(blob, start + 4 * i) for i in range(n)]


def per_channel_int8_scales(blob: bytes) -> list[int]:
    """Byte offsets of the scale vectors of int8 tensors quantised per channel (more than one scale)."""
    found = []
    subgraphs = _field(blob, _u32(blob, 0), 2)
    for subgraph in _tables(blob, subgraphs) if subgraphs else []:
        tensors = _field(blob, subgraph, 0)
        for tensor in _tables(blob, tensors) if tensors else []:
            kind, quant = _field(blob, tensor, 1), _field(blob, tensor, 4)
            if kind is None or blob[kind] != INT8 or quant is None:
                continue
            scales = _field(blob, quant + _u32(blob, quant), 2)
            if scales is not None and (vector := _vector(blob, scales))[1] > 1:
                found.append(vector[0])
    return found


def crashing_copy(blob: bytes) -> bytes:
    """`blob` (a full-integer TFLite model) with its first per-channel weight scale set to 1e30."""
    scales = per_channel_int8_scales(blob)
    assert scales, "the model has no per-channel int8 weights to corrupt"
    out = bytearray(blob)
    struct.pack_into("<f", out, scales[0], 1e30)
    return bytes(out)
