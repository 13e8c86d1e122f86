"""Where a rank schedule loses on real pairs: an oracle against trained networks, step by step (issue 28).

    python benchmarks/rank_oracle.py --index INDEX.parquet [--specs full,poly_decrease-p3]
                                     [--model LABEL=RUN/model.pt ...] [--side 32] [--steps 5]
                                     [--protocol derain_y] [--out results/benchmarks/rank_oracle.parquet]

Each test image of the index is cut into ``--side``-pixel squares (the training crop, so that ``k(t)`` means what it
meant in training; the rest of the image is left out) and restored by the rddm process's default sampler at
``--steps`` steps (eta 0, start ``I_in + β̄_T ε`` as in the official code), by two kinds of predictor:

* ``oracle <spec>``: knows the clean image and predicts, at every step, its rank spec's training target
  ``Q_k(t)(I_in - I_0)`` (LRDM Eq. 14) and the start noise.  With ``full`` it returns ``I_0``, so its row measures
  only what the schedule's structure costs (``beta2_sum`` 1e-4, the embedded default's);
* ``--model LABEL=PATH``: a trained run's EMA network, with its own schedule and rank spec.

A row per predictor: the mean PSNR/SSIM of the squares' mosaic under ``--protocol``, the input's, and, for each
sampling step, the RMS error (in the model's [-1, 1] range) of the predicted residual against the target of that
step, both clipped to [-1, 1] as the sampler clips, ``rmse_t<t>``.  Writes the Parquet file and
``results/readme/rank_oracle.md``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import pandas as pd

DEFAULT_OUT = "results/benchmarks/rank_oracle.parquet"
FRAGMENT = "rank_oracle"
ORACLE_BETA2_SUM = 1e-4
"""The oracle's schedule (the embedded default's); with exact predictions the result does not depend on it."""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", required=True, help="a dataset's index.parquet (its test split is scored)")
    parser.add_argument("--specs", default="full,poly_decrease-p3", help="the oracles' rank specs, comma-separated")
    parser.add_argument("--model", action="append", default=[], help="LABEL=PATH of a trained run's model.pt")
    parser.add_argument("--side", type=int, default=32, help="side of the squares the images are cut into")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--protocol", default="derain_y")
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    import torch

    from lrdm.core.schedules import residual_schedule
    from lrdm.training.rundir import load_model
    from lrdm.vocab import RankSpec

    torch.set_num_threads(1)
    rows = []
    for text in args.specs.split(","):
        spec, schedule = RankSpec.parse(text), residual_schedule(beta2_sum=ORACLE_BETA2_SUM)
        rows.append({"predictor": f"oracle {text}", **scores(args, spec, schedule, network=None)})
    for entry in args.model:
        label, _, path = entry.partition("=")
        if not path:
            parser.error(f"--model {entry!r}: expected LABEL=PATH")
        _, network, process = load_model(path)
        rows.append({"predictor": label, **scores(args, process.rank_spec, process.schedule, network)})
        print(rows[-1], flush=True)
    result = pd.DataFrame(rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    result.to_parquet(args.out, index=False)
    write_fragment(result, Path(args.out), argv)
    return 0


def scores(args: argparse.Namespace, spec, schedule, network) -> dict:
    """One predictor's row: mean scores over the test pairs and its residual error at each step.  ``network``
    None is the oracle of ``spec``."""
    from lrdm.data.paired import PairedImageDataset

    dataset = PairedImageDataset(args.index, "test")
    restored, inputs, errors = [], [], {}
    for number in range(len(dataset)):
        item = dataset[number]
        image_scores, input_scores, image_errors = restore_squares(args, item, number, spec, schedule, network)
        restored.append(image_scores)
        inputs.append(input_scores)
        for name, value in image_errors.items():
            errors.setdefault(name, []).append(value)
    psnr, input_psnr = mean(s["psnr"] for s in restored), mean(s["psnr"] for s in inputs)
    return {
        "rank_spec": spec.name,
        "side": args.side,
        "steps": args.steps,
        "images": len(dataset),
        "input_psnr": input_psnr,
        "psnr": psnr,
        "ssim": mean(s["ssim"] for s in restored),
        "gain_db": psnr - input_psnr,
        **{name: mean(values) for name, values in errors.items()},
    }


def restore_squares(args: argparse.Namespace, item: dict, number: int, spec, schedule, network):
    """One test pair restored in squares: ``(scores, input scores, {rmse_t<t>: residual error})``."""
    import torch

    from lrdm.core.diffusion import project_residual
    from lrdm.core.prediction import Prediction
    from lrdm.core.samplers import DEFAULT_SAMPLER, SamplerOptions, sampler_for
    from lrdm.data.paired import from_model_space
    from lrdm.evaluation.metrics import score

    x_in, x0 = squares(item["input"], args.side), squares(item["target"], args.side)
    noise = torch.randn(x_in.shape, generator=torch.Generator().manual_seed(number))
    errors = {}

    def target(t: torch.Tensor) -> torch.Tensor:
        return project_residual(x_in - x0, t, schedule.T, spec)

    def oracle(x_t: torch.Tensor, t: torch.Tensor, condition: torch.Tensor) -> Prediction:
        return Prediction(res=target(t), noise=noise)

    def record(state: dict) -> None:
        # the sampler clips predicted residuals to [-1, 1] (as the reference code does): so is the target here
        error = state["prediction"].res - target(torch.full((len(x_in),), state["t"])).clamp(-1, 1)
        errors[f"rmse_t{state['t']}"] = float(error.pow(2).mean().sqrt())

    options = SamplerOptions(0.0, True, x_in + schedule.beta_bar[-1] * noise)
    sampler = sampler_for(DEFAULT_SAMPLER, "rddm").function
    with torch.no_grad():
        out = sampler(oracle if network is None else network, x_in, schedule, args.steps, None, record, options)
    clean = from_model_space(mosaic(x0, item["target"], args.side))
    restored = from_model_space(mosaic(out, item["target"], args.side))
    degraded = from_model_space(mosaic(x_in, item["target"], args.side))
    return score(restored, clean, args.protocol), score(degraded, clean, args.protocol), errors


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def squares(image, side: int):
    """``(3, H, W)`` -> ``(n, 3, side, side)``: the image's whole ``side``-pixel squares, row by row."""
    rows, cols = image.shape[1] // side, image.shape[2] // side
    cut = image[:, : rows * side, : cols * side]
    return cut.unfold(1, side, side).unfold(2, side, side).permute(1, 2, 0, 3, 4).reshape(-1, 3, side, side)


def mosaic(tiles, like, side: int):
    """The inverse of :func:`squares`: ``(n, 3, side, side)`` -> ``(3, rows·side, cols·side)``."""
    rows, cols = like.shape[1] // side, like.shape[2] // side
    return tiles.reshape(rows, cols, 3, side, side).permute(2, 0, 3, 1, 4).reshape(3, rows * side, cols * side)


def write_fragment(frame: pd.DataFrame, source: Path, argv: list[str]) -> Path:
    from lrdm.paths import README_FOLDER
    from lrdm.results.readme import provenance, provenance_line, write_fragments
    from lrdm.results.render import to_markdown

    steps = [name for name in frame.columns if name.startswith("rmse_t")]
    names = {
        "rank_spec": "rank spec",
        "input_psnr": "input PSNR",
        "psnr": "PSNR",
        "gain_db": "gain (dB)",
        **{name: f"residual RMSE, t = {name.removeprefix('rmse_t')}" for name in steps},
    }
    shown = frame[["predictor", "rank_spec", "images", "input_psnr", "psnr", "gain_db", *steps]].rename(columns=names)
    command = shlex.join(["python", "benchmarks/rank_oracle.py", *argv])
    footer = provenance_line(provenance([]), command=command)
    return write_fragments({FRAGMENT: to_markdown(shown)}, source.parent.parent / README_FOLDER, footer)[0]


if __name__ == "__main__":
    raise SystemExit(main())
