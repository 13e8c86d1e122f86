"""What the CPU recipe of a ``folders`` dataset gains on real rain, against training minutes (issue 28).

    python benchmarks/real_recipe.py [--real ../shared/data/real] [--steps 250,500,1000,2000] [--specs full,...]
                                     [--recipe default] [--recipe "paper beta2_sum={beta2_sum: 1.0}" ...]
                                     [--seeds 0] [--fragment real_recipe] [--keep DIR]
                                     [--out results/benchmarks/real_recipe.parquet]

Two conditions, on the real pairs of ``--real`` (read in place, never copied):

* ``same distribution``: trained on the first 32 pairs of ``rain13k_train_sample40``, scored on its last 8;
* ``light rain``: trained on all 40 heavy-rain pairs, scored on ``rain12``.

Each recipe is a ``folders`` dataset under the embedded default (``config/config.yaml``) with the overrides given
(``default``: none, what a user's own folders get), resolved as the workflow resolves a run, for each rank spec of
``--specs`` and each seed of ``--seeds``.  It trains to the largest of ``--steps``, keeping a checkpoint at each, and
each checkpoint's EMA network is scored under ``derain_y`` at the config's sampling steps, through the evaluation's
tile policy.  Writes one Parquet row per (recipe, rank spec, seed, condition, step), ``results/readme/<fragment>.md``
(the table) and ``results/readme/<fragment>.png`` (the gain over the input against training minutes).  ``--keep DIR``
keeps the runs, the pairs' links and the indexes in ``DIR`` (for ``benchmarks/rank_oracle.py --model``); by default
they go with a temporary folder.
"""

from __future__ import annotations

import argparse
import shlex
import tempfile
from pathlib import Path

import pandas as pd
import yaml

TRAIN_SET, TEST_SET = "rain13k_train_sample40", "rain12"
SAME_DISTRIBUTION_TRAIN = 32
"""Pairs of the training sample the same-distribution condition trains on (the rest are its test pairs)."""
CONDITIONS = ("same distribution", "light rain")
DEFAULT_STEPS = "250,500,1000,2000"
DEFAULT_OUT = "results/benchmarks/real_recipe.parquet"
FRAGMENT = "real_recipe"


def link_pairs(source: Path, names: list[str], folder: Path) -> dict[str, str]:
    """``folder/{input,target}`` holding symbolic links to the pairs ``names`` of ``source`` (nothing copied)."""
    for side in ("input", "target"):
        (folder / side).mkdir(parents=True, exist_ok=True)
        for name in names:
            (folder / side / name).symlink_to((source / side / name).resolve())
    return {"input": str(folder / "input"), "target": str(folder / "target")}


def condition_folders(real: Path, work: Path) -> dict[str, dict[str, dict[str, str]]]:
    """The ``folders`` entry of each condition."""
    train = real / TRAIN_SET
    names = sorted(path.name for path in (train / "input").iterdir() if not path.name.startswith("."))
    same = {
        "train": link_pairs(train, names[:SAME_DISTRIBUTION_TRAIN], work / "same" / "train"),
        "test": link_pairs(train, names[SAME_DISTRIBUTION_TRAIN:], work / "same" / "test"),
    }
    light = {
        "train": {side: str(real / TRAIN_SET / side) for side in ("input", "target")},
        "test": {side: str(real / TEST_SET / side) for side in ("input", "target")},
    }
    return dict(zip(CONDITIONS, (same, light)))


def parse_recipe(text: str) -> tuple[str, dict]:
    """``"NAME"`` or ``"NAME={key: value, ...}"`` (a YAML mapping of run-config overrides)."""
    name, _, overrides = text.partition("=")
    values = yaml.safe_load(overrides) if overrides else {}
    if not isinstance(values, dict):
        raise SystemExit(f"--recipe {text!r}: the overrides after '=' must be a YAML mapping")
    return name.strip(), values


def run_recipe(
    name: str, overrides: dict, folders: dict, steps: list[int], spec: str, seed: int, work: Path
) -> list[dict]:
    from lrdm.data.prepare import prepare_folders
    from lrdm.evaluation.evaluate import evaluate_run
    from lrdm.plan import merged_config
    from lrdm.targets import Run
    from lrdm.training.rundir import model_from_checkpoint
    from lrdm.training.trainer import train
    from lrdm.vocab import DEFAULT_OBJECTIVE, DEFAULT_PROCESS
    from lrdm.workflow.jobs import run_config

    config = merged_config([])
    sampling = int(config["sampling"]["steps"])
    rows = []
    for condition, pairs in folders.items():
        dataset = f"real_{'same' if condition == CONDITIONS[0] else 'light'}"
        entry = {"source": "folders", "task": "rain", "protocol": "derain_y", "folders": pairs, "train": overrides}
        config["datasets"] = {dataset: entry}
        folder = work / name / spec / f"seed{seed}" / dataset
        index = prepare_folders(dataset, entry, folder / "data")
        run = Run(dataset, DEFAULT_PROCESS, DEFAULT_OBJECTIVE, spec, seed)
        resolved = run_config(config, run, str(index)).replace(
            steps=max(steps), checkpoint_every=min(steps), keep_checkpoints=len(steps) + 1
        )
        run_dir = folder / "run"
        train(resolved, run_dir, progress=False)
        losses = pd.read_csv(run_dir / "losses.csv")
        for step in steps:
            checkpoint = run_dir / "checkpoints" / f"step-{step:08d}.pt"
            model = model_from_checkpoint(checkpoint, resolved, run_dir / f"model-{step}.pt")
            frame = evaluate_run(model, index, sampling)
            seconds = float(losses.loc[losses["step"] <= step, "seconds"].max())
            rows.append(
                {
                    "recipe": name,
                    "overrides": yaml.safe_dump(overrides, default_flow_style=True).strip(),
                    "condition": condition,
                    "rank_spec": spec,
                    "seed": seed,
                    "step": step,
                    "training_minutes": seconds / 60,
                    "psnr": frame["psnr"].mean(),
                    "ssim": frame["ssim"].mean(),
                    "input_psnr": frame["input_psnr"].mean(),
                    "gain_db": (frame["psnr"] - frame["input_psnr"]).mean(),
                    "test_images": len(frame),
                    "eval_seconds_per_image": frame["seconds"].mean(),
                }
            )
            print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", default="../shared/data/real", help="folder of the real pairs")
    parser.add_argument("--steps", default=DEFAULT_STEPS, help="checkpoints scored (the run trains to the largest)")
    parser.add_argument("--recipe", action="append", help='NAME or "NAME={key: value}" (default: default)')
    parser.add_argument("--specs", default="full", help="rank specs, comma-separated (e.g. full,poly_decrease-p3)")
    parser.add_argument("--seeds", default="0", help="training seeds, comma-separated")
    parser.add_argument("--fragment", default=FRAGMENT, help="name of the docs' table and figure (results/readme/)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument(
        "--keep", help="keep the runs and indexes in this new folder (RECIPE/SPEC/seedN/real_{same,light}/{run,data})"
    )
    args = parser.parse_args(argv)
    if args.keep and Path(args.keep).exists():
        parser.error(f"--keep {args.keep}: already exists (the benchmark writes only into a new folder)")
    import torch

    torch.set_num_threads(args.threads)
    real = Path(args.real)
    if not (real / TRAIN_SET).is_dir() or not (real / TEST_SET).is_dir():
        parser.error(f"--real {real}: needs the folders {TRAIN_SET}/ and {TEST_SET}/ (shared/data/real)")
    steps = sorted(int(step) for step in args.steps.split(","))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep or tmp)
        folders = condition_folders(real, work)
        for name, overrides in map(parse_recipe, args.recipe or ["default"]):
            for spec in args.specs.split(","):
                for seed in (int(text) for text in args.seeds.split(",")):
                    rows += run_recipe(name, overrides, folders, steps, spec, seed, work)
    frame = pd.DataFrame(rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(args.out, index=False)
    write_outputs(frame, Path(args.out), command_options(args), args.fragment)
    return 0


def command_options(args: argparse.Namespace) -> str:
    """The options of the command as run (those left at their defaults omitted), for the footer."""
    options = ["--steps", args.steps, "--specs", args.specs]
    options += [word for recipe in args.recipe or [] for word in ("--recipe", recipe)]
    for flag, value, default in (
        ("--seeds", args.seeds, "0"),
        ("--fragment", args.fragment, FRAGMENT),
        ("--keep", args.keep, None),
        ("--out", args.out, DEFAULT_OUT),
    ):
        if value != default:
            options += [flag, value]
    return shlex.join(options)


def write_outputs(frame: pd.DataFrame, source: Path, options: str, fragment: str = FRAGMENT) -> list[Path]:
    """The docs' table and figure of the recipes' gains (``options``: the command's, for the footer)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lrdm.paths import README_FOLDER
    from lrdm.results.readme import provenance, provenance_line, write_fragments
    from lrdm.results.render import to_markdown

    folder = source.parent.parent / README_FOLDER
    figure, axes = plt.subplots(1, len(CONDITIONS), figsize=(9, 3.2), sharey=False)
    for axis, condition in zip(axes, CONDITIONS):
        shown = frame[frame["condition"] == condition]
        for (recipe, spec, seed), runs in shown.groupby(["recipe", "rank_spec", "seed"], sort=False):
            label = f"{recipe}, {spec}" + (f", seed {seed}" if frame["seed"].nunique() > 1 else "")
            axis.plot(runs["training_minutes"], runs["gain_db"], marker="o", label=label)
        axis.axhline(0.0, color="grey", linewidth=0.8)
        axis.set(title=condition, xlabel="training minutes (this machine)", ylabel="Δ PSNR over input (dB)")
        axis.legend(fontsize=8)
    figure.tight_layout()
    folder.mkdir(parents=True, exist_ok=True)
    figure_path = folder / f"{fragment}.png"
    figure.savefig(figure_path, dpi=100)
    plt.close(figure)
    columns = ["recipe", "overrides", "condition", "rank_spec", "seed", "step", "training_minutes"]
    columns += ["input_psnr", "psnr"]
    shown = frame[[*columns, "gain_db"]]
    shown = shown.rename(columns={"training_minutes": "training minutes", "input_psnr": "input PSNR",
                                  "gain_db": "Δ PSNR over input (dB)"})  # fmt: skip
    command = f"python benchmarks/real_recipe.py {options}".strip()
    footer = provenance_line(provenance([]), command=command)
    return [*write_fragments({fragment: to_markdown(shown)}, folder, footer), figure_path]


if __name__ == "__main__":
    raise SystemExit(main())
