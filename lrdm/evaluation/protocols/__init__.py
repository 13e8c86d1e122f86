"""The evaluation protocols, one module each, behind one dispatch table (:data:`PROTOCOL_TABLE`).

Each protocol's module documents its maths: :mod:`~lrdm.evaluation.protocols.derain_y`,
:mod:`~lrdm.evaluation.protocols.rgb` (``rgb`` and ``rgb_channelwise``),
:mod:`~lrdm.evaluation.protocols.istd`, :mod:`~lrdm.evaluation.protocols.realblur` and
:mod:`~lrdm.evaluation.protocols.lrdm_y`. :func:`lrdm.evaluation.metrics.score` looks a protocol up here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from lrdm.evaluation.protocols import derain_y, istd, lrdm_y, realblur, rgb
from lrdm.evaluation.protocols.inputs import prepare_uint8_pair

__all__ = ["PROTOCOL_TABLE", "Protocol"]

Prepare = Callable[[np.ndarray, np.ndarray, np.ndarray | None, tuple[int, int] | None], tuple[np.ndarray, np.ndarray]]
"""``(pred, target, mask, size) -> (pred, target)``: checks one pair and applies the ``resize`` policy."""
ScorePair = Callable[[np.ndarray, np.ndarray, np.ndarray | None, tuple[int, int] | None], dict[str, float]]
"""``(pred, target, mask, size) -> scores`` of one prepared pair."""
ScoreStack = Callable[[np.ndarray, np.ndarray], list[dict[str, float]]]
"""``(preds, targets) -> scores`` of checked same-shape uint8 stacks (N, H, W, 3), vectorised."""


class Protocol(NamedTuple):
    """How one protocol prepares and scores its pairs."""

    prepare: Prepare
    score_pair: ScorePair
    score_stack: ScoreStack | None = None
    """Set for the protocols that score a stack of same-shape images at once."""


def stacked(score_stack: ScoreStack) -> ScorePair:
    """The pair scorer of a stack scorer: the pair as a stack of one."""

    def score_pair(
        pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None, size: tuple[int, int] | None
    ) -> dict[str, float]:
        return score_stack(pred[None], target[None])[0]

    return score_pair


def _uint8_protocol(name: str, score_stack: ScoreStack) -> Protocol:
    return Protocol(functools.partial(prepare_uint8_pair, protocol=name), stacked(score_stack), score_stack)


PROTOCOL_TABLE: dict[str, Protocol] = {
    "derain_y": _uint8_protocol("derain_y", derain_y.score_stack),
    "rgb": _uint8_protocol("rgb", rgb.score_stack),
    "rgb_channelwise": _uint8_protocol("rgb_channelwise", rgb.score_stack_channelwise),
    "istd": Protocol(istd.prepare, istd.score_pair),
    "realblur": Protocol(functools.partial(prepare_uint8_pair, protocol="realblur"), realblur.score_pair),
    "lrdm_y": Protocol(lrdm_y.prepare, lrdm_y.score_pair),
}
"""Each protocol name of :data:`lrdm.vocab.PROTOCOLS` and how it is scored."""
