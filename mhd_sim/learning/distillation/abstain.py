"""Teachers that know their limits: abstaining outside their distribution, confidences
discounted by their class prior or calibrated on their own held-back data.

MHD's failure is measured (docs/method.md): a specialist main head is confidently wrong on
the classes it never saw, and its largest logit cannot tell a right specialist from a wrong
one. These rules change what a teacher says about itself, at the teacher, before its
predictions leave it (and on the agent's own head m−1 when it is a candidate), so every
engine and every head's teacher choice reads them alike:

- ``calibrate``: each head's logits are divided by the temperature T that minimises the
  negative log-likelihood of the agent's held-back private samples (temperature scaling,
  Guo et al. 2017), chosen on a fixed grid, before any confidence is computed; logits of
  different architectures then compare.
- ``confidence: class_prior``: the confidence is the largest log-probability less the log of
  how often the teacher trained on that class, max_c [log p(c|x) − log π(c)] (π smoothed by
  one sample per class): a prediction of a class the teacher saw often says less about the
  sample than the prior already did (logit adjustment, Menon et al. 2021).
- ``gate``: a teacher answers only for public samples whose in-distribution score (after
  calibration) reaches the ``gate_quantile`` of its scores on its own held-back private
  samples (the threshold IDKD calibrates per client). The scores are registered in
  ``GATES``: ``in_distribution``, the largest probability (the maximum-softmax detector of
  Hendrycks & Gimpel 2017), and ``energy``, minus the free energy, logsumexp of the logits
  (Liu et al. 2020), which keeps the logits' scale that a softmax divides away. A new
  detector is one registered function of the logits. A rejected sample's confidence travels as
  −inf and its probabilities as zeros: nothing of the teacher's prediction leaves it, the
  message keeps its size (the schedule never depends on predictions), and a student falls
  back to the next candidate or, when every one abstains, has no teacher for that sample.

The rules need no extra bytes: each is applied by the teacher to what it sends.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ...registry import Registry
from .teachers import confidence

GATES = Registry("gate")  # name -> score [...] of predictions' logits [..., C]; larger: more in


@GATES.register("in_distribution")
def max_softmax(logits: torch.Tensor) -> torch.Tensor:
    """The largest probability (Hendrycks & Gimpel 2017).

    >>> max_softmax(torch.tensor([[0.0, 0.0], [4.0, 0.0]])).tolist()
    [0.5, 0.9820137619972229]
    """
    return logits.softmax(-1).amax(-1)


@GATES.register("energy")
def negative_energy(logits: torch.Tensor) -> torch.Tensor:
    """Minus the free energy, logsumexp of the logits (Liu et al. 2020): large logits
    everywhere say "seen before" even where no class wins, which a softmax cannot see.

    >>> negative_energy(torch.tensor([[0.0, 0.0], [8.0, 8.0]])).tolist()
    [0.6931471824645996, 8.693147659301758]
    """
    return torch.logsumexp(logits, -1)


TEMPERATURES = torch.exp(torch.linspace(math.log(0.05), math.log(20.0), 61))  # T's grid
HELD_BACK_MAX = 256  # held-back samples at most: a forward pass of them per message


def held_back(algo: object, private: int) -> int:
    """How many of an agent's ``private`` samples it holds back to calibrate on (never
    trained on): ``held_back`` of them, at least one, at most ``HELD_BACK_MAX``, none when
    no rule needs them or the agent has a single sample."""
    if not algo.holds_back() or private < 2:
        return 0
    return min(HELD_BACK_MAX, private - 1, max(1, round(algo.held_back * private)))


@dataclass
class Rules:
    """One agent's state for the rules: per head, its temperature and gate threshold (from
    its last calibration), the log of its smoothed private class prior, and its gate's
    score (None: no gate)."""

    temperature: torch.Tensor  # [H]
    threshold: torch.Tensor  # [H]: −inf where nothing is rejected
    log_prior: torch.Tensor  # [C]
    score: Callable[[torch.Tensor], torch.Tensor] | None = None

    @classmethod
    def start(cls, heads: int, labels: torch.Tensor, classes: int, algo: object) -> Rules:
        counts = torch.bincount(labels.cpu(), minlength=classes).float() + 1.0
        return cls(
            torch.ones(heads),
            torch.full((heads,), -math.inf),
            (counts / counts.sum()).log(),
            GATES.get(algo.gate) if algo.gate else None,
        )

    def calibrate(self, logits: torch.Tensor, y: torch.Tensor, algo: object) -> None:
        """Refit from the held-back samples' logits [H, n, C] and labels [n]."""
        logits = logits.float().cpu()
        if algo.calibrate:
            scaled = logits[:, None] / TEMPERATURES[None, :, None, None]  # [H, T, n, C]
            nll = -scaled.log_softmax(-1).gather(-1, y.cpu().expand(*scaled.shape[:-1])[..., None])
            self.temperature = TEMPERATURES[nll.squeeze(-1).mean(-1).argmin(-1)]
        if self.score is not None:
            score = self.score(self.scaled(logits, slice(None)))  # [H, n]
            self.threshold = torch.quantile(
                score, algo.gate_quantile, dim=-1, interpolation="lower"
            )

    def scaled(self, logits: torch.Tensor, heads: torch.Tensor | slice) -> torch.Tensor:
        return logits.float() / self.temperature[heads].to(logits.device)[:, None, None]

    def judge(
        self, logits: torch.Tensor, heads: torch.Tensor | slice, how: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Confidences [S, n] of these heads' predictions ``logits`` [S, n, C] (−inf where the
        teacher abstains) and which it rejects [S, n]."""
        z = self.scaled(logits, heads)
        if how == "class_prior":
            conf = (z.log_softmax(-1) - self.log_prior.to(z.device)).amax(-1)
        else:
            conf = confidence(z, how)
        if self.score is None:
            return conf, torch.zeros(conf.shape, dtype=torch.bool, device=conf.device)
        rejected = self.score(z) < self.threshold[heads].to(z.device)[:, None]
        return conf.masked_fill(rejected, -math.inf), rejected
