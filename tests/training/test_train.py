import csv
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch

from lrdm.config import TrainConfig, load_config
from lrdm.core.nets import ConditionalUNets
from lrdm.data.paired import PairedImageDataset
from lrdm.errors import ConfigError
from lrdm.training.rundir import list_checkpoints, load_checkpoint, load_model
from lrdm.training.trainer import (
    StepBatches,
    TrainingDiverged,
    TrainOptions,
    batch_loader,
    draw_batch,
    learning_rate,
    step_generator,
    train,
)

COMPILE_WEIGHT_TOLERANCE = 1e-4  # inductor reorders float32 sums; six Adam steps at lr 1e-3 move weights ~6e-3


def weights(path):
    return load_checkpoint(path)["ema"]


def test_training_is_deterministic_and_keeps_config(tiny_config, tmp_path, assert_same_weights):
    a = train(tiny_config, tmp_path / "a", progress=False)
    b = train(tiny_config, tmp_path / "b", progress=False)
    assert_same_weights(a, b)
    assert load_config(tmp_path / "a" / "config.yaml") == tiny_config
    steps = [int(r["step"]) for r in csv.DictReader(open(tmp_path / "a" / "losses.csv"))]
    assert steps == list(range(1, tiny_config.steps + 1))
    assert [s for s, _ in list_checkpoints(tmp_path / "a")] == [4, 6]  # keep_checkpoints = 2
    other = train(tiny_config.replace(seed=1), tmp_path / "c", progress=False)
    assert any(not torch.equal(weights(a)[k], weights(other)[k]) for k in weights(a))


def test_learning_rate_warms_up_then_decays():
    config = TrainConfig(steps=100, lr=1e-3, lr_warmup=10, lr_schedule="cosine")
    rates = np.array([learning_rate(config, step) for step in range(config.steps)])
    np.testing.assert_allclose(rates[:10], 1e-3 * np.arange(1, 11) / 10 * (1 + np.cos(np.pi * np.arange(10) / 100)) / 2)
    assert rates.max() <= 1e-3 and np.all(np.diff(rates[10:]) < 0) and rates[-1] < 1e-3 * 1e-3
    constant = TrainConfig(steps=100, lr=1e-3)
    assert {learning_rate(constant, step) for step in range(constant.steps)} == {1e-3}  # the official recipe


def test_cosine_run_resumes_on_the_same_curve(tiny_config, tmp_path, assert_same_weights):
    config = tiny_config.replace(lr_schedule="cosine", lr_warmup=2)
    full = train(config, tmp_path / "full", progress=False)
    run = tmp_path / "split"
    train(config, run, stop_after=3, progress=False)
    assert_same_weights(full, train(config, run, progress=False))
    constant = train(tiny_config, tmp_path / "constant", progress=False)
    assert any(not torch.equal(weights(full)[k], weights(constant)[k]) for k in weights(full))


def test_resume_after_interruption_matches_uninterrupted_run(tiny_config, tmp_path, assert_same_weights):
    full = train(tiny_config, tmp_path / "full", progress=False)
    run = tmp_path / "split"
    train(tiny_config, run, stop_after=3, progress=False)  # checkpoint at step 2, then stops at 3
    assert [s for s, _ in list_checkpoints(run)] == [2, 3]
    resumed = train(tiny_config, run, progress=False)
    assert_same_weights(full, resumed)


def test_data_workers_prefetch_the_same_batches(tiny_config, tmp_path, assert_same_weights):
    inline = train(tiny_config, tmp_path / "inline", progress=False)
    run = tmp_path / "workers"
    train(tiny_config, run, TrainOptions(data_workers=2), stop_after=3, progress=False)
    prefetched = train(tiny_config, run, TrainOptions(data_workers=1), progress=False)  # another worker count
    assert_same_weights(inline, prefetched)
    with pytest.raises(ValueError, match="data_workers"):
        TrainOptions(data_workers=-1)


@pytest.mark.slow
def test_compiled_training_matches_eager_and_resumes_eager(tiny_config, tmp_path):
    eager = weights(train(tiny_config, tmp_path / "eager", progress=False))
    run = tmp_path / "compiled"
    train(tiny_config, run, TrainOptions(compile_model=True), stop_after=3, progress=False)
    mixed = weights(train(tiny_config, run, progress=False))  # the compiled run's checkpoint, resumed eagerly
    difference = max(float((eager[k] - mixed[k]).abs().max()) for k in eager)
    print(f"compiled-then-eager vs eager: max |EMA weight| difference {difference:.3g}")
    assert difference < COMPILE_WEIGHT_TOLERANCE


def test_step_batches_are_shards_of_the_global_batch(tiny_config):
    dataset = PairedImageDataset(tiny_config.index, split="train", crop=tiny_config.crop, flip=True)
    whole = StepBatches(dataset, 4, 1000, seed=3, shard=slice(0, 4))
    halves = [StepBatches(dataset, 4, 1000, seed=3, shard=slice(i * 2, i * 2 + 2)) for i in range(2)]
    for step in (0, 7):
        drawn = draw_batch(dataset, 4, 1000, step_generator(3, step))
        for got, want in zip(whole[step], drawn):
            assert torch.equal(got, want)
        for got, *parts in zip(drawn, *(h[step] for h in halves)):
            assert torch.equal(got, torch.cat(parts))
    loaded = [torch.equal(a[0], whole[s][0]) for s, a in zip(range(5, 8), batch_loader(whole, 5, 8, 2, False))]
    assert loaded == [True, True, True]


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    import lrdm.training.trainer as tr
    from lrdm.config import load_config
    original = tr.save_checkpoint
    def save_then_die(accelerator, network, ema, optimizer, step, run_dir, config):
        original(accelerator, network, ema, optimizer, step, run_dir, config)
        if step == 4:
            os.kill(os.getpid(), signal.SIGKILL)
    tr.save_checkpoint = save_then_die
    tr.train(load_config(sys.argv[1]), sys.argv[2], progress=False)
    """
)


@pytest.mark.slow
def test_sigkill_after_checkpoint_then_restart_gives_same_weights(tiny_config, tmp_path, assert_same_weights):
    from lrdm.config import save_config

    config_path = tmp_path / "run.yaml"
    save_config(tiny_config, config_path)
    run = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}  # same arithmetic as the reference
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, str(config_path), str(run)], capture_output=True, timeout=300, env=env
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert not (run / "model.pt").exists()
    assert [s for s, _ in list_checkpoints(run)][-1] == 4
    restart = subprocess.run(
        [sys.executable, "-m", "lrdm.cli", "train", "--config", str(config_path), "--run-dir", str(run)],
        capture_output=True,
        timeout=300,
        env=env,
    )
    assert restart.returncode == 0, restart.stderr.decode()[-2000:]
    uninterrupted = train(tiny_config, tmp_path / "reference", progress=False)
    assert_same_weights(uninterrupted, run / "model.pt")
    steps = [int(r["step"]) for r in csv.DictReader(open(run / "losses.csv"))]
    assert steps == list(range(1, tiny_config.steps + 1)), "the loss log has no duplicated or missing steps"


def test_nan_loss_stops_with_message_and_keeps_last_checkpoint(tiny_config, tmp_path, scaled_loss):
    scaled_loss(float("nan"), call=3, once=True)
    with pytest.raises(TrainingDiverged, match=r"loss became nan at step 3 .*step-00000002\.pt"):
        train(tiny_config, tmp_path / "nan", progress=False)
    assert [s for s, _ in list_checkpoints(tmp_path / "nan")] == [2]
    assert not (tmp_path / "nan" / "model.pt").exists()


def test_missing_explicit_checkpoint_and_changed_config_are_errors(tiny_config, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        train(tiny_config, tmp_path / "r", TrainOptions(resume_from=tmp_path / "nowhere.pt"), progress=False)
    train(tiny_config.replace(steps=2), tmp_path / "s", progress=False)
    with pytest.raises(ConfigError, match=r"different config \(keys \['lr'\]\)") as info:
        train(tiny_config.replace(steps=2, lr=5e-4), tmp_path / "s", progress=False)
    assert info.value.key == "lr"


def test_load_model_restores_ema_network(tiny_config, tmp_path):
    path = train(tiny_config.replace(steps=2), tmp_path / "m", progress=False)
    config, network, process = load_model(path)
    assert isinstance(network, ConditionalUNets) and not network.training
    assert config.rank_spec == "poly_decrease-p3" and process.terms == ("res", "noise")
    x = torch.zeros(1, 3, 16, 16)
    out = process.sample(network, x, 2)
    assert out.shape == x.shape and torch.isfinite(out).all()


@pytest.mark.parametrize(
    "extra",
    [
        {"process": "resshift", "objective": "pred_x0", "T": 15, "loss": "l2"},
        {"objective": "pred_noise", "network": "one_net"},
        {"basis": "dataset_pca", "rank_spec": "fixed-r4"},
    ],
)
def test_other_processes_objectives_and_bases_train(tiny_config, tmp_path, extra):
    path = train(tiny_config.replace(steps=2, **extra), tmp_path / "x", progress=False)
    config, network, process = load_model(path)
    out = process.sample(network, torch.zeros(1, 3, 16, 16), 2)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    "values, match, key",
    [
        ({"objective": "pred_v"}, "'objective'.*valid choices: pred_res_noise, pred_res, pred_noise", "objective"),
        ({"rank_spec": "wavy"}, "'rank_spec'", "rank_spec"),
        ({"rank_spec": "fixed-r0"}, "'rank_spec'", "rank_spec"),
        ({"steps": 0}, "'steps' must be a positive integer", "steps"),
        ({"network": "three_net"}, "valid choices: two_net, one_net", "network"),
        ({"process": "ddpm"}, "valid choices: rddm, resshift", "process"),
        ({"crop": 30}, "'crop'", "crop"),
        ({"max_rank": 0}, "'max_rank'", "max_rank"),
        ({"lr": -1.0}, "'lr'", "lr"),
        ({"learning_rate": 1.0}, "unknown config key", "learning_rate"),
        ({"basis": "dataset_pca"}, "dataset_pca needs a low-rank", "basis"),
        ({"lr_schedule": "step"}, "'lr_schedule'.*valid choices: constant, cosine", "lr_schedule"),
        ({"lr_warmup": -1}, "'lr_warmup' must be a non-negative integer", "lr_warmup"),
    ],
)
def test_config_validation_names_the_key(values, match, key):
    with pytest.raises(ConfigError, match=match) as caught:
        TrainConfig.from_dict(values)
    assert caught.value.key == key


def test_a_config_file_error_names_the_file_and_keeps_the_key(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("loss: huber\n")
    with pytest.raises(ConfigError, match=rf"^{path}: config key 'loss' has unknown value 'huber'") as caught:
        load_config(path)
    assert caught.value.key == "loss"


def test_tensorboard_logs_the_losses_and_validation(tiny_config, tmp_path):
    """Config key `tensorboard`: accelerate's tracker writes the losses of losses.csv as TensorBoard scalars."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from lrdm.training.rundir import LOSS_FILE, TENSORBOARD_DIR, VALIDATION_FILE

    run_dir = tmp_path / "tb"
    config = tiny_config.replace(steps=4, tensorboard=True, val_every=2, val_images=2, val_steps=1)
    train(config, run_dir, progress=False)
    events = EventAccumulator(str(next((run_dir / TENSORBOARD_DIR).rglob("events.out.tfevents.*")).parent))
    events.Reload()
    scalars = events.Scalars("loss")
    logged = pd.read_csv(run_dir / LOSS_FILE)
    assert [s.step for s in scalars] == list(logged["step"])
    assert np.allclose([s.value for s in scalars], logged["loss"], rtol=1e-5)
    # val_every: PSNR/SSIM of the EMA model on a few test images, in validation.csv and beside the losses
    validation = pd.read_csv(run_dir / VALIDATION_FILE)
    assert list(validation["step"]) == [2, 4] and validation["val_psnr"].between(0, 100).all()
    assert validation["val_ssim"].between(-1, 1).all()
    assert [s.step for s in events.Scalars("val_psnr")] == [2, 4]
