"""Importing checkpoints of the official RDDM code (nachifur/RDDM ``Trainer.save``) as run directories.

An official checkpoint is a dict with the top-level keys ``step, model, opt, ema, scaler``.  ``ema`` is the
state_dict of the ema-pytorch wrapper; its ``ema_model.`` entries are the EMA copy of the whole
``ResidualDiffusion`` (12 float32 schedule buffers, then the ``UnetRes`` under ``model.``), which is what the
official test uses, so the import takes those (never ``model`` or ``ema.online_model.*``, the raw weights).

What the tensors determine is read from them: ``T`` (buffer length) and ``beta2_sum`` (``Σ β²_t``, checked
against the whole schedule); ``dim``, ``dim_mults`` and ``share_encoder`` from parameter names and shapes;
the objective where the heads determine it (two heads: ``pred_res_noise``).  Overrides supply the rest; a
single-output network (``share_encoder = -1``) needs ``objective`` (``pred_res`` or ``pred_noise``), and an
override that contradicts the checkpoint is refused, naming the key.

The result is a normal run directory (``model.pt`` as :func:`lrdm.training.rundir.load_model` reads it,
``config.yaml``).  The import refuses (:func:`check_run_dir`) a directory that holds a trained run
(:data:`TRAINED_RUN_MARKS`) or already a ``model.pt`` / ``config.yaml``, unless ``force``; it never writes into
an existing file named as the directory.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lrdm.config import TrainConfig, save_config
from lrdm.core.nets import NETWORK_SHARE_ENCODER
from lrdm.core.process import build_network, build_process
from lrdm.core.schedules import residual_schedule
from lrdm.core.unetres import CONDITION_CHANNELS
from lrdm.errors import CheckpointError, ConfigError
from lrdm.files import save_torch, sha256_file
from lrdm.training.rundir import CHECKPOINT_DIR, CONFIG_FILE, LOSS_FILE, MODEL_FILE
from lrdm.vocab import OFFICIAL_BACKBONE

OFFICIAL_KEYS = ("step", "model", "ema")
"""Top-level keys every official ``Trainer.save`` checkpoint has (besides ``opt`` and ``scaler``)."""
EMA_PREFIX = "ema_model."
NETWORK_PREFIX = "model."
SCHEDULE_BUFFERS = (
    "alphas",
    "alphas_cumsum",
    "one_minus_alphas_cumsum",
    "betas2",
    "betas",
    "betas2_cumsum",
    "betas_cumsum",
    "posterior_mean_coef1",
    "posterior_mean_coef2",
    "posterior_mean_coef3",
    "posterior_variance",
    "posterior_log_variance_clipped",
)
SCHEDULE_CHECKS = {"alphas_cumsum": "alpha_bar", "betas2_cumsum": "beta2_bar", "betas_cumsum": "beta_bar"}
"""Official buffer -> :class:`lrdm.core.schedules.ResidualSchedule` field it must equal (as float32)."""
SCHEDULE_ATOL = 1e-6
"""Largest difference allowed between an official float32 buffer and the schedule rebuilt here."""
TWO_NETS_PREFIX = "unet0."
SECOND_NET_PREFIX = "unet1."
SHARED_MARKER = "final_conv_1.weight"
TWO_HEAD_OBJECTIVE = "pred_res_noise"
SINGLE_HEAD_OBJECTIVES = ("pred_res", "pred_noise")
OFFICIAL_PROCESS = "rddm"
TRAINED_RUN_MARKS = (CHECKPOINT_DIR, LOSS_FILE)
"""Entries of a run directory that training wrote: importing beside them would contradict them."""


def read_checkpoint(path: Path) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` of an official checkpoint, with a clear error naming the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - every load failure becomes one clear error naming the file
        raise CheckpointError(
            f"{path}: cannot be read as a torch checkpoint with weights_only=True (truncated or corrupt file?): "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        ) from err
    if (
        not isinstance(state, dict)
        or any(key not in state for key in OFFICIAL_KEYS)
        or not isinstance(state.get("ema"), dict)
    ):
        found = sorted(map(str, state)) if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"{path}: not an official RDDM checkpoint (expected the Trainer.save keys step, model, opt, ema, "
            f"scaler; found {found})"
        )
    return state


def ema_weights(state: dict[str, Any], path: Path) -> dict[str, torch.Tensor]:
    """The EMA copy of the ``ResidualDiffusion`` state_dict (prefix ``ema_model.`` removed)."""
    weights = {k[len(EMA_PREFIX) :]: v for k, v in state["ema"].items() if k.startswith(EMA_PREFIX)}
    if not weights:
        raise CheckpointError(f"{path}: not an official RDDM checkpoint (its 'ema' holds no '{EMA_PREFIX}' entries)")
    missing = [name for name in SCHEDULE_BUFFERS if name not in weights]
    if missing:
        raise CheckpointError(f"{path}: missing keys: {', '.join(EMA_PREFIX + m for m in missing)}")
    return weights


def network_weights(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The ``UnetRes`` parameters (prefix ``model.`` removed)."""
    return {k[len(NETWORK_PREFIX) :]: v for k, v in weights.items() if k.startswith(NETWORK_PREFIX)}


def infer_share_encoder(net: dict[str, torch.Tensor], path: Path) -> int:
    """1 (shared encoder), 0 (two UNets) or -1 (one UNet) from the parameter names."""
    if TWO_NETS_PREFIX + "init_conv.weight" in net:
        return NETWORK_SHARE_ENCODER["two_net"] if any(k.startswith(SECOND_NET_PREFIX) for k in net) else -1
    if "init_conv.weight" in net and SHARED_MARKER in net:
        return NETWORK_SHARE_ENCODER["one_net"]
    full = EMA_PREFIX + NETWORK_PREFIX
    raise CheckpointError(
        f"{path}: missing keys: no UnetRes input layer ('{full}{TWO_NETS_PREFIX}init_conv.weight' "
        f"or '{full}init_conv.weight')"
    )


def infer_widths(net: dict[str, torch.Tensor], prefix: str, path: Path) -> tuple[int, tuple[int, ...]]:
    """``(dim, dim_mults)`` from ``init_conv`` and the per-level width changes ``downs.i.3``."""
    init = net[prefix + "init_conv.weight"]
    dim, in_channels = int(init.shape[0]), int(init.shape[1])
    if in_channels != CONDITION_CHANNELS:
        raise CheckpointError(
            f"{path}: the network takes {in_channels} input channels; only conditional 3-channel networks "
            f"(concat(x_t, x_in), {CONDITION_CHANNELS} channels, no self-conditioning) are supported"
        )
    mults = []
    while (key := f"{prefix}downs.{len(mults)}.3.weight") in net:
        width = int(net[key].shape[0])
        if width % dim:
            raise CheckpointError(f"{path}: width {width} of '{key}' is not a multiple of dim {dim}")
        mults.append(width // dim)
    if not mults:
        raise CheckpointError(f"{path}: missing keys: {EMA_PREFIX}{NETWORK_PREFIX}{prefix}downs.0.3.weight")
    return dim, tuple(mults)


def infer_beta2_sum(weights: dict[str, torch.Tensor], path: Path) -> tuple[int, float]:
    """``(T, beta2_sum)`` from the schedule buffers, checked against the schedule this package builds."""
    T = int(weights["alphas_cumsum"].shape[0])
    beta2_sum = float(str(np.float32(weights["betas2"].double().sum().item())))  # shortest float32 spelling
    schedule = residual_schedule(T=T, beta2_sum=beta2_sum)
    for buffer, field in SCHEDULE_CHECKS.items():
        ours = getattr(schedule, field).float()
        theirs = weights[buffer].float()
        if theirs.shape != ours.shape or float((theirs - ours).abs().max()) > SCHEDULE_ATOL:
            raise CheckpointError(
                f"{path}: schedule buffer '{EMA_PREFIX}{buffer}' is not RDDM's schedule (α linearly decreasing, "
                f"β² linearly increasing) with T={T}, beta2_sum={beta2_sum}"
            )
    return T, beta2_sum


def inferred_config(weights: dict[str, torch.Tensor], path: Path) -> dict[str, Any]:
    """The config keys the checkpoint's tensors determine."""
    net = network_weights(weights)
    share_encoder = infer_share_encoder(net, path)
    dim, dim_mults = infer_widths(
        net, "" if share_encoder == NETWORK_SHARE_ENCODER["one_net"] else TWO_NETS_PREFIX, path
    )
    T, beta2_sum = infer_beta2_sum(weights, path)
    values: dict[str, Any] = {
        "process": OFFICIAL_PROCESS,
        "backbone": OFFICIAL_BACKBONE,
        "T": T,
        "beta2_sum": beta2_sum,
        "dim": dim,
        "dim_mults": dim_mults,
    }
    if share_encoder != -1:
        values["objective"] = TWO_HEAD_OBJECTIVE
        values["network"] = next(name for name, mode in NETWORK_SHARE_ENCODER.items() if mode == share_encoder)
    return values


def same_value(key: str, given: Any, inferred: Any) -> bool:
    if key == "dim_mults":
        return isinstance(given, (list, tuple)) and tuple(given) == tuple(inferred)
    if isinstance(inferred, float):
        return isinstance(given, (int, float)) and math.isclose(float(given), inferred, rel_tol=1e-6)
    return given == inferred


def resolve_config(
    inferred: dict[str, Any], overrides: dict[str, Any], path: Path, provenance: dict[str, Any] | None = None
) -> TrainConfig:
    """Merges ``overrides`` into the inferred keys; a contradiction or a missing objective raises
    :class:`lrdm.errors.ConfigError` naming the key.  ``extra`` records the checkpoint's path and
    ``provenance`` (e.g. its sha256 and where it was downloaded from)."""
    for key, value in overrides.items():
        if key in inferred and not same_value(key, value, inferred[key]):
            raise ConfigError(
                f"{path}: --set {key}={value!r} contradicts the checkpoint, whose tensors give {key}={inferred[key]!r}",
                key,
            )
    if "objective" not in inferred:
        objective = overrides.get("objective")
        if objective is None:
            raise ConfigError(
                f"{path}: a single-output network (share_encoder -1) does not determine the objective; "
                f"pass --set objective=pred_res or --set objective=pred_noise",
                "objective",
            )
        if objective not in SINGLE_HEAD_OBJECTIVES:
            raise ConfigError(
                f"{path}: --set objective={objective!r} contradicts the checkpoint: a single-output network "
                f"predicts one term ({' or '.join(SINGLE_HEAD_OBJECTIVES)})",
                "objective",
            )
    values = {**overrides, **inferred}
    values["extra"] = {**values.get("extra", {}), "official_checkpoint": str(path), **(provenance or {})}
    try:
        return TrainConfig.from_dict(values)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}", err.key) from None


def load_weights(network: torch.nn.Module, net: dict[str, torch.Tensor], path: Path) -> None:
    """Strict load with errors naming the first missing, unexpected or differently shaped parameter."""
    expected = network.state_dict()
    full = EMA_PREFIX + NETWORK_PREFIX
    missing = [name for name in expected if name not in net]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise CheckpointError(f"{path}: missing keys: {full}{missing[0]}{more}")
    unexpected = [name for name in net if name not in expected]
    if unexpected:
        raise CheckpointError(f"{path}: unexpected keys for the official UnetRes: {full}{unexpected[0]}")
    for name, tensor in expected.items():
        if tuple(net[name].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"{path}: shape mismatch at {full}{name}: checkpoint {tuple(net[name].shape)}, "
                f"network {tuple(tensor.shape)}"
            )
    network.load_state_dict({k: v.float() for k, v in net.items()}, strict=True)


def check_run_dir(run_dir: Path, force: bool = False) -> None:
    """Refuses, with ``FileExistsError`` naming ``run_dir`` and what it holds, an existing file, a trained run
    (:data:`TRAINED_RUN_MARKS`) or an earlier ``model.pt`` / ``config.yaml``; ``force`` allows the last two."""
    if run_dir.exists() and not run_dir.is_dir():
        raise FileExistsError(
            f"--out {run_dir}: is an existing file; name the run directory ({MODEL_FILE} and {CONFIG_FILE} go inside)"
        )
    if force:
        return
    trained = [name for name in TRAINED_RUN_MARKS if (run_dir / name).exists()]
    if trained:
        raise FileExistsError(
            f"--out {run_dir}: holds a trained run ({', '.join(trained)}); importing would replace its {MODEL_FILE} "
            f"and {CONFIG_FILE} beside files they contradict. Name another folder, or pass --force"
        )
    present = [name for name in (MODEL_FILE, CONFIG_FILE) if (run_dir / name).exists()]
    if present:
        verb = "exists" if len(present) == 1 else "exist"
        raise FileExistsError(f"--out {run_dir}: {' and '.join(present)} already {verb}; pass --force to overwrite")


def import_checkpoint(
    checkpoint: str | Path,
    run_dir: str | Path,
    overrides: dict[str, Any] | None = None,
    force: bool = False,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Writes ``run_dir/model.pt`` and ``run_dir/config.yaml`` from an official checkpoint's EMA weights.

    The config's ``extra`` records the checkpoint's path, the sha256 of its bytes (``official_sha256``) and
    ``provenance`` (where a download came from).  The checkpoint records no rank settings (the official LRDM
    sampler never projects; only its training did): ``overrides`` set them (``rank_spec``), so the score rows
    name the weights' training (an LRDM row when ``rank_spec`` is not ``full``).

    Returns the path of ``model.pt``.  Raises ``FileExistsError`` (:func:`check_run_dir`; ``force`` overwrites),
    :class:`lrdm.errors.CheckpointError` (unreadable, foreign, missing keys, shape mismatch) or
    :class:`lrdm.errors.ConfigError` (contradicting or missing overrides).
    """
    path = Path(checkpoint)
    run_dir = Path(run_dir)
    check_run_dir(run_dir, force)
    state = read_checkpoint(path)
    weights = ema_weights(state, path)
    provenance = {"official_sha256": sha256_file(path), **(provenance or {})}
    config = resolve_config(inferred_config(weights, path), dict(overrides or {}), path, provenance)
    network = build_network(config, build_process(config))
    load_weights(network, network_weights(weights), path)
    model_path = run_dir / MODEL_FILE
    save_torch({"config": config.to_dict(), "ema": network.state_dict(), "step": int(state["step"])}, model_path)
    save_config(config, run_dir / CONFIG_FILE)
    return model_path
