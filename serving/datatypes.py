"""Open Inference Protocol datatypes and their numpy / torch equivalents.

Two need a word. **BF16** has no numpy dtype: its arrays hold the bit patterns in a one-field
structured dtype (``BF16_DTYPE``, two bytes, little-endian), so that nothing mistakes them for
UINT16 and they still slice, concatenate and go to bytes like any array; torch views the same
bits as ``bfloat16``. **BYTES** arrays are numpy object arrays of ``str`` (the models take
``List[str]``); on the wire each element is a 4-byte little-endian length and its UTF-8 bytes.
"""

from __future__ import annotations

import struct

import numpy as np
import torch

from serving.errors import InvalidInput

BF16_DTYPE = np.dtype([("bf16", "<u2")])

# Little-endian numpy dtypes: the binary extension is little-endian, row-major.
NUMPY_DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BF16": BF16_DTYPE,
    "BYTES": np.dtype(object),
}

DATATYPES = tuple(NUMPY_DTYPES)
# Fixed-size datatypes: their binary form is the array's raw bytes.
FIXED_SIZE = tuple(d for d in DATATYPES if d != "BYTES")

_BY_NUMPY = {dtype: name for name, dtype in NUMPY_DTYPES.items()}

TORCH_DTYPES: dict[str, torch.dtype] = {
    "BOOL": torch.bool,
    "UINT8": torch.uint8,
    "UINT16": torch.uint16,
    "UINT32": torch.uint32,
    "UINT64": torch.uint64,
    "INT8": torch.int8,
    "INT16": torch.int16,
    "INT32": torch.int32,
    "INT64": torch.int64,
    "FP16": torch.float16,
    "FP32": torch.float32,
    "FP64": torch.float64,
    "BF16": torch.bfloat16,
}


def datatype_of(array: np.ndarray) -> str:
    """The protocol datatype of a numpy array (raises ``KeyError`` for unsupported dtypes)."""
    return _BY_NUMPY[array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype]


# -- BF16 --------------------------------------------------------------------------------
def bf16_bits(array: np.ndarray) -> np.ndarray:
    """A BF16 array's bit patterns as ``uint16`` (a view)."""
    return array.view("<u2")


def float32_to_bf16(values: np.ndarray) -> np.ndarray:
    """Float values as a BF16 array, rounded to nearest even (as torch rounds)."""
    tensor = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
    return tensor.to(torch.bfloat16).view(torch.int16).numpy().view(BF16_DTYPE)


def bf16_to_float32(array: np.ndarray) -> np.ndarray:
    """A BF16 array's values as float32 (exact: every bfloat16 is a float32)."""
    return (bf16_bits(np.ascontiguousarray(array)).astype("<u4") << 16).view("<f4")


def bf16_tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array).view("<i2")).view(torch.bfloat16)


def bf16_array(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().contiguous().view(torch.int16).numpy().view(BF16_DTYPE)


# -- BYTES -------------------------------------------------------------------------------
def serialize_bytes(array: np.ndarray) -> bytes:
    """Triton's binary BYTES layout: per element, a u32 length then its UTF-8 bytes."""
    parts = []
    for element in array.reshape(-1):
        raw = element.encode() if isinstance(element, str) else bytes(element)
        parts.append(struct.pack("<I", len(raw)))
        parts.append(raw)
    return b"".join(parts)


def deserialize_bytes(buffer: memoryview, count: int, name: str) -> np.ndarray:
    """``count`` BYTES elements from exactly ``buffer``, as a flat object array of ``str``."""
    out = np.empty(count, dtype=object)
    offset, size = 0, len(buffer)
    for index in range(count):
        if offset + 4 > size:
            raise InvalidInput(f"input '{name}': BYTES data ends inside element {index}'s "
                               "length")
        (length,) = struct.unpack_from("<I", buffer, offset)
        offset += 4
        if offset + length > size:
            raise InvalidInput(f"input '{name}': BYTES element {index} claims {length} bytes, "
                               f"{size - offset} are left")
        try:
            out[index] = bytes(buffer[offset:offset + length]).decode()
        except UnicodeDecodeError:
            raise InvalidInput(f"input '{name}': BYTES element {index} is not UTF-8 text"
                               ) from None
        offset += length
    if offset != size:
        raise InvalidInput(f"input '{name}': {size - offset} bytes of BYTES data after its "
                           f"{count} elements")
    return out


def payload_bytes(array: np.ndarray) -> int:
    """Bytes ``array`` holds: its buffer, or for BYTES its serialized size."""
    if array.dtype != object:
        return array.nbytes
    return sum(4 + len(str(v).encode()) for v in array.reshape(-1))
