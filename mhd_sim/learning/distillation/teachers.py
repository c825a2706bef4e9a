"""Teachers for distillation: gather the candidates, aggregate them per sample, sharpen.

The candidates for student head m are the cached predictions of the peers' heads it learns
from (head m−1; also head m for the last head with ``last_head_loop``) and, with
``include_self``, the agent's own head m−1 as it is now. ``max_confidence`` takes, per
sample, the candidate with the largest confidence: the largest logit (``max_logit``, the
paper's) or probability (``max_probability``, ranked by its log-odds so that it never
saturates at 1.0), as the sender computed it in float32. Candidates that truly tie are
decided by a seeded draw (``ties``), never by their order.

``reference_teachers`` is the method as written and serves every configuration (any
aggregation, several sources per head, leading agent dimensions for the batched engine).
``confident_teachers`` is its fast path for the common case, one cache column per student
head and max-confidence teachers on CPU: the choice is made in numpy on confidences kept
beside the cache, then only the chosen predictions are gathered. A test checks that both
give exactly the same teachers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .names import AGGREGATIONS


@dataclass(slots=True)
class Choice:
    """A student head's teacher on a step's public samples, and how it was chosen (what the
    teacher diagnostics read). Leading dimensions: agents, for the batched engine."""

    head: int
    target: torch.Tensor  # [..., B, C]: the teacher's distribution, sharpened
    ok: torch.Tensor | None  # [..., B]: which samples have one (None: all of them)
    own: Any = None  # [..., B]: the agent's own head m−1 was chosen (None: not a candidate)
    confidence: Any = None  # [..., B]: the chosen one's confidence (None: not max_confidence)


def confidence(logits: torch.Tensor, how: str) -> torch.Tensor:
    """Each prediction's confidence [...] from its logits [..., C], in float32 (larger: more
    confident):

    - ``max_logit`` (the paper's): its largest logit;
    - ``max_probability``: the log-odds of its largest probability, log(p / (1 − p)), which
      orders exactly as p does but never rounds to a tie (p is 1.0 in float16 long before its
      log-odds stop growing);
    - ``margin``: the largest probability minus the second;
    - ``entropy``: minus the entropy of its probabilities;
    - ``normalized_logit``: the largest logit minus the mean logit, in standard deviations
      of the logits: free of a model's overall logit scale, so that architectures compare.

    >>> confidence(torch.tensor([[2.0, 0.0], [40.0, 0.0]]), "max_logit").tolist()
    [2.0, 40.0]
    >>> confidence(torch.tensor([[30.0, 0.0], [40.0, 0.0], [0.0, 0.0]]), "max_probability").tolist()
    [30.0, 40.0, -0.0]
    >>> x = torch.tensor([[2.0, 0.0, 0.0], [20.0, 0.0, 0.0]])  # the same ranking, 10x the scale
    >>> [round(v, 3) for v in confidence(x, "normalized_logit").tolist()]
    [1.414, 1.414]
    """
    logits = logits.float()
    top = logits.max(-1, keepdim=True)
    if how == "max_logit":
        return top.values.squeeze(-1)
    if how == "max_probability":
        others = (logits - top.values).scatter(-1, top.indices, -torch.inf)
        return -torch.logsumexp(others, -1)
    if how == "normalized_logit":
        spread = logits.std(-1, correction=0).clamp_min(1e-6)
        return (top.values.squeeze(-1) - logits.mean(-1)) / spread
    p = torch.softmax(logits, -1)
    if how == "margin":
        two = p.topk(2, -1).values
        return two[..., 0] - two[..., 1]
    if how == "entropy":
        return (p * torch.log_softmax(logits, -1)).sum(-1)
    raise ValueError(f"unknown confidence {how!r}")


def message_values(
    logits: torch.Tensor, how: str, ranked: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """What a message carries of the heads sent, from their logits [..., S, n, C]: the
    probabilities [..., n, S, C] and, for max_confidence (``ranked``), the confidences
    [..., n, S] that peers will rank them by (None otherwise). Leading dimensions: agents, for
    the batched engine."""
    probs = torch.softmax(logits, -1).transpose(-3, -2)
    if not ranked:
        return probs, None
    return probs, confidence(logits, how).transpose(-2, -1)


def aggregate(
    cands: torch.Tensor,
    mask: torch.Tensor,
    how: str,
    conf: torch.Tensor | None = None,
    ties: torch.Tensor | None = None,
    era: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Combine candidate teacher distributions per sample.

    ``cands`` is [..., K, B, C] probabilities, ``mask`` [..., K, B] marks which candidates
    exist (leading dimensions: agents, for the batched engine), ``conf`` [..., K, B] their
    confidences (default: their largest probability) and ``ties`` [..., K, B] random
    numbers that decide between equally confident candidates (default: the first wins).
    ``entropy_reduction`` is DS-FL's: softmax(mean / ``era``), the mean sharpened.
    Returns the teacher [..., B, C], which samples have one at all [..., B] and, for
    max_confidence, which candidate was chosen and its confidence [..., B] (else None).

    >>> c = torch.tensor([[[0.75, 0.25]], [[0.125, 0.875]]]); m = torch.tensor([[True], [True]])
    >>> aggregate(c, m, "max_confidence")[0].tolist()
    [[0.125, 0.875]]
    >>> aggregate(c, m, "max_confidence", conf=torch.tensor([[3.0], [3.0]]),
    ...           ties=torch.tensor([[0.9], [0.2]]))[0].tolist()  # a tie: the draw decides
    [[0.75, 0.25]]
    >>> aggregate(c, m, "mean")[0].tolist()
    [[0.4375, 0.5625]]
    >>> [round(p, 4) for p in aggregate(c, m, "entropy_reduction")[0][0].tolist()]
    [0.2227, 0.7773]
    """
    if conf is not None:  # a teacher that abstains (its confidence −inf) is no candidate
        mask = mask & (conf > -torch.inf)
    valid = mask.any(-2)
    best = chosen = None
    if how == "max_confidence":
        conf = cands.max(-1).values if conf is None else conf
        ranked = torch.where(mask, conf, -torch.inf)
        # max's indices are argmax's (the first of equal maxima), and far faster off the last dim
        if ties is None:
            best = ranked.max(-2, keepdim=True).indices  # [..., 1, B]
        else:
            top = ranked.max(-2, keepdim=True).values
            best = torch.where(mask & (ranked == top), ties, -1.0).max(-2, keepdim=True).indices
        at = best.unsqueeze(-1).expand(*best.shape, cands.shape[-1])
        teacher = cands.gather(-3, at).squeeze(-3)
        chosen = ranked.gather(-2, best).squeeze(-2)
        best = best.squeeze(-2)
    elif how in ("mean", "confidence_weighted", "entropy_reduction"):
        w = mask.to(cands.dtype)
        if how == "confidence_weighted":  # weights are probabilities, whatever ranks max_confidence
            w = w * cands.max(-1).values
        teacher = (cands * w[..., None]).sum(-3) / w.sum(-2).clamp_min(1e-12)[..., None]
        if how == "entropy_reduction":
            teacher = torch.softmax(teacher / era, -1)
    else:
        raise ValueError(f"unknown aggregation {how!r}; choose from {', '.join(AGGREGATIONS)}")
    return teacher, valid, best, chosen


def sharpen(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(z/τ) from softmax(z): p^(1/τ), renormalised (identity at τ = 1)."""
    if temperature == 1.0:
        return probs
    logp = torch.log(probs.clamp_min(1e-12)) / temperature
    return torch.softmax(logp, -1)


def reference_teachers(
    probs: torch.Tensor,
    valid: torch.Tensor,
    sources: dict[int, list[int]],
    column: dict[int, int],
    how: str,
    temperature: float,
    own: torch.Tensor | None = None,
    conf: torch.Tensor | None = None,
    own_conf: torch.Tensor | None = None,
    ties: torch.Tensor | None = None,
    era: float = 0.1,
) -> list[Choice]:
    """Per student head m: gather the candidates — the cached peer predictions of each
    source head (``probs`` [..., K, B, S, C], ``valid`` [..., K, B]: one time stands for all
    of a sample's heads, ``conf``
    [..., K, B, S]) and, when ``own`` [..., H, B, C] is given, the agent's own head m−1
    (``own_conf`` [..., H, B]) — aggregate them, then sharpen. ``ties`` [..., J, R, B] holds
    a random number per student head j and candidate row: the peers of each source head in
    turn, then the own head. ``era``: entropy_reduction's temperature."""
    out = []
    K = probs.shape[-4]
    for j, (m, src) in enumerate(sources.items()):
        cands = [probs[..., column[h], :] for h in src]
        masks = [valid] * len(src)
        confs = [conf[..., column[h]] for h in src] if conf is not None else []
        if own is not None and m > 0:
            cands.append(own[..., m - 1, :, :].unsqueeze(-3))
            ones = (*own.shape[:-3], 1, own.shape[-2])  # [..., 1, B]: always there
            masks.append(torch.ones(ones, dtype=torch.bool, device=own.device))
            if confs:
                confs.append(own_conf[..., m - 1, :].unsqueeze(-2))
        with_own = len(cands) > len(src)
        rows = len(src) * K + with_own
        if not rows:  # no candidate at all (no peer's message yet, own head not one): no term
            out.append(_none(m, probs.shape[:-4], probs.shape[-3], probs.shape[-1], probs))
            continue
        draw = ties[..., j, :rows, :] if ties is not None else None
        teacher, ok, best, chosen = aggregate(
            _cat(cands, -3), _cat(masks, -2), how, _cat(confs, -2) if confs else None, draw, era
        )
        own_chosen = best == rows - 1 if with_own and best is not None else None
        out.append(Choice(m, sharpen(teacher, temperature), ok, own_chosen, chosen))
    return out


def _none(m: int, lead: tuple, B: int, C: int, like: torch.Tensor) -> Choice:
    """Head ``m``'s choice on ``B`` samples when it has no candidate: no sample has a teacher,
    so the step's loss has no term for it (the main head of the hybrid, before any peer's
    message)."""
    target = like.new_zeros(*lead, B, C, dtype=torch.float32)
    ok = torch.zeros(*lead, B, dtype=torch.bool, device=like.device)
    return Choice(m, target, ok, None, target.new_full((*lead, B), -torch.inf))


def _cat(tensors: list[torch.Tensor], dim: int) -> torch.Tensor:
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors, dim)


def confident_teachers(
    cache_p: torch.Tensor,
    cache_c: np.ndarray,
    u: np.ndarray,
    valid: np.ndarray,
    columns: dict[int, int],
    temperature: float,
    ties: np.ndarray,
    own: torch.Tensor | None = None,
    own_conf: np.ndarray | None = None,
) -> list[Choice]:
    """``reference_teachers`` for max-confidence teachers, one cache column per student head
    (``columns``: student head -> column): per (sample, column) the most confident of the
    peers (confidences ``cache_c`` [K, P, S] kept beside ``cache_p`` [K, P, S, C]) and, with
    ``own`` [H, B, C], of the agent's own head m−1 (``own_conf`` [H, B]), ties drawn by
    ``ties`` [J, R, B], chosen in numpy; then one gather of the chosen predictions. A head
    whose samples all have a teacher gets None for its mask, as a step uses it."""
    K, P, S, C = cache_p.shape
    B = len(u)
    out = []
    peers = cache_c.take(u, axis=1)  # [K, B, S]
    for j, (m, col) in enumerate(columns.items()):
        conf, mask = peers[:, :, col], valid  # [K, B]
        with_own = own is not None and m > 0
        if not K and not with_own:  # no candidate at all: no term (see reference_teachers)
            choice = _none(m, (), B, C, cache_p)
            choice.confidence = choice.confidence.numpy()
            out.append(choice)
            continue
        if with_own:
            conf = np.concatenate([conf, own_conf[m - 1][None]])
            mask = np.concatenate([mask, np.ones((1, B), dtype=bool)])
        mask = mask & (conf > -np.inf)  # a teacher that abstains is no candidate
        ranked = np.where(mask, conf, -np.inf)
        tied = mask & (ranked == ranked.max(0))
        best = np.where(tied, ties[j, : len(mask)], -1.0).argmax(0)  # [B]
        from_peer = np.minimum(best, K - 1) if K else np.zeros(B, dtype=np.int64)
        at = torch.from_numpy((from_peer * P + u) * S + col)
        chosen = cache_p.view(K * P * S, C).index_select(0, at).float() if K else None
        if with_own:
            mine = torch.from_numpy(best == K)[:, None]
            chosen = own[m - 1] if chosen is None else torch.where(mine, own[m - 1], chosen)
        ok = mask.any(0)
        target = sharpen(chosen, temperature)
        out.append(
            Choice(m, target, None if ok.all() else torch.from_numpy(ok),
                   best == K if with_own else None, ranked[best, np.arange(B)])
        )  # fmt: skip
    return out
