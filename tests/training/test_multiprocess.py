"""One run on several processes (DDP, gloo on CPU): the global batch is split between the processes, so two
processes take the same steps as one process with the same global batch; a checkpoint written by two processes
resumes on one."""

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from lrdm.config import load_config, save_config
from lrdm.targets import Run
from lrdm.training.launch import free_port, launch_command
from lrdm.training.rundir import MODEL_FILE, list_checkpoints, load_checkpoint
from lrdm.training.trainer import TrainOptions, train
from lrdm.workflow import check_train_gpus, run_config

# The gradient of the two half-batch means, averaged by DDP, equals the full-batch mean up to float rounding.
# Adam divides by sqrt(v): for gradient entries near its eps the rounding moves an update by a fraction of
# lr (1e-3), so the weights agree to ~1e-5 (measured 1.1e-5 after 4 steps), while one Adam step moves them by
# ~lr.  The loss log holds 6 significant digits.
WEIGHT_TOLERANCE = 1e-4
LOSS_TOLERANCE = 1e-5


@pytest.fixture
def global_batch_config(tiny_config):
    """Global batch 4: each of two processes trains on 2 samples of it."""
    return tiny_config.replace(batch_size=4, steps=4, checkpoint_every=2, keep_checkpoints=2)


def launch(config, tmp_path, run_dir, processes=2):
    path = tmp_path / f"{run_dir.name}.yaml"
    save_config(config, path)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    prefetched = TrainOptions(data_workers=1)  # the shards prefetched
    cmd = launch_command(path, run_dir, processes, cpu=True, port=free_port(), options=prefetched)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return run_dir / MODEL_FILE


def losses(run_dir):
    with open(run_dir / "losses.csv", newline="") as handle:
        assert handle.readline().strip() == "step,loss,seconds", f"{run_dir}/losses.csv does not start with its header"
        handle.seek(0)
        return {int(row["step"]): float(row["loss"]) for row in csv.DictReader(handle)}


@pytest.fixture(autouse=True)
def one_thread():
    """The in-process reference trains with one thread, like each launched process (OMP_NUM_THREADS=1); the
    previous count is restored so later tests are not affected."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def max_difference(a, b):
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())


@pytest.mark.slow
def test_two_processes_match_one_and_resume_on_one(global_batch_config, tmp_path):
    config = global_batch_config
    one = train(config, tmp_path / "one", progress=False)
    two = launch(config, tmp_path, tmp_path / "two")

    online = max_difference(
        load_checkpoint(list_checkpoints(tmp_path / "one")[-1][1])["model"],
        load_checkpoint(list_checkpoints(tmp_path / "two")[-1][1])["model"],
    )
    ema = max_difference(load_checkpoint(one)["ema"], load_checkpoint(two)["ema"])
    loss_one, loss_two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert sorted(loss_two) == list(range(1, config.steps + 1)), "rank 0 alone writes the loss log, once per step"
    loss_difference = max(abs(loss_one[s] - loss_two[s]) for s in loss_one)
    print(
        f"2 vs 1 process: max |weight| difference {online:.3g} (EMA {ema:.3g}), max |loss| difference {loss_difference}"
    )
    assert online < WEIGHT_TOLERANCE and ema < WEIGHT_TOLERANCE
    moved = max_difference(
        load_checkpoint(list_checkpoints(tmp_path / "one")[0][1])["model"],
        load_checkpoint(list_checkpoints(tmp_path / "one")[-1][1])["model"],
    )
    assert moved > 10 * WEIGHT_TOLERANCE, f"two steps move the weights by {moved:.3g}, far more than the tolerance"
    assert loss_difference < LOSS_TOLERANCE
    assert any(loss_one[s] != loss_one[1] for s in loss_one), "the runs trained (losses change)"

    # the two-process run's step-2 checkpoint, resumed on one process
    resumed = tmp_path / "resumed"
    shutil.copytree(tmp_path / "two", resumed)
    (resumed / MODEL_FILE).unlink()
    for step, path in list_checkpoints(resumed):
        if step > 2:
            path.unlink()
    train(config, resumed, progress=False)
    assert sorted(losses(resumed)) == list(range(1, config.steps + 1))
    after_resume = max_difference(load_checkpoint(one)["ema"], load_checkpoint(resumed / MODEL_FILE)["ema"])
    print(f"2 processes to step 2, then 1 process: max |EMA weight| difference to the 1-process run {after_resume:.3g}")
    assert after_resume < WEIGHT_TOLERANCE


def test_launch_commands():
    gpu = launch_command("run.yaml", "runs/a", 4, port=1234, python="python")
    assert gpu[:3] == ["python", "-m", "accelerate.commands.launch"]
    assert {"--multi_gpu", "--num_processes", "4", "--main_process_port", "1234"} <= set(gpu)
    assert gpu[-9:] == ["-m", "lrdm.cli", "train", "--config", "run.yaml", "--run-dir", "runs/a", "--data-workers", "0"]
    options = TrainOptions(compile_model=True)
    cpu = launch_command("run.yaml", "runs/a", 2, cpu=True, port=1234, python="python", options=options)
    assert cpu[-3:] == ["--data-workers", "0", "--compile"]
    assert cpu[:3] == ["python", "-m", "torch.distributed.run"] and "--multi_gpu" not in cpu
    assert {"--nproc_per_node", "2", "--master_port", "1234"} <= set(cpu)
    resumed = launch_command("run.yaml", "runs/a", 2, port=1, options=TrainOptions("c.pt", restart_on_change=True))
    assert resumed[-4:] == ["0", "--restart-on-change", "--resume-from", "c.pt"]


def test_train_gpus_must_divide_the_global_batch():
    config = {
        "datasets": {"a": {"train": {"batch_size": 3}}, "b": {}},
        "train": {"batch_size": 4},
        "train_gpus": 2,
    }
    with pytest.raises(ValueError, match=r"train_gpus \(2\) must divide the global batch_size \(3\) of dataset 'a'"):
        check_train_gpus(config)
    config["datasets"]["a"]["train"]["batch_size"] = 6
    check_train_gpus(config)


@pytest.mark.slow
def test_workflow_trains_one_run_on_two_processes(tmp_path, monkeypatch):
    """train_gpus: 2 through Snakemake; without CUDA the train rule starts two CPU processes (torchrun)."""
    repo = Path(__file__).resolve().parents[2]
    config = yaml.safe_load((repo / "config" / "smoke.yaml").read_text())
    config["datasets"] = {"synthetic_rain": config["datasets"]["synthetic_rain"]}
    config["train"].update(batch_size=4, steps=3)
    config.update(max_rank=8, train_gpus=2, targets={"schedulers": {"datasets": ["synthetic_rain"], "specs": ["full"]}})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    trained = Run("synthetic_rain", "rddm", "pred_res_noise", "poly_decrease-p3", 0)  # config.yaml's
    run = trained.folder("results/config")
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "-d", str(tmp_path)]
        + ["--configfile", str(tmp_path / "config.yaml"), "--cores", "2", f"{run}/model.pt"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "gpu=2" in proc.stdout + proc.stderr  # the rule's resource (what SLURM would allocate)
    log = (tmp_path / "logs/config/train" / run.removeprefix("results/config/runs/")).with_suffix(".log").read_text()
    assert "no CUDA device: training on 2 CPU processes (gloo)" in log
    assert "torch.distributed.run" in log and "--nproc_per_node 2" in log
    assert sorted(losses(tmp_path / run)) == [1, 2, 3]

    reference = run_config(
        config,
        trained,
        index="resources/config/data/synthetic_rain/index.parquet",
        max_rank=8,
    )
    assert load_config(tmp_path / run / "config.yaml") == reference
    monkeypatch.chdir(tmp_path)  # the run config's index is relative to the workflow's directory
    one = train(reference, tmp_path / "one", progress=False)
    workflow_run = load_checkpoint(tmp_path / run / MODEL_FILE)["ema"]
    assert max_difference(load_checkpoint(one)["ema"], workflow_run) < WEIGHT_TOLERANCE
