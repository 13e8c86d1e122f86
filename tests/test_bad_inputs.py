"""Issue 11: nothing silently wrong. Each test reproduces one defect (corrupt, swapped or converted images,
truncated checkpoints and archives, full disks, concurrent trainers, config edits, exploding losses)."""

from __future__ import annotations

import argparse
import copy
import errno
import io
import json
import struct
import subprocess
import sys
import tarfile
import textwrap
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from lrdm.cli import main
from lrdm.core.process import RDDMProcess
from lrdm.data.images import load_rgb
from lrdm.data.index import read_index
from lrdm.data.paired import PairedImageDataset
from lrdm.data.synthetic import SynthesisOptions, make_synthetic_dataset
from lrdm.errors import (
    CheckpointError,
    ChecksumError,
    DiskFullError,
    DownloadError,
    ImageReadError,
    RunLockedError,
    TrainingDiverged,
)
from lrdm.files import sha256_file, write_png
from lrdm.training.rundir import list_checkpoints, load_model
from lrdm.training.trainer import TrainOptions, train
from lrdm.workflow import check_config

REPO = Path(__file__).resolve().parents[1]


def copy_dataset(index: Path, dest: Path) -> Path:
    """A private copy of a dataset folder (the tests below damage its files)."""
    import shutil

    shutil.copytree(index.parent, dest)
    return dest / index.name


def smoke_config() -> dict:
    return yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())


# 1. config edits ----------------------------------------------------------------------------------


def test_changed_config_restarts_in_clean_directory_and_more_steps_continue(tiny_config, tmp_path):
    run = tmp_path / "run"
    train(tiny_config.replace(steps=4), run, progress=False)
    train(tiny_config.replace(steps=6), run, TrainOptions(restart_on_change=True), progress=False)  # continues
    assert [s for s, _ in list_checkpoints(run)] == [4, 6]
    losses = pd.read_csv(run / "losses.csv")
    assert losses["step"].tolist() == [1, 2, 3, 4, 5, 6]
    train(tiny_config.replace(steps=2, lr=5e-4), run, TrainOptions(restart_on_change=True), progress=False)
    assert [s for s, _ in list_checkpoints(run)] == [2], "old checkpoints are never mixed with the new config"
    assert pd.read_csv(run / "losses.csv")["step"].tolist() == [1, 2]
    superseded = list((run / "superseded").glob("*/checkpoints/step-*.pt"))
    assert len(superseded) == 2, "the old checkpoints are kept aside"
    fresh = train(tiny_config.replace(steps=2, lr=5e-4), tmp_path / "fresh", progress=False)
    restarted, clean = (torch.load(p, weights_only=True)["ema"] for p in (run / "model.pt", fresh))
    assert all(torch.equal(restarted[k], clean[k]) for k in clean), "a restarted run equals a fresh one"


def reordered(value):
    if isinstance(value, dict):
        return {key: reordered(value[key]) for key in reversed(list(value))}
    return value


@pytest.mark.slow
def test_config_edit_reruns_exactly_that_run_and_reordering_reruns_nothing(tmp_path, workflow):
    config = smoke_config()
    for name in list(config["targets"]):
        if name != "main_table":
            config["targets"][name]["enabled"] = False
    config["targets"]["main_table"].update(datasets=["synthetic_blur"], specs=["full"])
    config["max_rank"] = None
    first = workflow(config, "all")
    assert first.returncode == 0, (first.stdout + first.stderr)[-4000:]
    again = workflow(reordered(copy.deepcopy(config)), "-n", "all")
    assert "Nothing to be done" in again.stdout + again.stderr, (again.stdout + again.stderr)[-4000:]
    edited = copy.deepcopy(config)
    edited["datasets"]["synthetic_blur"].setdefault("train", {})["lr"] = 5e-4
    plan = workflow(edited, "-n", "--quiet", "rules", "all")
    out = plan.stdout + plan.stderr
    rules = planned_rules(out)
    assert plan.returncode == 0 and "train" in rules and "prepare_dataset" not in rules, out[-4000:]
    done = workflow(edited, "all")
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    edited["targets"]["main_table"]["specs"] = ["full", "full"]  # a changed spec with the same runs
    table = workflow(edited, "-n", "--quiet", "rules", "all")
    out = table.stdout + table.stderr
    rules = planned_rules(out)
    assert table.returncode == 0 and "table" in rules and not {"train", "evaluate"} & rules, out[-4000:]


def planned_rules(output: str) -> set[str]:
    """The rule names of a dry run's job-stats table (not words elsewhere in the output, such as paths)."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("job ") and line.split()[-1] == "count")
    rules = set()
    for line in lines[start + 2 :]:
        words = line.split()
        if len(words) != 2 or words[0] == "total":
            break
        rules.add(words[0])
    return rules


def test_table_rule_has_the_target_spec_and_prepare_has_canonical_params():
    from lrdm.workflow import canonical

    assert canonical({"b": 1, "a": {"d": 2, "c": 3}}) == canonical({"a": {"c": 3, "d": 2}, "b": 1})
    report = (REPO / "workflow" / "rules" / "report.smk").read_text()
    assert "W.target_params" in report
    assert "W.dataset_params" in (REPO / "workflow" / "rules" / "data.smk").read_text()
    assert "W.train_params" in (REPO / "workflow" / "rules" / "train.smk").read_text()


def test_train_params_change_with_the_run_config_only():
    from lrdm.workflow import Run, train_params

    config = smoke_config()
    blur, rain = (Run(name, "rddm", "pred_res_noise", "full", 0) for name in ("synthetic_blur", "synthetic_rain"))
    base = train_params(config, blur)
    other = train_params(config, rain)
    edited = copy.deepcopy(config)
    edited["datasets"]["synthetic_blur"].setdefault("train", {})["lr"] = 5e-4
    assert train_params(edited, blur) != base
    assert train_params(edited, rain) == other
    assert train_params(reordered(copy.deepcopy(config)), blur) == base
    assert json.loads(base)["lr"] == config["train"].get("lr", json.loads(base)["lr"])


# 2. images are verified against the index ----------------------------------------------------------


def png16(path: Path, array: np.ndarray) -> None:
    """A 16-bit RGB PNG (PIL cannot write one)."""
    height, width, _ = array.shape
    raw = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunks)


def test_16_bit_rgb_is_rejected_not_requantised(tmp_path):
    path = tmp_path / "deep.png"
    png16(path, np.full((4, 4, 3), 40000, dtype=np.uint16))
    with pytest.raises(ImageReadError, match=r"deep\.png.*16-bit"):
        load_rgb(path)


@pytest.mark.parametrize("damage", ["black", "gray", "swap"])
def test_swapped_or_converted_image_fails_its_sha256_naming_file_and_hashes(rain_index, tmp_path, damage):
    index = copy_dataset(rain_index, tmp_path / "data")
    frame = read_index(index)
    row = frame[frame["split"] == "test"].iloc[0]
    victim = Path(row["target"])
    image = load_rgb(victim)
    if damage == "black":
        write_png(victim, np.zeros_like(image))
    elif damage == "gray":
        write_png(victim, image.mean(axis=2).astype(np.uint8))
    else:
        victim.write_bytes(Path(frame[frame["split"] == "test"].iloc[1]["target"]).read_bytes())
    dataset = PairedImageDataset(index, split="test")
    with pytest.raises(ChecksumError) as info:
        dataset[0]
    message = str(info.value)
    assert str(victim) in message and row["target_sha256"] in message
    assert sha256_file(victim) in message


# 3. corrupt checkpoints ------------------------------------------------------------------------------


def test_truncated_newest_checkpoint_falls_back_and_is_moved_aside(tiny_config, tmp_path, caplog):
    run = tmp_path / "run"
    train(tiny_config, run, progress=False, stop_after=4)
    newest = list_checkpoints(run)[-1][1]
    newest.write_bytes(newest.read_bytes()[:100])
    with caplog.at_level("WARNING"):
        model = train(tiny_config, run, progress=False)
    assert model.exists()
    assert newest.with_name(newest.name + ".corrupt").exists()
    assert str(newest) in caplog.text and "step-00000002.pt" in caplog.text


@pytest.mark.parametrize("content", [b"PK\x03\x04 not a checkpoint", None])
def test_truncated_or_foreign_model_names_the_file(tiny_config, tmp_path, content):
    path = tmp_path / "model.pt"
    if content is None:
        torch.save({"something": torch.zeros(2)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=str(path)):
        load_model(path)


def test_refused_pickle_names_the_file_and_cli_prints_one_line(tmp_path, rain_index, capsys):
    path = tmp_path / "model.pt"
    torch.save({"config": {}, "ema": {}, "step": 1, "evil": argparse.Namespace(x=1)}, path)
    code = main(["evaluate", "--model", str(path), "--index", str(rain_index), "--steps", "1", "--out",
                 str(tmp_path / "s.parquet")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("lrdm evaluate: error:") and str(path) in err and "Traceback" not in err


# 4. divergence --------------------------------------------------------------------------------------


def test_exploding_finite_loss_is_divergence(tiny_config, tmp_path, scaled_loss):
    scaled_loss(1e12, call=5)
    config = tiny_config.replace(divergence_factor=100.0)
    with pytest.raises(TrainingDiverged, match=r"loss exploded.*running median.*at step 5 .*step-00000004\.pt"):
        train(config, tmp_path / "boom", progress=False)
    assert not (tmp_path / "boom" / "model.pt").exists()


def test_non_finite_weights_are_divergence(tiny_config, tmp_path, monkeypatch):
    original = torch.optim.Adam.step
    calls = {"n": 0}

    def poisoning(self, *args, **kwargs):
        calls["n"] += 1
        out = original(self, *args, **kwargs)
        if calls["n"] == 3:
            with torch.no_grad():
                self.param_groups[0]["params"][0].fill_(float("inf"))
        return out

    monkeypatch.setattr(torch.optim.Adam, "step", poisoning)
    with pytest.raises(TrainingDiverged, match=r"non-finite weights .*step 3 .*step-00000002\.pt"):
        train(tiny_config, tmp_path / "inf", progress=False)
    assert not (tmp_path / "inf" / "model.pt").exists()


def test_evaluate_names_the_model_when_outputs_are_not_finite(tiny_config, tmp_path, monkeypatch):
    from lrdm.errors import NonFiniteOutputError
    from lrdm.evaluation import inference
    from lrdm.evaluation.evaluate import evaluate_run

    model = train(tiny_config.replace(steps=2), tmp_path / "m", progress=False)
    monkeypatch.setattr(inference, "restore", lambda restorer, x, generator=None: x * float("nan"))
    with pytest.raises(NonFiniteOutputError, match=str(model)):
        evaluate_run(model, tiny_config.index, steps=1, limit=1)


# 5. truncated downloads ------------------------------------------------------------------------------


def tar_bytes() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        payload = np.random.default_rng(0).bytes(200_000)
        info = tarfile.TarInfo("data/a.bin")
        info.size = len(payload)
        tf.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data/a.bin", np.random.default_rng(0).bytes(200_000))
    return buffer.getvalue()


@pytest.mark.parametrize("name, payload", [("set.tar.gz", tar_bytes()), ("set.zip", zip_bytes())])
def test_truncated_unpinned_archive_is_deleted_and_named(tmp_path, server, no_proxy, name, payload):
    from lrdm.data.download import Source, fetch

    server.state.files[f"/{name}"] = payload[: len(payload) // 2]  # the server itself sends half (Content-Length too)
    source = Source(filename=name, url=server.url(name))
    with pytest.raises(DownloadError, match=rf"{name}.*(truncated|corrupt).*deleted.*(again|retry)"):
        fetch(source, tmp_path / "downloads", retries=0, progress=False, sleep=lambda s: None)
    assert not (tmp_path / "downloads" / name).exists()


def test_short_body_against_content_length_is_not_accepted(tmp_path, server, no_proxy):
    from lrdm.data.download import Source, fetch

    payload = tar_bytes()
    server.state.files["/set.tar.gz"] = payload
    server.state.cut_after = len(payload) // 3
    source = Source(filename="set.tar.gz", url=server.url("set.tar.gz"))
    path = fetch(source, tmp_path / "downloads", retries=2, progress=False, sleep=lambda s: None)
    assert path.read_bytes() == payload


def test_extract_names_a_truncated_archive_placed_by_hand(tmp_path):
    from lrdm.data.archives import extract
    from lrdm.errors import DataError

    archive = tmp_path / "set.tar.gz"
    archive.write_bytes(tar_bytes()[:5000])
    with pytest.raises(DataError, match=r"set\.tar\.gz.*(truncated|corrupt)"):
        extract(archive, tmp_path / "out")


# 6. full disk ---------------------------------------------------------------------------------------


def test_full_disk_while_checkpointing_names_path_and_keeps_previous(tiny_config, tmp_path, monkeypatch):
    import lrdm.files

    run = tmp_path / "run"
    train(tiny_config, run, progress=False, stop_after=2)
    real = lrdm.files.write_payload

    def full(handle, payload):
        real(handle, payload[: len(payload) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(lrdm.files, "write_payload", full)
    with pytest.raises(DiskFullError, match=r"no space left on device.*step-00000004\.pt"):
        train(tiny_config, run, progress=False)
    assert [s for s, _ in list_checkpoints(run)] == [2]
    assert not list((run / "checkpoints").glob(".*.tmp")), "the partial file is removed"


# 7. one trainer per run directory ---------------------------------------------------------------------


def test_second_trainer_fails_naming_directory_and_pid(tiny_config, tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from lrdm.files import exclusive_lock
            with exclusive_lock({str(run / '.lock')!r}, "run directory {run}"):
                print("held", flush=True)
                time.sleep(60)
        """)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLockedError, match=rf"{run}.*PID {holder.pid}"):
            train(tiny_config, run, progress=False)
    finally:
        holder.kill()
        holder.wait()
    train(tiny_config.replace(steps=2), run, progress=False)  # the lock is released with its holder


# 8 and 9. DAG-time checks that name the key -----------------------------------------------------------


def test_sampling_steps_above_a_process_T_fail_at_dag_build():
    config = smoke_config()
    config["sampling"]["steps"] = 16
    with pytest.raises(ValueError, match=r"sampling\.steps.*16.*T.*15.*resshift"):
        check_config(config)


def test_claims_steps_above_T_name_their_own_key():
    config = smoke_config()
    config["targets"]["claims"]["many_steps"] = [2, 5000]
    with pytest.raises(ValueError, match=r"targets\.claims\.many_steps \(5000\).*T"):
        check_config(config)


def test_negative_train_steps_names_train_steps():
    config = smoke_config()
    config["train"]["steps"] = -5
    with pytest.raises(ValueError, match=r"train\.steps") as info:
        check_config(config)
    assert "dataset" not in str(info.value).split("train.steps")[0]


def test_cli_turns_training_divergence_into_one_line(tmp_path, rain_index, capsys, monkeypatch):
    monkeypatch.setattr(RDDMProcess, "loss", lambda self, *a: torch.tensor(float("nan"), requires_grad=True))
    code = main(["train", "--run-dir", str(tmp_path / "r"), "--set", f"index={rain_index}", "--set", "crop=16",
                 "--set", "dim=8", "--set", "dim_mults=[1, 2]", "--set", "steps=2", "--set", "T=10"])  # fmt: skip
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # above it: the progress bar
    assert code == 2 and last.startswith("lrdm train: error:") and "loss became nan" in last and "Traceback" not in err


# 10. visible degradations; tables never average inf ------------------------------------------------------


@pytest.mark.parametrize("task", ["rain", "blur", "shadow"])
def test_every_synthetic_pair_is_degraded(tmp_path, task):
    frame = make_synthetic_dataset(tmp_path, task, SynthesisOptions(size=32, seed=0))
    for _, row in read_index(tmp_path / "index.parquet").iterrows():
        assert not np.array_equal(load_rgb(row["input"]), load_rgb(row["target"])), row["image_id"]
    assert len(frame) > 0


def test_tables_refuse_to_average_inf():
    from lrdm.errors import DataError
    from lrdm.results.scores import summarize

    scores = pd.DataFrame(
        {
            "dataset": "d", "seed": 0, "image_id": ["a", "b"], "psnr": [30.0, 31.0], "ssim": [0.9, 0.9],
            "input_psnr": [float("inf"), 20.0], "input_ssim": [1.0, 0.5],
        }
    )  # fmt: skip
    with pytest.raises(DataError, match=r"input_psnr.*inf.*'a'"):
        summarize(scores, ["dataset"])
