"""``lrdm`` command line: thin wrappers the Snakemake workflow calls.

lrdm make-data --task rain --out resources/synthetic/rain
lrdm train --config run.yaml --run-dir results/runs/NAME [--set key=value ...]
lrdm evaluate --model results/runs/NAME/model.pt --index INDEX --steps 5 --out scores.parquet
lrdm import-checkpoint OFFICIAL.pt --out results/runs/NAME [--set objective=pred_res ...]
lrdm bench --preset cpu --out results/bench/cpu.parquet
lrdm quality --steps 300 --out results/bench/quality.parquet
lrdm restore --model results/runs/NAME/model.pt --input photos/ --out restored/
lrdm demo --out results/demo          # tiny end-to-end CPU run: data, training, evaluation
lrdm plan all --configfile config/paper.yaml   # jobs, GPU-hours, disk, memory, missing files
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from lrdm.vocab import BACKBONES


def _parse_overrides(pairs: list[str]) -> dict[str, Any]:
    values = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set expects key=value, got {pair!r}")
        values[key] = yaml.safe_load(text)
    return values


def _cmd_make_data(args: argparse.Namespace) -> None:
    from lrdm.data.synthetic import make_synthetic_dataset

    frame = make_synthetic_dataset(args.out, args.task, size=args.size, seed=args.seed)
    print(f"wrote {len(frame)} pairs to {Path(args.out) / 'index.parquet'}")


def _cmd_train(args: argparse.Namespace) -> None:
    from lrdm.config import TrainConfig, load_config
    from lrdm.training.trainer import train

    config = load_config(args.config) if args.config else TrainConfig()
    overrides = _parse_overrides(args.set)
    if overrides:
        config = TrainConfig.from_dict({**config.to_dict(), **overrides})
    path = train(
        config,
        args.run_dir,
        resume_from=args.resume_from,
        data_workers=args.data_workers,
        compile_model=args.compile,
        restart_on_change=args.restart_on_change,
    )
    print(path)


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from lrdm.evaluation.evaluate import evaluate_run

    frame = evaluate_run(
        args.model,
        args.index,
        args.steps,
        split=args.split,
        protocol=args.protocol,
        eta=args.eta,
        seed=args.seed,
        device=args.device,
        save_dir=args.save_images,
        resize=args.resize,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out, index=False)
    print(frame[["psnr", "ssim", "input_psnr", "input_ssim"]].mean().to_string())


def _cmd_import_checkpoint(args: argparse.Namespace) -> None:
    from lrdm.training.official import import_checkpoint

    print(import_checkpoint(args.checkpoint, args.out, _parse_overrides(args.set)))


def _cmd_demo(args: argparse.Namespace) -> None:
    from lrdm.config import TrainConfig
    from lrdm.data.synthetic import make_synthetic_dataset
    from lrdm.evaluation.evaluate import evaluate_run
    from lrdm.training.trainer import train

    out = Path(args.out)
    began = time.perf_counter()
    make_synthetic_dataset(out / "data", "rain", size=64, seed=0)
    config = TrainConfig(
        index=str(out / "data" / "index.parquet"),
        crop=64,
        dim=16,
        dim_mults=(1, 2, 4),
        steps=args.steps,
        batch_size=8,
        lr=2e-4,
        rank_spec="poly_decrease-p3",
        checkpoint_every=max(1, args.steps // 4),
        log_every=10,
        ema_start=0,
        ema_decay=0.99,
        ema_update_every=1,
        extra={"dataset": "synthetic_rain"},
    )
    model = train(config, out / "run")
    frame = evaluate_run(model, config.index, steps=5)
    frame.to_parquet(out / "scores.parquet", index=False)
    means = frame[["psnr", "ssim", "input_psnr", "input_ssim"]].mean()
    print(means.to_string())
    print(f"wall time {time.perf_counter() - began:.1f} s; scores in {out / 'scores.parquet'}")


def _cmd_bench(args: argparse.Namespace) -> None:
    import torch

    from lrdm.perf.bench import ratios, run_benchmark

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    frame = run_benchmark(args.preset, repeats=args.repeats, device=args.device, compile_model=args.compile,
                          backbone=args.backbone, precision=args.precision)  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out, index=False)
    print(frame[["case", "operation", "mode", "steps", "seconds_median", "images_per_s", "mfu"]].to_string(index=False))
    print(ratios(frame).set_index("case").T.to_string())


def _cmd_quality(args: argparse.Namespace) -> None:
    from lrdm.perf.quality import quality_check

    summary, losses = quality_check(args.steps, device=args.device, compile_model=args.compile)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    summary.to_parquet(out, index=False)
    losses.to_parquet(out.with_name(out.stem + "_losses.parquet"), index=False)
    print(summary.to_string(index=False))


def _cmd_datasets(args: argparse.Namespace) -> None:
    import json

    from lrdm.data.prepare import prepare
    from lrdm.data.registry import registry_json

    if args.prepare:
        print(prepare(args.prepare, args.resources))
    elif args.json:
        print(json.dumps(registry_json(), indent=2))
    else:
        for entry in registry_json():
            print(f"{entry['name']:12} {entry['task']:11} {entry['protocol']:9} {entry['licence']}")


def _cmd_restore(args: argparse.Namespace) -> int:
    from lrdm.evaluation.restore import restore_images

    summary = restore_images(
        args.model,
        args.input,
        out=args.out,
        steps=args.steps,
        batch=args.batch,
        device=args.device,
        tile=None if args.no_tiles else args.tile,
        overlap=args.overlap,
        seed=args.seed,
    )
    for path, reason in sorted(summary.failed.items()):
        print(f"lrdm restore: skipped {path}: {reason}", file=sys.stderr)
    print(summary.line(Path(args.out)))
    return 1 if summary.failed else 0


def _add_restore_parser(sub: argparse._SubParsersAction) -> None:
    from lrdm.evaluation import restore as r

    p = sub.add_parser("restore", help="restore your own images (one file or a folder) with a trained run")
    p.add_argument("--model", required=True, help="RUN_DIR/model.pt (also one written by import-checkpoint)")
    p.add_argument("--input", required=True, help="an image, or a folder of images (any size)")
    p.add_argument("--out", default=r.DEFAULT_OUT, help="folder for the restored PNGs (same stems)")
    p.add_argument("--steps", type=int, default=r.DEFAULT_STEPS)
    p.add_argument("--batch", type=int, default=r.DEFAULT_BATCH, help="same-size images (or tiles) per forward pass")
    p.add_argument("--device", default="auto")
    p.add_argument("--tile", type=int, default=r.DEFAULT_TILE, help="tile side for larger images (pixels)")
    p.add_argument("--overlap", type=int, default=r.DEFAULT_OVERLAP, help="pixels shared by neighbouring tiles")
    p.add_argument("--no-tiles", action="store_true", help="restore every image whole, whatever its size")
    p.add_argument("--seed", type=int, default=0, help="seed of the per-image start noise")
    p.set_defaults(func=_cmd_restore)


def _add_plan_parser(sub: argparse._SubParsersAction) -> None:
    """``lrdm plan``: jobs, training runs, FLOPs, GPU-hours, disk, memory and missing files of a target."""

    def run(args: argparse.Namespace) -> None:
        from lrdm import plan as pl

        gpu_check = args.gpu_check or pl.GPU_CHECK_PARQUET
        plan = pl.make_plan(args.configfile, args.target, args.tflops, gpu_check, args.snakefile)
        paths = pl.write_plan(
            plan, args.out or pl.merged_config(args.configfile, pl.base_config(args.snakefile))["results"]
        )
        print(pl.render_markdown(plan))
        print(f"wrote {paths[0]} and {paths[1]}")

    p = sub.add_parser("plan", help="what a workflow target costs (jobs, GPU-hours, disk, memory), before it runs")
    p.add_argument("target", nargs="?", default="all", help="workflow target (default: all); give it first")
    p.add_argument("--configfile", nargs="+", default=[], help="config files, merged as snakemake merges them")
    p.add_argument(
        "--tflops",
        type=float,
        help="sustained TFLOP/s of one GPU (default: the GPU check's, else lrdm.plan.ASSUMED_TFLOPS)",
    )
    p.add_argument("--gpu-check", help="benchmarks/gpu-check.sh's Parquet (default: results/gpu-check/...)")
    p.add_argument("--out", help="folder for plan.csv and plan.md (default: the config's results)")
    p.add_argument("--snakefile", default="Snakefile", help="the workflow, run in the current folder")
    p.set_defaults(func=run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lrdm", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("make-data", help="synthesise the embedded default dataset from scikit-image photos")
    p.add_argument("--task", required=True, choices=("rain", "blur", "shadow"))
    p.add_argument("--out", required=True)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_make_data)

    p = sub.add_parser("train", help="train one run (resumes from its last checkpoint)")
    p.add_argument("--config", help="YAML file of TrainConfig keys")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--resume-from", help="an explicit checkpoint to resume from (must exist)")
    p.add_argument("--data-workers", type=int, default=0, help="processes that prepare batches ahead (0: inline)")
    p.add_argument("--compile", action="store_true", help="torch.compile the UNets")
    p.add_argument(
        "--restart-on-change",
        action="store_true",
        help="if the run directory holds a different config, set its files aside and start afresh (default: refuse)",
    )
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="restore a split and write per-image PSNR/SSIM to Parquet")
    p.add_argument("--model", required=True)
    p.add_argument("--index", required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--protocol", default="derain_y")
    p.add_argument("--eta", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--save-images", help="folder for the restored PNGs")
    p.add_argument("--resize", type=int, help="RDDM policy: resize inputs to this size, the ground truth to the output")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser(
        "import-checkpoint", help="turn an official RDDM checkpoint (its EMA weights) into a run directory"
    )
    p.add_argument("checkpoint", help="official Trainer checkpoint (model-N.pt)")
    p.add_argument("--out", required=True, help="run directory to write (model.pt, config.yaml)")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="config keys the checkpoint does not fix"
    )
    p.set_defaults(func=_cmd_import_checkpoint)

    p = sub.add_parser("datasets", help="list the registry of real datasets, or prepare one")
    p.add_argument("--json", action="store_true", help="print the registry as JSON")
    p.add_argument("--prepare", metavar="NAME", help="download, verify, extract and index one dataset")
    p.add_argument("--resources", default="resources")
    p.set_defaults(func=_cmd_datasets)

    p = sub.add_parser("bench", help="time the projection and a training step; write Parquet")
    p.add_argument("--preset", default="cpu", choices=("tiny", "cpu", "gpu"))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="auto")
    p.add_argument("--compile", action="store_true", help="also time torch.compile'd training and sampling")
    p.add_argument("--backbone", default="ddpm_unet", choices=BACKBONES,
                   help="network of every mode but official_recipe (always rddm_unetres)")  # fmt: skip
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                   help="auto: bf16 autocast on CUDA only; the per-sample modes are fp32 always")  # fmt: skip
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's; the workflow trains with 1)")
    p.add_argument("--out", default="results/bench/bench.parquet")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("quality", help="check that the performance options leave losses and samples unchanged")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--device", default="auto")
    p.add_argument("--compile", action="store_true", help="also check torch.compile'd training and sampling")
    p.add_argument("--out", default="results/bench/quality.parquet", help="summary; losses go to <stem>_losses.parquet")
    p.set_defaults(func=_cmd_quality)

    p = sub.add_parser("demo", help="tiny end-to-end CPU run on synthetic rain")
    p.add_argument("--out", default="results/demo")
    p.add_argument("--steps", type=int, default=300)
    p.set_defaults(func=_cmd_demo)

    _add_restore_parser(sub)
    _add_plan_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from lrdm.errors import LrdmError

    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
    except (LrdmError, ValueError, FileNotFoundError) as err:
        print(f"lrdm {args.command}: error: {err}", file=sys.stderr)
        return 2
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    raise SystemExit(main())
