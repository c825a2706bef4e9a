"""Teacher diagnostics: how often the teachers a distilling agent chose were right, and whose.

The simulator knows what no agent knows, the labels of the public samples. After every
distillation step it counts, per student head, on the step's public samples that had a
teacher: how many chosen teachers predicted the true label (``teacher_acc``), how many
were the agent's own head m−1 (``own_head``), how many predicted one of the agent's main
classes (``own_class``: over-represented in its private data, π_i(c) > 1/C), and the mean
confidence of the right and of the wrong choices (the confidence max_confidence ranks by;
empty for the ``mean`` aggregations). At each evaluation the counts since the last one
become rows of ``teachers.csv`` (``time, agent, head, steps, samples, teacher_acc,
own_head, own_class, conf_right, conf_wrong``). They explain a result; they never feed back
into learning.

>>> log = TeacherLog(np.array([0, 1, 2, 2]), np.array([True, False, False]), [1])
>>> log.record(np.array([0, 1, 2]), 0, np.array([0, 2, 2]), None, np.array([True, False, True]),
...            np.array([4.0, 1.0, 2.0]))
>>> log.rows(10.0, agent=5)  # 2 of 3 right: samples 0 and 2
[(10.0, 5, 1, 1, 3, 0.6666666666666666, 0.6666666666666666, 0.3333333333333333, 3.0, 1.0)]
"""

from __future__ import annotations

from typing import Any

import numpy as np

# per student head, the running sums since the last evaluation
_STEPS, _SAMPLES, _RIGHT, _OWN, _OWN_CLASS, _CONF_RIGHT, _CONF_WRONG, _RANKED = range(8)


class TeacherLog:
    """One agent's teacher diagnostics, per student head (``heads``), reset at each reading."""

    def __init__(self, public_y: np.ndarray, main: np.ndarray, heads: list[int]) -> None:
        """``public_y``: the public samples' labels; ``main`` [C]: the agent's main classes."""
        self.public_y, self.main, self.heads = public_y, main, heads
        self.sums = np.zeros((len(heads), 8))

    def record(
        self,
        public: np.ndarray,
        j: int,
        predicted: np.ndarray,
        ok: np.ndarray | None,
        own: np.ndarray | None,
        confidence: np.ndarray | None,
    ) -> None:
        """One step's teachers for student head ``heads[j]`` on the public samples ``public``:
        each teacher's class (``predicted`` [B]), which samples had one (``ok``; None: all),
        which were the agent's own head (``own``) and the chosen confidences."""
        y = self.public_y[public]
        right = predicted == y
        if ok is not None:
            right &= ok
        sums = self.sums[j]
        sums[_STEPS] += 1
        n = len(y) if ok is None else int(ok.sum())
        sums[_SAMPLES] += n
        sums[_RIGHT] += int(right.sum())
        chose = self.main[predicted]
        sums[_OWN_CLASS] += int((chose if ok is None else chose & ok).sum())
        if own is not None:
            sums[_OWN] += int((own if ok is None else own & ok).sum())
        if confidence is not None:
            wrong = ~right if ok is None else ok & ~right
            sums[_CONF_RIGHT] += float(confidence[right].sum())
            sums[_CONF_WRONG] += float(confidence[wrong].sum())
            sums[_RANKED] += n

    def record_step(self, public: np.ndarray, chosen: list[tuple], row: int | None = None) -> None:
        """A step's teachers, one :func:`chosen_arrays` tuple per student head; ``row``: this
        agent's row when the arrays hold a batched wave's agents."""
        for j, arrays in enumerate(chosen):
            if row is not None:
                arrays = tuple(None if a is None else a[row] for a in arrays)
            self.record(public, j, *arrays)

    def rows(self, time: float, agent: int) -> list[tuple]:
        """``teachers.csv`` rows since the last reading (a head with no step: no row)."""
        out = []
        for j, head in enumerate(self.heads):
            s = self.sums[j].tolist()  # Python floats: the CSV writes them as they are
            if not s[_SAMPLES]:
                continue
            n, right = s[_SAMPLES], s[_RIGHT]
            ranked = s[_RANKED] > 0
            out.append(
                (
                    time,
                    agent,
                    head,
                    int(s[_STEPS]),
                    int(n),
                    right / n,
                    s[_OWN] / n if ranked else None,
                    s[_OWN_CLASS] / n,
                    s[_CONF_RIGHT] / right if ranked and right else None,
                    s[_CONF_WRONG] / (n - right) if ranked and n > right else None,
                )
            )
        self.sums[:] = 0
        return out


def chosen_arrays(choices: list[Any]) -> list[tuple]:
    """Teacher choices (``teachers.Choice``) as the numpy arrays the log reads: per student
    head the teacher's class, which samples had one, whether it was the own head, and its
    confidence (leading dimensions kept: a batched wave's agents)."""

    def numpy(a: Any) -> np.ndarray | None:  # a tensor, or already numpy (or None)
        return a if a is None or isinstance(a, np.ndarray) else a.cpu().numpy()

    return [
        (numpy(c.target.argmax(-1)), numpy(c.ok), numpy(c.own), numpy(c.confidence))
        for c in choices
    ]


def main_classes(label_dist: np.ndarray) -> np.ndarray:
    """An agent's main classes: those over-represented in its private data (π(c) > 1/C).

    >>> main_classes(np.array([0.46, 0.46, 0.01, 0.01, 0.06])).tolist()
    [True, True, False, False, False]
    """
    return label_dist > 1.0 / len(label_dist)
