"""The wire format of a prediction message, so that bytes sent are bytes actually encoded.

A message carries a header, the head indices it holds, the public-sample ids and the
sender's probabilities ``[samples, heads, classes]`` in the chosen encoding.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

HEADER = struct.Struct("<4sBBHIIHd")  # magic, version, encoding, heads, sender, samples, classes, time
MAGIC, VERSION = b"MHDP", 1
ENCODINGS = {"float32": (0, np.float32), "float16": (1, np.float16)}
_BY_CODE = {code: (name, dtype) for name, (code, dtype) in ENCODINGS.items()}


@dataclass(frozen=True)
class Predictions:
    """A decoded message: who made which head's probabilities on which samples, and when."""

    sender: int
    produced: float
    heads: np.ndarray  # uint8 [heads]
    ids: np.ndarray  # uint32 [samples]
    probs: np.ndarray  # float32 [samples, heads, classes]


def encoded_size(samples: int, heads: int, classes: int, encoding: str) -> int:
    """Bytes of a message, known before it is built: the schedule never waits on weights.

    >>> encoded_size(256, 2, 10, "float16")
    11292
    """
    value_bytes = np.dtype(ENCODINGS[encoding][1]).itemsize
    return HEADER.size + heads + 4 * samples + value_bytes * samples * heads * classes


def encode(sender: int, produced: float, heads: np.ndarray, ids: np.ndarray, probs: np.ndarray,
           encoding: str) -> bytes:
    """Serialise predictions; ``probs`` is [samples, heads, classes]."""
    code, dtype = ENCODINGS[encoding]
    samples, n_heads, classes = probs.shape
    header = HEADER.pack(MAGIC, VERSION, code, n_heads, sender, samples, classes, produced)
    return b"".join((
        header,
        np.asarray(heads, dtype=np.uint8).tobytes(),
        np.asarray(ids, dtype=np.uint32).tobytes(),
        np.ascontiguousarray(probs, dtype=dtype).tobytes(),
    ))


def decode(payload: bytes) -> Predictions:
    """Parse a message made by :func:`encode`; values come back as float32."""
    magic, version, code, n_heads, sender, samples, classes, produced = HEADER.unpack_from(payload)
    if magic != MAGIC or version != VERSION:
        raise ValueError("not a prediction message of this version")
    _, dtype = _BY_CODE[code]
    at = HEADER.size
    heads = np.frombuffer(payload, np.uint8, n_heads, at)
    at += n_heads
    ids = np.frombuffer(payload, np.uint32, samples, at)
    at += 4 * samples
    probs = np.frombuffer(payload, dtype, samples * n_heads * classes, at)
    return Predictions(sender, produced, heads, ids,
                       probs.reshape(samples, n_heads, classes).astype(np.float32))
