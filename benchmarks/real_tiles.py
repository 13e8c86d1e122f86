"""PSNR and seconds per image of one trained run's evaluation, whole and in tiles of several sides (issue 28): the
measurement behind ``--tile auto`` (:data:`lrdm.evaluation.tiling.TILE_PER_TRAINING_SIDE`).

    python benchmarks/real_tiles.py --model RUN/model.pt --index INDEX.parquet [--tiles 64,96,128,192,256,whole]
                                    [--steps 5] [--protocol derain_y] [--threads 1]
                                    [--out results/benchmarks/real_tiles.parquet]

Each tile side scores the index's test split through the evaluation's own path
(:func:`lrdm.evaluation.evaluate.evaluate_run` with ``tile``), so the rows differ only by how the images were cut.
Writes one Parquet row per tile side and ``results/readme/real_tiles.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

WHOLE = "whole"
DEFAULT_TILES = "64,96,128,192,256,whole"
DEFAULT_OUT = "results/benchmarks/real_tiles.parquet"
FRAGMENT = "real_tiles"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a trained run's model.pt")
    parser.add_argument("--index", required=True, help="the dataset's index.parquet (its test split is scored)")
    parser.add_argument("--tiles", default=DEFAULT_TILES, help=f"tile sides in pixels, or {WHOLE!r}")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--protocol", default="derain_y")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    import torch

    from lrdm.evaluation.evaluate import evaluate_run
    from lrdm.training.rundir import load_model

    torch.set_num_threads(args.threads)
    config = load_model(args.model)[0]
    rows = []
    for text in args.tiles.split(","):
        tile = None if text == WHOLE else int(text)
        frame = evaluate_run(args.model, args.index, args.steps, protocol=args.protocol, tile=tile, device="cpu")
        rows.append(
            {
                "tile": text,
                "training_side": config.resize or config.crop,
                "images": len(frame),
                "psnr": frame["psnr"].mean(),
                "ssim": frame["ssim"].mean(),
                "input_psnr": frame["input_psnr"].mean(),
                "seconds_per_image": frame["seconds"].mean(),
            }
        )
        print(rows[-1], flush=True)
    result = pd.DataFrame(rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    result.to_parquet(args.out, index=False)
    write_fragment(result, Path(args.out), args)
    return 0


def write_fragment(frame: pd.DataFrame, source: Path, args: argparse.Namespace) -> Path:
    from lrdm.paths import README_FOLDER
    from lrdm.results.readme import provenance, provenance_line, write_fragments
    from lrdm.results.render import to_markdown

    whole = frame.loc[frame["tile"] == WHOLE, "seconds_per_image"]
    reference = whole.iloc[0] if len(whole) else float("nan")
    shown = frame.assign(time_vs_whole=frame["seconds_per_image"] / reference)
    names = {"tile": "tile side", "training_side": "training side", "seconds_per_image": "seconds per image"}
    shown = shown.rename(columns={**names, "time_vs_whole": "time / whole"})
    command = f"python benchmarks/real_tiles.py --model {args.model} --index {args.index}"
    if args.out != DEFAULT_OUT:
        command += f" --out {args.out}"
    footer = provenance_line(provenance([]), command=command)
    return write_fragments({FRAGMENT: to_markdown(shown)}, source.parent.parent / README_FOLDER, footer)[0]


if __name__ == "__main__":
    raise SystemExit(main())
