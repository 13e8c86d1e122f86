"""The two diffusion processes behind one interface: RDDM (LRDM's base) and ResShift (paper Tab. 5).

A process knows which terms its network predicts, its training loss and its sampler; the trainer and
the evaluator only talk to this interface.
"""

from __future__ import annotations

from typing import Any

import torch

from lrdm.config import TrainConfig
from lrdm.core import diffusion, resshift
from lrdm.core.lowrank import PCABasis, Projector
from lrdm.core.nets import TermNetwork, build_term_network
from lrdm.core.prediction import PredictionFn, TrainingExample
from lrdm.core.samplers import DEFAULT_SAMPLER, SamplerOptions, sampler_for
from lrdm.core.sampling import Generators
from lrdm.core.schedules import residual_schedule
from lrdm.vocab import RankSpec


class Process:
    """What the trainer and the evaluator use of a diffusion process: its ``name`` (:data:`lrdm.vocab.PROCESSES`),
    the coefficient ``schedule`` its samplers walk (:data:`lrdm.core.samplers.SAMPLERS`), ``T``, its training loss,
    and its own sampler.  Its network is a :data:`lrdm.core.prediction.PredictionFn` that sets the terms named in
    :attr:`terms`."""

    name: str
    terms: tuple[str, ...]
    T: int
    schedule: Any

    def loss(self, network: PredictionFn, example: TrainingExample) -> torch.Tensor:
        """The scalar training loss of ``network`` on one batch ``example`` (:class:`TrainingExample`: ``x0``,
        ``x_in``, ``noise`` ``(B, 3, H, W)``, ``t`` ``(B,)``)."""
        raise NotImplementedError

    def sample(
        self,
        network: PredictionFn,
        x_in: torch.Tensor,
        steps: int,
        eta: float = 0.0,
        generator: Generators = None,
        clip: bool = True,
        x_T: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Restores ``x_in`` ``(B, 3, H, W)`` in [-1, 1] with ``steps`` reverse steps of the process's own sampler
        (:data:`lrdm.core.samplers.DEFAULT_SAMPLER`) -> ``(B, 3, H, W)``; ``x_T``: the start point
        ``(B, 3, H, W)`` (when given, no noise is drawn for the start).  Another sampler, or a callback per step:
        call the table's entry (:func:`lrdm.core.samplers.sampler_for`) with ``process.schedule``."""
        sampler = sampler_for(DEFAULT_SAMPLER, self.name)
        return sampler.function(network, x_in, self.schedule, steps, generator, options=SamplerOptions(eta, clip, x_T))


class RDDMProcess(Process):
    """Residual diffusion (RDDM) with the LRDM low-rank forward process (LRDM Eq. 14)."""

    name = "rddm"

    def __init__(self, config: TrainConfig, basis: PCABasis | None = None) -> None:
        self.schedule = residual_schedule(config.T, config.beta2_sum, config.alpha_shape, config.beta2_shape)
        self.T = config.T
        self.objective = config.objective
        self.loss_name = config.loss
        self.rank_spec: RankSpec = config.rank
        self.projector = Projector(solver=config.projection_solver, basis=basis)
        predicts_res, predicts_noise = diffusion.predicted_terms(config.objective)
        self.terms = tuple(name for name, used in (("res", predicts_res), ("noise", predicts_noise)) if used)

    def loss(self, network: PredictionFn, example: TrainingExample) -> torch.Tensor:
        return diffusion.training_loss(
            network,
            example,
            self.schedule,
            self.objective,
            self.loss_name,
            self.rank_spec,
            self.projector,
        )


class ResShiftProcess(Process):
    """ResShift (Yue et al. 2023) predicting ``x0``, optionally with the low-rank residual of LRDM."""

    name = "resshift"
    terms = ("x0",)

    def __init__(self, config: TrainConfig, basis: PCABasis | None = None) -> None:
        self.schedule = resshift.resshift_schedule(T=config.T, kappa=config.kappa, power=config.resshift_power)
        self.T = config.T
        self.loss_name = config.loss
        self.rank_spec: RankSpec = config.rank
        self.projector = Projector(solver=config.projection_solver, basis=basis)

    def loss(self, network: PredictionFn, example: TrainingExample) -> torch.Tensor:
        return resshift.training_loss(network, example, self.schedule, self.loss_name, self.rank_spec, self.projector)


def build_process(config: TrainConfig, basis: PCABasis | None = None) -> Process:
    if config.process == "rddm":
        return RDDMProcess(config, basis)
    return ResShiftProcess(config, basis)


def build_network(config: TrainConfig, process: Process) -> TermNetwork:
    """The run's network (config keys ``backbone``, ``network``, ``dim``, ``dim_mults``) for the process's terms."""
    return build_term_network(config.backbone, process.terms, config.network, config.dim, config.dim_mults)
