"""``lrdm`` command line: the package's functions outside Snakemake (the workflow's rules call the same functions
from their scripts, not this command; a training job on several GPUs starts ``lrdm.cli train`` under accelerate).

lrdm make-data --task rain --out resources/synthetic/rain
lrdm train --config run.yaml --run-dir results/runs/NAME [--set key=value ...]
lrdm evaluate --model results/runs/NAME/model.pt --index INDEX --steps 5 --out scores.parquet
lrdm import-checkpoint OFFICIAL.pt --out results/runs/NAME [--set objective=pred_res ...]
lrdm datasets [--json | --prepare NAME | --verify INDEX]   # the registry of real datasets
lrdm bench --preset cpu --out results/bench/cpu.parquet
lrdm quality --steps 300 --out results/bench/quality.parquet
lrdm restore --model results/runs/NAME/model.pt --input photos/ --out restored/
lrdm demo --out results/demo          # tiny end-to-end CPU run: data, training, evaluation
lrdm plan all --configfile config/paper.yaml   # jobs, GPU-hours, disk, memory, missing files
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import yaml

import lrdm
from lrdm.core import samplers
from lrdm.errors import STOPPED_EXIT, ConfigError, LrdmError, TrainingStopped
from lrdm.evaluation import tiling
from lrdm.paths import INDEX_FILE
from lrdm.vocab import BACKBONES, DEVICES

INTERRUPTED_EXIT = 130
"""Exit status after Ctrl-C (128 + SIGINT), as shells report it."""
ERROR_EXIT = 2
"""Exit status of a refused command (argparse's for a usage error)."""
USER_ERRORS = (LrdmError, ValueError, MemoryError, FileNotFoundError, FileExistsError, IsADirectoryError,
               NotADirectoryError, PermissionError)  # fmt: skip
"""What ``main`` reports as one line ``lrdm <command>: error: …`` (besides YAML syntax errors and Ctrl-C)."""
CUDA_DEVICE = re.compile(r"^cuda(?::(?P<index>\d+))?$")


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the description's line breaks and shows every option's default (but none for required options and
    flags, whose default says nothing)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.required or action.default in (None, False, []):
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line, ``lrdm <command>: error: …`` (``--help`` shows the
    usage)."""

    def error(self, message: str) -> NoReturn:
        self.exit(ERROR_EXIT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def device_name(text: str) -> str:
    """``--device`` values: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (whether a GPU exists is checked in ``main``)."""
    if text in DEVICES or CUDA_DEVICE.match(text):
        return text
    raise argparse.ArgumentTypeError(f"unknown device {text!r}; valid: {', '.join(DEVICES)}, cuda:N")


def tile_value(text: str) -> str | int:
    """``--tile`` values: ``auto`` or a positive number of pixels."""
    if text == tiling.AUTO:
        return text
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected {tiling.AUTO!r} or a positive number of pixels, got {text!r}")
    return int(text)


def overlap_value(text: str) -> str | int:
    """``--overlap`` values: ``auto`` or a number of pixels (0 or more)."""
    if text == tiling.AUTO:
        return text
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected {tiling.AUTO!r} or a number of pixels, got {text!r}")
    return int(text)


def memory_value(text: str) -> str:
    """``--max-memory`` values: sizes such as ``4G`` (checked here, so a typo is a usage error)."""
    try:
        tiling.parse_memory(text)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix(f"--max-memory {text!r}: ")) from None
    return text


def _args_named(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The parsed options ``names`` as keyword arguments of the function a command calls."""
    return {name: getattr(args, name) for name in names}


def _parse_overrides(pairs: list[str]) -> dict[str, Any]:
    values = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {pair!r}", pair)
        try:
            values[key] = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(
                f"--set {pair}: the value is not valid YAML ({getattr(err, 'problem', err)})", key
            ) from None
    return values


def _cmd_make_data(args: argparse.Namespace) -> None:
    from lrdm.data.synthetic import SynthesisOptions, make_synthetic_dataset

    frame = make_synthetic_dataset(args.out, args.task, SynthesisOptions(size=args.size, seed=args.seed))
    print(f"wrote {len(frame)} pairs to {Path(args.out) / INDEX_FILE}")


def _cmd_train(args: argparse.Namespace) -> None:
    from lrdm.config import TrainConfig, load_config
    from lrdm.training.trainer import TrainOptions, train

    config = load_config(args.config) if args.config else TrainConfig()
    overrides = _parse_overrides(args.set)
    if overrides:
        config = TrainConfig.from_dict({**config.to_dict(), **overrides})
    options = TrainOptions(
        resume_from=args.resume_from,
        restart_on_change=args.restart_on_change,
        data_workers=args.data_workers,
        compile_model=args.compile,
    )
    path = train(config, args.run_dir, options)
    print(path)


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from lrdm.evaluation.evaluate import evaluate_run

    options = _args_named(args, "split", "protocol", "eta", "seed", "sampler", "device", "resize")
    options.update(save_dir=args.save_images, sampler_key="--sampler")
    frame = evaluate_run(args.model, args.index, args.steps, **options)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out, index=False)
    print(frame[["psnr", "ssim", "input_psnr", "input_ssim"]].mean().to_string())


def _cmd_import_checkpoint(args: argparse.Namespace) -> None:
    from lrdm.training.official_checkpoint import import_checkpoint

    print(import_checkpoint(args.checkpoint, args.out, _parse_overrides(args.set), force=args.force))


def _cmd_demo(args: argparse.Namespace) -> None:
    from lrdm.config import TrainConfig
    from lrdm.data.synthetic import SynthesisOptions, make_synthetic_dataset
    from lrdm.evaluation.evaluate import evaluate_run
    from lrdm.training.trainer import train

    out = Path(args.out)
    began = time.perf_counter()
    make_synthetic_dataset(out / "data", "rain", SynthesisOptions(size=64, seed=0))
    config = TrainConfig(
        index=str(out / "data" / INDEX_FILE),
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


def _expected_pairs(text: str | None) -> int | str | None:
    """``--expected-pairs``: a number of pairs, ``any``, or nothing (the registry's counts)."""
    from lrdm.data.counts import ANY_PAIR_COUNT

    if text is None or text == ANY_PAIR_COUNT:
        return text
    if not text.isdigit():
        raise SystemExit(f"--expected-pairs must be a positive integer or {ANY_PAIR_COUNT!r}, got {text!r}")
    return int(text)


def _cmd_datasets(args: argparse.Namespace) -> None:
    import json

    from lrdm.data.prepare import prepare
    from lrdm.data.registry import registry_json

    if args.prepare:
        print(prepare(args.prepare, args.resources, expected_pairs=_expected_pairs(args.expected_pairs)))
    elif args.verify:
        from lrdm.data.index import read_index, verify_index

        frame = read_index(args.verify)
        print(f"{args.verify}: {len(frame)} pairs, every file present, {verify_index(frame)} sha256 checks passed")
    elif args.json:
        print(json.dumps(registry_json(), indent=2))
    else:
        for entry in registry_json():
            print(f"{entry['name']:12} {entry['task']:11} {entry['protocol']:9} {entry['licence']}")


def _cmd_restore(args: argparse.Namespace) -> int:
    from lrdm.evaluation.inference import Sampling
    from lrdm.evaluation.restore import RestoreOptions, restore_images

    options = RestoreOptions(
        Sampling(**_args_named(args, "steps", "seed", "sampler"), sampler_key="--sampler"),
        tile=None if args.no_tiles else args.tile,
        **_args_named(args, "batch", "device", "overlap", "max_memory"),
    )
    summary = restore_images(
        args.model,
        args.input,
        args.out,
        options,
        on_plan=lambda path, text: print(f"lrdm restore: {path.name}: {text}", file=sys.stderr),
    )
    for path, reason in sorted(summary.failed.items()):
        print(f"lrdm restore: skipped {path}: {reason}", file=sys.stderr)
    print(summary.line(Path(args.out)))
    return 1 if summary.failed else 0


def _add_restore_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "restore",
        help="restore your own images (one file or a folder) with a trained run",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--model", required=True, help="RUN_DIR/model.pt (also one written by import-checkpoint)")
    p.add_argument("--input", required=True, help="an image, or a folder of images (any size, 1 × 1 and up)")
    p.add_argument("--out", "--output", dest="out", default=tiling.DEFAULT_OUT,
                   help="folder for the restored PNGs (same stems); may not hold the inputs")  # fmt: skip
    p.add_argument("--steps", type=int, default=tiling.DEFAULT_STEPS, help="sampling steps")
    p.add_argument("--batch", type=int, default=tiling.DEFAULT_BATCH,
                   help="most same-size images (or tiles) per forward pass; fewer where --max-memory asks")  # fmt: skip
    p.add_argument("--device", type=device_name, default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--max-memory", type=memory_value, default=tiling.DEFAULT_MAX_MEMORY,
                   help="memory bound of the whole process (K, M, G: binary); tiles and batch follow it")  # fmt: skip
    p.add_argument("--tile", type=tile_value, default=tiling.AUTO,
                   help=f"tile side for larger images (pixels); auto: {tiling.TILE_PER_TRAINING_SIDE}x the side the "
                   "run trained on (images within it whole), smaller where --max-memory asks")  # fmt: skip
    p.add_argument("--overlap", type=overlap_value, default=tiling.AUTO,
                   help=f"pixels shared by neighbouring tiles; auto: tile / {tiling.OVERLAP_FRACTION}")  # fmt: skip
    p.add_argument("--no-tiles", action="store_true", help="restore every image whole, whatever its size")
    p.add_argument("--seed", type=int, default=0, help="seed of the per-image start noise")
    _add_sampler_argument(p)
    p.set_defaults(func=_cmd_restore)


def _add_sampler_argument(p: argparse.ArgumentParser) -> None:
    """``--sampler``: a name of the sampler table (:data:`lrdm.core.samplers.SAMPLERS`)."""
    listed = "; ".join(f"{entry.name}: {entry.summary} ({entry.process})" for entry in samplers.SAMPLERS.values())
    p.add_argument("--sampler", choices=samplers.SAMPLER_NAMES, default=samplers.DEFAULT_SAMPLER,
                   help=f"{samplers.DEFAULT_SAMPLER}: the run's process's own; {listed}")  # fmt: skip


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

    text = "what a workflow target costs (jobs, GPU-hours, disk, memory), before it runs"
    p = sub.add_parser("plan", help=text, description=text, formatter_class=HelpFormatter)
    p.add_argument("target", nargs="?", default="all", help="workflow target; give it before --configfile")
    p.add_argument("--configfile", nargs="+", default=[], help="config files, merged as snakemake merges them")
    p.add_argument(
        "--tflops",
        type=float,
        help="sustained TFLOP/s of one GPU (default: the GPU check's, else lrdm.plan.ASSUMED_TFLOPS)",
    )
    p.add_argument("--gpu-check", help="benchmarks/gpu-check.sh's Parquet (default: results/gpu-check/...)")
    p.add_argument("--out", "--output", dest="out", help="folder for plan.csv and plan.md (default: the results key)")
    p.add_argument("--snakefile", default="Snakefile", help="the workflow, run in the current folder")
    p.set_defaults(func=run)


def build_parser() -> argparse.ArgumentParser:
    """The ``lrdm`` parser; torch-free, so ``lrdm --help`` answers at once."""
    parser = Parser(prog="lrdm", description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {lrdm.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=text, formatter_class=HelpFormatter)

    p = command("make-data", "synthesise the embedded default dataset from scikit-image photos")
    p.add_argument("--task", required=True, choices=("rain", "blur", "shadow"), help="degradation to synthesise")
    p.add_argument("--out", "--output", dest="out", required=True, help="dataset folder (images, index.parquet)")
    p.add_argument("--size", type=int, default=64, help="image side in pixels")
    p.add_argument("--seed", type=int, default=0, help="seed of the degradations")
    p.set_defaults(func=_cmd_make_data)

    p = command("train", "train one run (resumes from its last checkpoint)")
    p.add_argument("--config", help="YAML file of TrainConfig keys (default: the built-in TrainConfig)")
    p.add_argument("--run-dir", required=True, help="run directory (model.pt, checkpoints/, losses.csv)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key (repeatable)")
    p.add_argument("--resume-from", help="an explicit checkpoint to resume from (must exist)")
    p.add_argument("--data-workers", type=int, default=0, help="processes that prepare batches ahead (0: inline)")
    p.add_argument("--compile", action="store_true", help="torch.compile the UNets")
    p.add_argument(
        "--restart-on-change",
        action="store_true",
        help="if the run directory holds a different config, set its files aside and start afresh (default: refuse)",
    )
    p.set_defaults(func=_cmd_train)

    p = command("evaluate", "restore a split and write per-image PSNR/SSIM to Parquet")
    p.add_argument("--model", required=True, help="RUN_DIR/model.pt")
    p.add_argument("--index", required=True,
                   help="the dataset's index.parquet (written by make-data or `lrdm datasets --prepare`, e.g. "
                   "resources/data/NAME/index.parquet): one row per image pair, its split and its files")  # fmt: skip
    p.add_argument("--steps", type=int, required=True, help="sampling steps")
    p.add_argument("--split", default="test", help="which rows of the index to restore")
    p.add_argument("--protocol", default="derain_y", help="PSNR/SSIM protocol, optionally @SIZE (see README)")
    p.add_argument("--eta", type=float, default=0.0, help="DDIM eta (0: deterministic sampling)")
    p.add_argument("--seed", type=int, default=0, help="seed of the per-image start noise")
    _add_sampler_argument(p)
    p.add_argument("--device", type=device_name, default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--save-images", help="folder for the restored PNGs (default: none saved)")
    p.add_argument("--resize", type=int, help="RDDM policy: resize inputs to this size, the ground truth to the output")
    p.add_argument("--out", "--output", dest="out", required=True, help="Parquet file of per-image scores")
    p.set_defaults(func=_cmd_evaluate)

    p = command("import-checkpoint", "turn an official RDDM checkpoint (its EMA weights) into a run directory")
    p.add_argument("checkpoint", help="official Trainer checkpoint (model-N.pt)")
    p.add_argument("--out", "--output", dest="out", required=True,
                   help="run directory to write (model.pt, config.yaml); a trained run's is refused")  # fmt: skip
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="config keys the checkpoint does not fix"
    )
    p.add_argument("--force", action="store_true",
                   help="overwrite model.pt and config.yaml, even in a folder that holds a trained run")  # fmt: skip
    p.set_defaults(func=_cmd_import_checkpoint)

    p = command("datasets", "list the registry of real datasets, or prepare one")
    p.add_argument("--json", action="store_true", help="print the registry as JSON")
    p.add_argument("--prepare", metavar="NAME", help="download, verify, extract and index one dataset")
    p.add_argument("--verify", metavar="INDEX",
                   help="check that every file of a prepared index is present and matches its sha256")  # fmt: skip
    p.add_argument("--resources", default="resources", help="folder of downloads and prepared datasets")
    p.add_argument(
        "--expected-pairs",
        metavar="N|any",
        help="accept N pairs in all (or any) where they differ from the registry's count (config key "
        "datasets.<name>.expected_pairs)",
    )
    p.set_defaults(func=_cmd_datasets)

    p = command("bench", "time the projection and a training step; write Parquet")
    p.add_argument("--preset", default="cpu", choices=("tiny", "cpu", "gpu"), help="problem sizes")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per case")
    p.add_argument("--device", type=device_name, default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--compile", action="store_true", help="also time torch.compile'd training and sampling")
    p.add_argument("--backbone", default="ddpm_unet", choices=BACKBONES,
                   help="network of every mode but official_recipe (always rddm_unetres)")  # fmt: skip
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                   help="auto: bf16 autocast on CUDA only; the per-sample modes are fp32 always")  # fmt: skip
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's; the workflow trains with 1)")
    p.add_argument("--out", "--output", dest="out", default="results/bench/bench.parquet", help="Parquet file")
    p.set_defaults(func=_cmd_bench)

    p = command("quality", "check that the performance options leave losses and samples unchanged")
    p.add_argument("--steps", type=int, default=300, help="training steps per compared run")
    p.add_argument("--device", type=device_name, default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--compile", action="store_true", help="also check torch.compile'd training and sampling")
    p.add_argument("--out", "--output", dest="out", default="results/bench/quality.parquet",
                   help="summary; losses go to <stem>_losses.parquet")  # fmt: skip
    p.set_defaults(func=_cmd_quality)

    p = command("demo", "tiny end-to-end CPU run on synthetic rain")
    p.add_argument("--out", "--output", dest="out", default="results/demo", help="folder of data, run and scores")
    p.add_argument("--steps", type=int, default=300, help="training steps")
    p.set_defaults(func=_cmd_demo)

    _add_restore_parser(sub)
    _add_plan_parser(sub)
    return parser


def check_device_available(device: str | None) -> None:
    """Refuses ``--device cuda[:N]`` where torch sees no such GPU (imports torch only then)."""
    match = CUDA_DEVICE.match(device or "")
    if not match:
        return
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(match["index"] or 0)
    if index >= count:
        found = f"{count} CUDA GPU(s)" if count else "no CUDA GPU (torch.cuda.is_available() is False)"
        raise ConfigError(f"--device {device}: torch sees {found}; use --device cpu or auto", key="device")


def yaml_error_line(err: yaml.YAMLError) -> str:
    """``FILE, line L, column C: problem`` of a YAML syntax error (lines and columns from 1)."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    if mark is None:
        return f"YAML syntax error: {problem}"
    return f"{mark.name}, line {mark.line + 1}, column {mark.column + 1}: YAML syntax error: {problem}"


def one_line(text: str) -> str:
    """An error message on one line: its lines joined with ``; ``."""
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


def main(argv: list[str] | None = None) -> int:
    """Runs one command; every refusal is one line ``lrdm <command>: error: …`` on stderr, exit status
    :data:`ERROR_EXIT`; Ctrl-C is one line too, exit status :data:`INTERRUPTED_EXIT`.  ``lrdm train`` stopped by a
    signal has printed its own line (where it checkpointed) and exits with :data:`lrdm.errors.STOPPED_EXIT`."""
    args = build_parser().parse_args(argv)
    prefix = f"lrdm {args.command}: error:"
    try:
        check_device_available(getattr(args, "device", None))
        code = args.func(args)
    except TrainingStopped:
        return STOPPED_EXIT
    except KeyboardInterrupt:
        print(f"{prefix} interrupted (Ctrl-C)", file=sys.stderr)
        return INTERRUPTED_EXIT
    except yaml.YAMLError as err:
        print(f"{prefix} {one_line(yaml_error_line(err))}", file=sys.stderr)
        return ERROR_EXIT
    except USER_ERRORS as err:
        print(f"{prefix} {one_line(str(err)) or type(err).__name__}", file=sys.stderr)
        return ERROR_EXIT
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    raise SystemExit(main())
