"""Peak resident memory of restoring one batch of tiles, the measurements behind
:data:`lrdm.evaluation.tiling.MEMORY_MODELS`.

    python benchmarks/restore_memory.py BACKBONE TILE [--batch B] [--steps S] [--dim D] [--dim-mults 1,2,4]

Run it once per tile size (a fresh process each time: the peak only grows).  It builds the network with
random weights (memory does not depend on them), restores a warm-up 8 × 8 image, then ``B`` random tiles, and
prints the growth of the peak resident set size over the warm-up's: the bytes one batch of tiles takes above the
loaded model.
"""

from __future__ import annotations

import argparse
import time

import torch

from lrdm.config import TrainConfig
from lrdm.core.process import build_network, build_process
from lrdm.evaluation.inference import Restorer, Sampling, restore
from lrdm.evaluation.restore import resident_bytes
from lrdm.vocab import BACKBONES

WARM_UP_SIDE = 8
MIB = 1024**2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("backbone", choices=BACKBONES)
    parser.add_argument("tile", type=int)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--dim-mults", default="1,2,4")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    mults = tuple(int(m) for m in args.dim_mults.split(","))
    config = TrainConfig(backbone=args.backbone, dim=args.dim, dim_mults=mults, network="one_net")
    process = build_process(config)
    network = build_network(config, process).eval()
    x = torch.rand(args.batch, 3, args.tile, args.tile) * 2 - 1
    restore(Restorer(network, process, x.device, Sampling(1)), x[:, :, :WARM_UP_SIDE, :WARM_UP_SIDE])
    base = resident_bytes()
    began = time.perf_counter()
    restorer = Restorer(network, process, x.device, Sampling(args.steps))
    restore(restorer, x, [torch.Generator().manual_seed(i) for i in range(args.batch)])
    peak = resident_bytes()
    print(
        f"{args.backbone} dim={args.dim} dim_mults={mults} tile={args.tile} batch={args.batch}: "
        f"model {base / MIB:.0f} MiB, peak {peak / MIB:.0f} MiB, tiles {(peak - base) / MIB:.0f} MiB, "
        f"{time.perf_counter() - began:.1f} s"
    )


if __name__ == "__main__":
    main()
