"""Seconds and peak memory per image of ``lrdm restore`` and of the evaluation, by image size (issue 28).

    python benchmarks/real_images.py [--out results/benchmarks/real_images.parquet] [--networks conv_unet,paper]
                                     [--sizes 64x64,128x128,...] [--steps 5] [--paper-steps 1] [--threads 1]

For each network (the embedded default's ``conv_unet``, and the paper's ``rddm_unetres``, dim 64, (1, 2, 4, 8),
two nets, trained on 256²), each image size and each way of restoring, one fresh process (the peak only grows)
restores one image of that size with a run of that network (one optimiser step from its initialisation: time and
memory do not depend on the weights) and reports the seconds and the peak resident memory:

* ``restore``: ``lrdm restore``'s path (:func:`lrdm.evaluation.restore.restore_images`, one image);
* ``evaluate``: the evaluation's (:func:`lrdm.evaluation.evaluate.evaluate_run` on a one-pair index).

Each is run two ways: ``after``, this code (the tile policy, fused attention), and ``before``, the way the code
restored before issue 28: every image whole and attention through the explicit ``softmax(QKᵀ)`` (the math kernel of
``scaled_dot_product_attention``, the computation the networks used to spell out).  ``before`` runs only up to
:data:`BEFORE_MAX_PIXELS` pixels: above, the score matrix alone needs tens of GB (row ``skipped``, with the bytes).

Writes one Parquet row per case and ``results/readme/real_images.md``, the README's table of it; times are comparable
within one run only (report them as ratios).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

SIZES = ((64, 64), (128, 128), (320, 480), (768, 1024), (1200, 1600), (3000, 4000))
"""(height, width) of the images: 64², 128², 480×320 (Rain12), 1024×768, 1600×1200 and 4000×3000 photos."""
NETWORKS = {
    "conv_unet": {"backbone": "conv_unet", "dim": 16, "dim_mults": [1, 2, 4], "network": "one_net", "crop": 32},
    "paper": {"backbone": "rddm_unetres", "dim": 64, "dim_mults": [1, 2, 4, 8], "network": "two_net", "resize": 256},
}
"""The networks, as their run configs set them: the embedded default's and the paper's (config/paper.yaml)."""
PAPER_MAX_PIXELS = 320 * 480
"""The paper network is timed up to this size, at ``--paper-steps``, on a CPU (one 512-pixel tile of it takes about
a minute a step on one core)."""
BEFORE_MAX_PIXELS = 320 * 480
"""``before`` (whole images, explicit attention) runs up to this size; above, it needs too much memory."""
SCORE_BYTES = 4
"""Bytes per entry of the explicit attention's score matrix (float32)."""
MIB = 1024**2
WARM_UP_SIDE = 16
"""Side of the image each process restores once before the timed one."""
DEFAULT_OUT = "results/benchmarks/real_images.parquet"
FRAGMENT = "real_images"


def make_model(network: str, folder: Path) -> Path:
    """A run of ``network`` after one optimiser step, trained on a small synthetic set in ``folder``."""
    from lrdm.config import TrainConfig
    from lrdm.data.synthetic import SynthesisOptions, make_synthetic_dataset
    from lrdm.paths import INDEX_FILE
    from lrdm.training.trainer import train

    side = NETWORKS[network].get("resize", NETWORKS[network].get("crop"))
    patches = SynthesisOptions(size=max(64, side), patches_per_image=1, test_patches_per_image=1)
    make_synthetic_dataset(folder / "data", "rain", patches)
    config = TrainConfig.from_dict(
        {**NETWORKS[network], "index": str(folder / "data" / INDEX_FILE), "steps": 1, "batch_size": 1}
    )
    return train(config, folder / "run", progress=False)


def photo(height: int, width: int) -> np.ndarray:
    """A uint8 ``(height, width, 3)`` photograph (scikit-image's astronaut, resized)."""
    from PIL import Image
    from skimage import data

    return np.asarray(Image.fromarray(data.astronaut()).resize((width, height), Image.Resampling.BICUBIC))


def one_pair_index(image: np.ndarray, folder: Path) -> Path:
    """An index of one test pair (the image against itself) for the evaluation, as a ``folders`` dataset."""
    from lrdm.data.prepare import prepare_folders
    from lrdm.files import write_png

    for side in ("input", "target"):
        write_png(folder / side / "0.png", image)
    pair = {"input": str(folder / "input"), "target": str(folder / "target")}
    return prepare_folders("bench", {"task": "rain", "folders": {"train": pair, "test": pair}}, folder / "index")


def run_case(model: str, height: int, width: int, way: str, mode: str, steps: int) -> dict[str, float]:
    """Restores one ``height × width`` image ``way`` (restore | evaluate) ``mode`` (before | after) in this process:
    -> seconds (the restore alone, after loading) and peak resident memory."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from lrdm.evaluation.evaluate import evaluate_run
    from lrdm.evaluation.inference import Sampling
    from lrdm.evaluation.restore import RestoreOptions, resident_bytes, restore_images
    from lrdm.files import write_png

    tile = None if mode == "before" else "auto"
    kernel = sdpa_kernel(SDPBackend.MATH) if mode == "before" else contextlib.nullcontext()

    def once(image: np.ndarray, folder: Path) -> float:
        if way == "restore":
            write_png(folder / "in" / "photo.png", image)
            options = RestoreOptions(Sampling(steps), tile=tile, max_memory="64G", progress=False)
            summary = restore_images(model, folder / "in", folder / "out", options)
            return summary.seconds
        frame = evaluate_run(model, one_pair_index(image, folder / "pair"), steps, tile=tile, device="cpu")
        return float(frame["seconds"].iloc[0])

    with tempfile.TemporaryDirectory() as tmp, kernel:
        once(photo(WARM_UP_SIDE, WARM_UP_SIDE), Path(tmp) / "warm-up")  # first-call costs (threads, allocator)
        seconds = once(photo(height, width), Path(tmp) / "timed")
        return {"seconds": seconds, "peak_rss_mb": resident_bytes() / MIB}


def coarsest_positions(network: str, height: int, width: int) -> int:
    factor = 2 ** (len(NETWORKS[network]["dim_mults"]) - 1)
    return -(-height // factor) * -(-width // factor)


def cases(networks: list[str], sizes: list[tuple[int, int]]) -> list[dict[str, object]]:
    out = []
    for network in networks:
        for height, width in sizes:
            if network == "paper" and height * width > PAPER_MAX_PIXELS:
                continue
            for way in ("restore", "evaluate"):
                for mode in ("after", "before"):
                    out.append({"network": network, "height": height, "width": width, "way": way, "mode": mode})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--networks", default=",".join(NETWORKS))
    parser.add_argument("--sizes", default=",".join(f"{w}x{h}" for h, w in SIZES), help="WIDTHxHEIGHT,...")
    parser.add_argument("--steps", type=int, default=5, help="sampling steps of the conv_unet cases")
    parser.add_argument("--paper-steps", type=int, default=1, help="sampling steps of the paper network's cases")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: one case, in a fresh process
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    if args.case:
        case = json.loads(args.case)
        result = run_case(case["model"], case["height"], case["width"], case["way"], case["mode"], case["steps"])
        print(json.dumps(result))
        return 0
    networks = args.networks.split(",")
    unknown = sorted(set(networks) - set(NETWORKS))
    if unknown:
        parser.error(f"--networks: unknown {unknown}; valid: {', '.join(NETWORKS)}")
    sizes = [(int(h), int(w)) for w, h in (size.split("x") for size in args.sizes.split(","))]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        models = {network: str(make_model(network, Path(tmp) / network)) for network in networks}
        for case in cases(networks, sizes):
            pixels = case["height"] * case["width"]
            steps = args.paper_steps if case["network"] == "paper" else args.steps
            row = {**case, "pixels": pixels, "steps": steps, "threads": args.threads}
            if case["mode"] == "before" and pixels > BEFORE_MAX_PIXELS:
                score_bytes = SCORE_BYTES * coarsest_positions(case["network"], case["height"], case["width"]) ** 2
                rows.append({**row, "seconds": np.nan, "peak_rss_mb": np.nan, "skipped": f"{score_bytes / MIB:.0f}"})
                continue
            command = [sys.executable, __file__, "--threads", str(args.threads)]
            command += ["--case", json.dumps({**case, "steps": steps, "model": models[case["network"]]})]
            done = subprocess.run(command, capture_output=True, text=True, check=True, env=os.environ.copy())
            result = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append({**row, **result, "skipped": ""})
            print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    frame["seconds_per_megapixel"] = frame["seconds"] / (frame["pixels"] / 1e6)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(args.out, index=False)
    write_fragment(frame, Path(args.out))
    return 0


def write_fragment(frame: pd.DataFrame, source: Path) -> Path:
    """``results/readme/real_images.md``: seconds per image and per megapixel, peak memory, after and before."""
    from lrdm.paths import README_FOLDER
    from lrdm.results.readme import provenance, provenance_line, write_fragments
    from lrdm.results.render import to_markdown

    table = frame.assign(size=frame["width"].astype(str) + "×" + frame["height"].astype(str))
    reference = table[(table["height"] == 128) & (table["width"] == 128) & (table["mode"] == "after")]
    per_pixel = reference.set_index(["network", "way"])["seconds_per_megapixel"]
    table["time per pixel / 128²"] = [
        value / per_pixel.get((network, way), np.nan)
        for value, network, way in zip(table["seconds_per_megapixel"], table["network"], table["way"])
    ]
    columns = ["network", "steps", "way", "mode", "size", "seconds", "time per pixel / 128²", "peak_rss_mb", "skipped"]
    shown = table[columns]
    names = {"seconds": "seconds per image", "peak_rss_mb": "peak RSS (MB)", "skipped": "not run: score matrix (MiB)"}
    shown = shown.rename(columns=names)
    folder = source.parent.parent / README_FOLDER
    command = "python benchmarks/real_images.py" + ("" if str(source) == DEFAULT_OUT else f" --out {source}")
    footer = provenance_line(provenance([]), command=command)
    return write_fragments({FRAGMENT: to_markdown(shown)}, folder, footer)[0]


if __name__ == "__main__":
    raise SystemExit(main())
