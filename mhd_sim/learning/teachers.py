"""Teachers for distillation: gather the candidates, aggregate them per sample, sharpen.

``reference_teachers`` is the method as written and serves every configuration (any
aggregation, several sources per head, the agent's own head, leading agent dimensions for
the batched engine). ``confident_teachers`` is its fast path for the common case, one
cache column per student head and max-confidence teachers on CPU: the choice is made in
numpy on confidences kept beside the cache, then only the chosen predictions are gathered.
A test checks that both give exactly the same teachers.
"""

from __future__ import annotations

import numpy as np
import torch

AGGREGATIONS = ("max_confidence", "mean", "confidence_weighted")
# (student head, teacher [..., B, C], which samples have one [..., B])
Teacher = tuple[int, torch.Tensor, torch.Tensor]
# the same for a per-agent step: the mask is None when every sample has a teacher
StepTeacher = tuple[int, torch.Tensor, torch.Tensor | None]


def aggregate(
    cands: torch.Tensor, mask: torch.Tensor, how: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Combine candidate teacher distributions per sample.

    ``cands`` is [..., K, B, C] probabilities, ``mask`` [..., K, B] marks which candidates
    exist (leading dimensions: agents, for the batched engine). Returns the teacher
    [..., B, C] and which samples have one at all [..., B].

    >>> c = torch.tensor([[[0.75, 0.25]], [[0.125, 0.875]]]); m = torch.tensor([[True], [True]])
    >>> aggregate(c, m, "max_confidence")[0].tolist()
    [[0.125, 0.875]]
    >>> aggregate(c, m, "mean")[0].tolist()
    [[0.4375, 0.5625]]
    """
    valid = mask.any(-2)
    conf = cands.max(-1).values
    if how == "max_confidence":
        # max's indices are argmax's (the first of equal maxima), and far faster off the last dim
        best = torch.where(mask, conf, -1.0).max(-2, keepdim=True).indices  # [..., 1, B]
        teacher = cands.gather(-3, best.unsqueeze(-1).expand(*best.shape, cands.shape[-1])).squeeze(
            -3
        )
    elif how in ("mean", "confidence_weighted"):
        w = mask.to(cands.dtype) * (conf if how == "confidence_weighted" else 1.0)
        teacher = (cands * w[..., None]).sum(-3) / w.sum(-2).clamp_min(1e-12)[..., None]
    else:
        raise ValueError(f"unknown aggregation {how!r}; choose from {', '.join(AGGREGATIONS)}")
    return teacher, valid


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
) -> list[Teacher]:
    """Per student head m: the candidates are the cached peer predictions of each source
    head (``probs`` [..., K, B, S, C] with ``valid`` [..., K, B, S]) and, when ``own``
    [..., H, B, C] is given, the agent's own head m−1; aggregate them, then sharpen."""
    out = []
    for m, src in sources.items():
        cands = [probs[..., column[h], :] for h in src]
        masks = [valid[..., column[h]] for h in src]
        if own is not None and m > 0:
            cands.append(own[..., m - 1, :, :].unsqueeze(-3))
            ones = (*own.shape[:-3], 1, own.shape[-2])  # [..., 1, B]: always there
            masks.append(torch.ones(ones, dtype=torch.bool, device=own.device))
        if len(cands) == 1:
            teacher, ok = aggregate(cands[0], masks[0], how)
        else:
            teacher, ok = aggregate(torch.cat(cands, -3), torch.cat(masks, -2), how)
        out.append((m, sharpen(teacher, temperature), ok))
    return out


def confident_teachers(
    cache_p: torch.Tensor,
    cache_c: np.ndarray,
    u: np.ndarray,
    valid: np.ndarray,
    columns: dict[int, int],
    temperature: float,
) -> list[StepTeacher]:
    """``reference_teachers`` for max-confidence teachers, one cache column per student head
    (``columns``: student head -> column): per (sample, column) the first of the most
    confident peers, chosen in numpy from the confidences ``cache_c`` [K, P, S] kept beside
    ``cache_p`` [K, P, S, C]; then one gather of the chosen predictions. A head whose samples
    all have a teacher gets None for its mask, as a step uses it."""
    K, P, S, C = cache_p.shape
    best = np.where(valid, cache_c.take(u, axis=1), -1.0).argmax(0).T  # [S, B]
    at = (best * P + u) * S + np.arange(S)[:, None]
    chosen = cache_p.view(K * P * S, C).index_select(0, torch.from_numpy(at.reshape(-1)))
    chosen = sharpen(chosen.view(S, len(u), C).float(), temperature)  # [S, B, C]
    ok = valid.any(0).T  # [S, B]: samples with any teacher
    complete = ok.all(1).tolist()
    return [
        (m, chosen[col], None if complete[col] else torch.from_numpy(ok[col].copy()))
        for m, col in columns.items()
    ]
