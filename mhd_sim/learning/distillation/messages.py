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
from typing import Any

import numpy as np
import torch

from .names import ENCODINGS as ENCODING_NAMES

# magic, version, encoding, k, heads, sender, samples, classes, embedding dim, confidences, time
HEADER = struct.Struct("<4sBBBHIIHHBd")
# magic, version, encoding, sender, weight, values, time
WEIGHTS_HEADER = struct.Struct("<4sBBIIId")
MAGIC, WEIGHTS_MAGIC, VERSION = b"MHDP", b"MHDW", 3
ENCODINGS = {name: code for code, name in enumerate(ENCODING_NAMES)}  # name -> its header code
_NAMES = {code: name for name, code in ENCODINGS.items()}


@dataclass(frozen=True)
class Predictions:
    """A decoded message: which heads' probabilities on which public samples. Who sent it and
    when travel once, on the network's envelope (``world.queue.Message``); the ids and the
    confidences stay numpy (the schedule side and the teacher choice read them), the values
    the student learns from are tensors."""

    heads: np.ndarray  # uint8 [heads]
    ids: np.ndarray  # uint32 [samples]
    probs: torch.Tensor  # float32 (or float16, see decode) [samples, heads, classes]
    embeddings: torch.Tensor | None = None  # float32 [samples, dim]
    confidence: np.ndarray | None = None  # float32 [samples, heads]


@dataclass(eq=False)
class Parcel:
    """A prediction message that is never serialised: a deferring engine's (its size known
    now, its values made later, through the real encoding) and a timing-only run's (size and
    public samples only). ``len`` is its size on the wire."""

    ids: np.ndarray | None
    size: int
    heads: np.ndarray | None = None  # uint8: the heads it carries
    made: float = 0.0  # when it was made (simulated seconds)
    values: Any = None  # its decoded predictions, once made
    probs: torch.Tensor | None = None  # batched: [samples, heads sent, classes], as cached
    conf: torch.Tensor | None = None  # batched: [samples, heads sent], the confidences
    emb: torch.Tensor | None = None  # batched: [samples, width], the embeddings (if any)

    def __len__(self) -> int:
        return self.size


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


def quantize(values: torch.Tensor, encoding: str) -> np.ndarray:
    """``values`` as float32 after the round trip through ``encoding`` (what a receiver sees)."""
    side = side_encoding(encoding)
    return _unpack(_pack(values, side), values.numel(), 0, side)[0].reshape(values.shape)


def _pack(values: torch.Tensor | np.ndarray, encoding: str) -> bytes:
    """The bytes of ``values`` in ``encoding``; torch rounds to float16 exactly as numpy (to
    nearest even) and several times faster."""
    values = torch.as_tensor(values).detach().float()
    if encoding == "bfloat16":
        values = values.to(torch.bfloat16).view(torch.int16)
    elif encoding != "float32":
        values = values.half()
    return values.cpu().numpy().tobytes()


def _unpack(
    payload: bytes, count: int, at: int, encoding: str, half: bool = False
) -> tuple[np.ndarray, int]:
    if encoding == "float32":
        return np.frombuffer(payload, np.float32, count, at).copy(), at + 4 * count
    raw = np.frombuffer(payload, np.int16 if encoding == "bfloat16" else np.float16, count, at)
    if encoding == "bfloat16":
        return torch.from_numpy(raw.copy()).view(torch.bfloat16).float().numpy(), at + 2 * count
    return raw.copy() if half else raw.astype(np.float32), at + 2 * count


def encode(
    sender: int,
    produced: float,
    heads: np.ndarray,
    ids: np.ndarray,
    probs: torch.Tensor,
    encoding: str,
    k: int = 0,
    embeddings: torch.Tensor | None = None,
    confidence: torch.Tensor | None = None,
) -> bytes:
    """Serialise predictions: ``probs`` [samples, heads, classes], ``embeddings`` [samples,
    dim], ``confidence`` [samples, heads], as the forward pass made them (tensors)."""
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
        probs = torch.as_tensor(probs).detach().float()
        top = torch.argsort(-probs, dim=-1, stable=True)[..., :k]
        parts += [
            top.cpu().numpy().astype(_index_dtype(classes)).tobytes(),
            _pack(probs.gather(-1, top), "float16"),
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
    when they are float16 on the wire and the receiver stores ``half`` (exact either way).
    The header's sender and time are not returned: the envelope carries them."""
    magic, version, code, k, n_heads, _, samples, classes, dim, conf, _ = HEADER.unpack_from(
        payload
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
        emb = torch.from_numpy(flat.reshape(samples, dim))
    return Predictions(heads, ids, torch.from_numpy(probs), emb, confidence)


# --- weights (gossip, fedavg) -----------------------------------------------------------


@dataclass(frozen=True)
class Weights:
    # the sender's weight where weights are averaged: its number of neighbours (gossip's
    # Metropolis weights) or its private sample count (fedavg's average)
    weight: int
    values: torch.Tensor  # float32 [parameters]


def weights_size(values: int, encoding: str) -> int:
    """Bytes of a weight message of ``values`` parameters.

    >>> weights_size(1000, "float16")
    2026
    """
    return WEIGHTS_HEADER.size + values * _value_bytes(encoding)


def encode_weights(
    sender: int, weight: int, produced: float, values: torch.Tensor, encoding: str
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
    magic, version, code, _, weight, count, _ = WEIGHTS_HEADER.unpack_from(payload)
    if magic != WEIGHTS_MAGIC or version != VERSION:
        raise ValueError("not a weight message of this version")
    values, _ = _unpack(payload, count, WEIGHTS_HEADER.size, _NAMES[code])
    return Weights(weight, torch.from_numpy(values))
