"""``lrdm plan``: its counts equal independent ones on a toy network (FLOPs of a real step and restore, the
sizes of the files a real tiny run writes) and its jobs equal Snakemake's dry run."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from denoising_diffusion_pytorch.attend import Attend
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from lrdm.cli import main
from lrdm.config import TrainConfig
from lrdm.core.prediction import TrainingExample
from lrdm.core.process import build_network, build_process
from lrdm.perf.cost import checkpoint_bytes, forward_flops, meta_network, model_file_bytes, train_step_flops
from lrdm.plan import parse_job_stats
from lrdm.training.rundir import CHECKPOINT_DIR, MODEL_FILE
from lrdm.training.trainer import train

REPO = Path(__file__).resolve().parents[1]
SIZE = 16
TOY = dict(dim=8, dim_mults=(1, 2), crop=SIZE, batch_size=2, grad_accum=2, T=100, rank_spec="full")
DISK_TOLERANCE = 0.01
"""The saved size is counted with at most one alignment block of padding per tensor: a slight overestimate."""


def _real_step_and_restore_flops(config: TrainConfig, steps: int) -> tuple[int, int]:
    """FLOPs of a real optimiser step (the process's loss, backward) and restore, on the CPU with data."""
    torch.manual_seed(0)
    process = build_process(config)
    network = build_network(config, process)
    x = torch.rand(config.batch_size, 3, SIZE, SIZE) * 2 - 1
    t = torch.randint(0, config.T, (config.batch_size,))
    # attention through its explicit matrix products: FlopCounterMode has no formula for the CPU flash kernel, so
    # the fused kernel would leave out the attention FLOPs that the meta count (and a GPU's kernels) include
    for module in network.modules():
        if isinstance(module, Attend):
            module.flash = False
    with FlopCounterMode(display=False) as step, sdpa_kernel(SDPBackend.MATH):
        for _ in range(config.grad_accum):
            example = TrainingExample(x, x.flip(0), t, torch.randn_like(x))
            (process.loss(network, example) / config.grad_accum).backward()
    with torch.no_grad(), FlopCounterMode(display=False) as restore, sdpa_kernel(SDPBackend.MATH):
        process.sample(network, x[:1], steps)
    return step.get_total_flops(), restore.get_total_flops()


@pytest.mark.parametrize("backbone", ["ddpm_unet", "rddm_unetres"])
def test_flops_on_meta_equal_a_real_step_and_restore(backbone):
    config = TrainConfig(backbone=backbone, **TOY)
    steps = 3
    step, restore = _real_step_and_restore_flops(config, steps)
    network = meta_network(config)
    assert train_step_flops(network, config, (SIZE, SIZE)) == step > 0
    assert steps * forward_flops(network, (SIZE, SIZE)) == restore > 0


def test_checkpoint_and_model_sizes_equal_the_files_a_tiny_run_writes(tmp_path):
    from lrdm.data.synthetic import SynthesisOptions, make_synthetic_dataset

    make_synthetic_dataset(tmp_path / "data", "rain", SynthesisOptions(size=32, seed=0))
    config = TrainConfig(index=str(tmp_path / "data" / "index.parquet"), steps=2, checkpoint_every=1,
                         keep_checkpoints=2, log_every=1, **TOY)  # fmt: skip
    run = tmp_path / "run"
    train(config, run, progress=False)
    checkpoints = sorted((run / CHECKPOINT_DIR).glob("step-*.pt"))
    assert len(checkpoints) == config.keep_checkpoints
    network = meta_network(config)
    counted = checkpoint_bytes(network, config)
    for path in checkpoints:
        assert path.stat().st_size <= counted <= path.stat().st_size * (1 + DISK_TOLERANCE)
    model = (run / MODEL_FILE).stat().st_size
    assert model <= model_file_bytes(network, config) <= model * (1 + DISK_TOLERANCE)


def test_plan_jobs_equal_snakemake_dry_run_and_its_sums_add_up(tmp_path, monkeypatch, capsys):
    """``lrdm plan`` on the smoke config through the CLI: the job table is Snakemake's, the GPU-hours are the
    FLOPs over the stated throughput, the disk is the runs' count times one run's files."""
    monkeypatch.chdir(tmp_path)
    config = str(REPO / "config" / "smoke.yaml")
    target = "main_table"
    snakefile = str(REPO / "Snakefile")
    tflops = 0.5
    code = main(["plan", target, "--configfile", config, "--snakefile", snakefile, "--tflops", str(tflops)])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"at {tflops:.1f} TFLOP/s sustained, --tflops" in printed
    dry = subprocess.run([sys.executable, "-m", "snakemake", "-s", snakefile, target, "-n", "--quiet", "rules",
                          "--configfile", config], capture_output=True, text=True, check=True)  # fmt: skip
    expected = parse_job_stats(dry.stdout + dry.stderr)
    frame = pd.read_csv(tmp_path / "results" / "smoke" / "plan.csv")  # config/smoke.yaml's results folder
    jobs = frame[frame["section"] == "jobs"].set_index("item")["value"].astype(int).to_dict()
    assert jobs == expected and expected["train"] > 0
    assert (tmp_path / "results" / "smoke" / "plan.md").read_text().startswith(f"# Plan of `{target}`")

    training = frame[frame["section"] == "training"].pivot(index="item", columns="quantity", values="value")
    hours = training["runs"] * training["steps_each"] * training["step_tflop"] / tflops / 3600
    assert training["gpu_hours"].to_numpy() == pytest.approx(hours.to_numpy())
    assert training["disk_gb"].to_numpy() == pytest.approx((training["runs"] * training["run_disk_gb"]).to_numpy())
    total = frame[frame["section"] == "total"].set_index("quantity")["value"]
    assert total["training_runs"] == expected["train"] == training["runs"].sum()
    assert total["run_disk_gb"] == pytest.approx(training["disk_gb"].sum())
    restoring = frame[frame["section"] == "restoring"].pivot(index="item", columns="quantity", values="value")
    assert restoring["jobs"].sum() == expected["evaluate"]


def test_plan_of_a_missing_config_names_the_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["plan", "--configfile", "nowhere.yaml", "--snakefile", str(REPO / "Snakefile")])
    assert code == 2
    assert "lrdm plan: error: config file nowhere.yaml does not exist" in capsys.readouterr().err


def test_throughput_from_the_gpu_check_is_its_official_recipe_step_rate_times_the_counted_flops(tmp_path):
    from lrdm.plan import CHECK_MODE, CHECK_OPERATION, measured_tflops

    one, eight = "batch 1, 256px, dim 64 x1-2-4-8", "batch 8, 256px, dim 64 x1-2-4-8"
    rows = pd.DataFrame({
        "operation": [CHECK_OPERATION, CHECK_OPERATION, "sampling"],
        "mode": [CHECK_MODE, CHECK_MODE, "optimised"],
        "case": [one, eight, one],
        "images_per_s": [20.0, 99.0, 99.0],
    })  # fmt: skip
    path = tmp_path / "gpu-check.parquet"
    rows.to_parquet(path)
    assert measured_tflops(path, 1.5e12) == pytest.approx(30.0)  # 20 images/s x 1.5 TFLOP per image
    assert measured_tflops(tmp_path / "absent.parquet", 1.5e12) is None


def test_the_dry_run_merges_every_config_file_in_order():
    """``--configfile base.yaml overlay.yaml``: one flag, both files (a second flag would drop the first file)."""
    from lrdm.plan import snakemake_command

    words = snakemake_command(["config/paper.yaml", "first.yaml"], "main_table", "Snakefile")
    assert words[words.index("--configfile") :] == ["--configfile", "config/paper.yaml", "first.yaml"]
    assert words.count("--configfile") == 1 and words.index("main_table") < words.index("--configfile")


def test_plan_lists_hub_weights_as_downloaded_by_the_workflow_and_counts_their_evaluation(tmp_path, monkeypatch):
    """An ``official_weights`` entry on the Hub with no trained run beside it (the README's first GPU hour): the
    missing-files table names it as downloaded by the workflow, with its source and configured size, and its
    evaluation is counted with the train network and the entry's ``set``."""
    monkeypatch.chdir(tmp_path)
    overlay = tmp_path / "official.yaml"
    overlay.write_text(
        "targets: {main_table: {datasets: [synthetic_rain], specs: []}}\n"
        "official_weights: {synthetic_rain: {hub: jun0519/lrdm, filename: model-120.pt, size: 2500000000,"
        " set: {rank_spec: fixed-r4}}}\n"
    )
    code = main(["plan", "main_table", "--configfile", str(REPO / "config" / "smoke.yaml"), str(overlay),
                 "--snakefile", str(REPO / "Snakefile"), "--tflops", "1"])  # fmt: skip
    assert code == 0
    frame = pd.read_csv(tmp_path / "results" / "smoke" / "plan.csv")
    missing = frame[frame["section"] == "missing"].set_index("item")["quantity"]
    assert missing["official_weights.synthetic_rain"] == "hf://jun0519/lrdm/model-120.pt@main"
    text = (tmp_path / "results" / "smoke" / "plan.md").read_text()
    assert "downloaded by the workflow from the Hugging Face Hub: hf://jun0519/lrdm/model-120.pt@main" in text
    assert "(https://huggingface.co/jun0519/lrdm), 2.50 GB" in text
    restoring = frame[frame["section"] == "restoring"].pivot(index="item", columns="quantity", values="value")
    assert list(restoring.index) == ["evaluate_official/synthetic_rain/steps2"]
    assert float(restoring["restore_tflop"].iloc[0]) > 0
