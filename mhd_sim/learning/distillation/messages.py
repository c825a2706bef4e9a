"""Wire formats, so that bytes sent are bytes actually encoded.

A prediction message carries a header, the head indices it holds, the public-sample ids,
the sender's probabilities ``[samples, heads, classes]``, optionally each prediction's
confidence ``[samples, heads]`` (what the receiver needs to choose the most confident
teacher without re-deriving it from rounded probabilities, which saturate at 1.0 in
float16) and optionally its embeddings ``[samples, dim]``. A weight message (gossip) carries
the sender's flattened parameters.

Encodings of the values: ``float32`` (4 bytes), ``float16`` and ``bfloat16`` (2 bytes), and
``topk``: per sample and head only the k largest probabilities (float16) with their class
indices (1 byte, 2 beyond 256 classes); the receiver spreads the remaining mass evenly over
the other classes. Confidences and embeddings are float16 under ``topk``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from ..algorithms.settings import ENCODINGS as ENCODING_NAMES

# magic, version, encoding, k, heads, sender, samples, classes, embedding dim, confidences, time
HEADER = struct.Struct("<4sBBBHIIHHBd")
# magic, version, encoding, sender, weight, values, time
WEIGHTS_HEADER = struct.Struct("<4sBBIIId")
MAGIC, WEIGHTS_MAGIC, VERSION = b"MHDP", b"MHDW", 3
ENCODINGS = {name: code for code, name in enumerate(ENCODING_NAMES)}  # name -> its header code
_NAMES = {code: name for name, code in ENCODINGS.items()}


@dataclass(frozen=True)
class Predictions:
    """A decoded message: who made which head's probabilities on which samples, and when."""

    sender: int
    produced: float
    heads: np.ndarray  # uint8 [heads]
    ids: np.ndarray  # uint32 [samples]
    probs: np.ndarray  # float32 (or float16, see decode) [samples, heads, classes]
    embeddings: np.ndarray | None = None  # float32 [samples, dim]
    confidence: np.ndarray | None = None  # float32 [samples, heads]


def _value_bytes(encoding: str) -> int:
    return 4 if encoding == "float32" else 2


def _index_dtype(classes: int) -> type:
    return np.uint8 if classes <= 256 else np.uint16


def encoded_size(
    samples: int,
    heads: int,
    classes: int,
    encoding: str,
    k: int = 0,
    embedding: int = 0,
    confidence: bool = False,
) -> int:
    """Bytes of a message, known before it is built: the schedule never waits on weights.

    >>> encoded_size(256, 2, 10, "float16")
    11296
    >>> encoded_size(256, 2, 10, "float16", confidence=True)  # 2 bytes per sample and head
    12320
    >>> encoded_size(256, 2, 10, "topk", k=2)  # 2 × (1-byte index + 2-byte value) per head
    4128
    """
    if encoding == "topk":
        per_head = min(k, classes) * (np.dtype(_index_dtype(classes)).itemsize + 2)
    else:
        per_head = _value_bytes(encoding) * classes
    return (
        HEADER.size
        + heads
        + 4 * samples
        + samples * heads * per_head
        + samples * (embedding + heads * confidence) * _value_bytes(side_encoding(encoding))
    )


def side_encoding(encoding: str) -> str:
    """How confidences and embeddings travel: as the probabilities, float16 under topk."""
    return "float16" if encoding == "topk" else encoding


def quantize(values: np.ndarray, encoding: str) -> np.ndarray:
    """``values`` as float32 after the round trip through ``encoding`` (what a receiver sees)."""
    return _unpack(_pack(values, side_encoding(encoding)), values.size, 0, side_encoding(encoding))[
        0
    ].reshape(values.shape)


def _pack(values: np.ndarray, encoding: str) -> bytes:
    import torch  # here, not at the top: checking a scenario never loads torch

    if encoding == "float32":
        return np.ascontiguousarray(values, dtype=np.float32).tobytes()
    if encoding == "bfloat16":
        return (
            torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
            .to(torch.bfloat16)
            .view(torch.int16)
            .numpy()
            .tobytes()
        )
    # torch's conversion rounds exactly as numpy's (to nearest even) and is several times faster
    return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32)).half().numpy().tobytes()


def _unpack(
    payload: bytes, count: int, at: int, encoding: str, half: bool = False
) -> tuple[np.ndarray, int]:
    if encoding == "float32":
        return np.frombuffer(payload, np.float32, count, at).copy(), at + 4 * count
    raw = np.frombuffer(payload, np.int16 if encoding == "bfloat16" else np.float16, count, at)
    if encoding == "bfloat16":
        import torch

        return torch.from_numpy(raw.copy()).view(torch.bfloat16).float().numpy(), at + 2 * count
    return raw.copy() if half else raw.astype(np.float32), at + 2 * count


def encode(
    sender: int,
    produced: float,
    heads: np.ndarray,
    ids: np.ndarray,
    probs: np.ndarray,
    encoding: str,
    k: int = 0,
    embeddings: np.ndarray | None = None,
    confidence: np.ndarray | None = None,
) -> bytes:
    """Serialise predictions: ``probs`` [samples, heads, classes], ``embeddings`` [samples,
    dim], ``confidence`` [samples, heads]."""
    samples, n_heads, classes = probs.shape
    k = min(k, classes)  # top-k of fewer classes than k: all of them
    dim = 0 if embeddings is None else embeddings.shape[1]
    conf = confidence is not None
    code = ENCODINGS[encoding]
    parts = [
        HEADER.pack(
            MAGIC, VERSION, code, k, n_heads, sender, samples, classes, dim, conf, produced
        ),
        np.asarray(heads, dtype=np.uint8).tobytes(),
        np.asarray(ids, dtype=np.uint32).tobytes(),
    ]
    if encoding == "topk":
        top = np.argsort(-probs, axis=-1, kind="stable")[..., :k]
        parts += [
            top.astype(_index_dtype(classes)).tobytes(),
            np.take_along_axis(probs, top, -1).astype(np.float16).tobytes(),
        ]
    else:
        parts.append(_pack(probs, encoding))
    if confidence is not None:
        parts.append(_pack(confidence, side_encoding(encoding)))
    if embeddings is not None:
        parts.append(_pack(embeddings, side_encoding(encoding)))
    return b"".join(parts)


def decode(payload: bytes, half: bool = False) -> Predictions:
    """Parse a message made by :func:`encode`; values come back as float32, or as float16
    when they are float16 on the wire and the receiver stores ``half`` (exact either way)."""
    magic, version, code, k, n_heads, sender, samples, classes, dim, conf, produced = (
        HEADER.unpack_from(payload)
    )
    if magic != MAGIC or version != VERSION:
        raise ValueError("not a prediction message of this version")
    encoding = _NAMES[code]
    at = HEADER.size
    heads = np.frombuffer(payload, np.uint8, n_heads, at)
    at += n_heads
    ids = np.frombuffer(payload, np.uint32, samples, at)
    at += 4 * samples
    if encoding == "topk":
        index = _index_dtype(classes)
        count = samples * n_heads * k
        top = np.frombuffer(payload, index, count, at).reshape(samples, n_heads, k).astype(np.int64)
        at += count * np.dtype(index).itemsize
        values = (
            np.frombuffer(payload, np.float16, count, at)
            .reshape(samples, n_heads, k)
            .astype(np.float32)
        )
        at += 2 * count
        rest = np.clip(1.0 - values.sum(-1, keepdims=True), 0.0, None) / max(classes - k, 1)
        probs = np.broadcast_to(rest, (samples, n_heads, classes)).copy()
        np.put_along_axis(probs, top, values, -1)
    else:
        flat, at = _unpack(payload, samples * n_heads * classes, at, encoding, half=half)
        probs = flat.reshape(samples, n_heads, classes)
    confidence = emb = None
    if conf:
        flat, at = _unpack(payload, samples * n_heads, at, side_encoding(encoding))
        confidence = flat.reshape(samples, n_heads)
    if dim:
        flat, at = _unpack(payload, samples * dim, at, side_encoding(encoding))
        emb = flat.reshape(samples, dim)
    return Predictions(sender, produced, heads, ids, probs, emb, confidence)


# --- weights (gossip, fedavg) -----------------------------------------------------------


@dataclass(frozen=True)
class Weights:
    sender: int
    # the sender's weight where weights are averaged: its number of neighbours (gossip's
    # Metropolis weights) or its private sample count (fedavg's average)
    weight: int
    produced: float
    values: np.ndarray  # float32 [parameters]


def weights_size(values: int, encoding: str) -> int:
    """Bytes of a weight message of ``values`` parameters.

    >>> weights_size(1000, "float16")
    2026
    """
    return WEIGHTS_HEADER.size + values * _value_bytes(encoding)


def encode_weights(
    sender: int, weight: int, produced: float, values: np.ndarray, encoding: str
) -> bytes:
    if encoding == "topk":
        raise ValueError(
            "encoding topk applies to predictions; "
            "gossip sends weights as float32, float16 or bfloat16"
        )
    header = WEIGHTS_HEADER.pack(
        WEIGHTS_MAGIC, VERSION, ENCODINGS[encoding], sender, weight, len(values), produced
    )
    return header + _pack(values, encoding)


def decode_weights(payload: bytes) -> Weights:
    magic, version, code, sender, weight, count, produced = WEIGHTS_HEADER.unpack_from(payload)
    if magic != WEIGHTS_MAGIC or version != VERSION:
        raise ValueError("not a weight message of this version")
    values, _ = _unpack(payload, count, WEIGHTS_HEADER.size, _NAMES[code])
    return Weights(sender, weight, produced, values)
