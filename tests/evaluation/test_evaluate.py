import numpy as np
import pandas as pd
import pytest

from lrdm.cli import main
from lrdm.errors import ConfigError
from lrdm.evaluation.evaluate import RESULT_COLUMNS, EvaluationOptions, evaluate_run, restore_examples, restore_rows
from lrdm.evaluation.inference import Sampling
from lrdm.training.trainer import train


@pytest.fixture(scope="module")
def trained(tiny_config, tmp_path_factory):
    config = tiny_config.replace(steps=2, rank_spec="fixed-r4", extra={"dataset": "toy_rain"})
    return train(config, tmp_path_factory.mktemp("run") / "fixed", progress=False)


def test_evaluate_run_schema_and_determinism(trained, rain_index, tmp_path):
    frame = evaluate_run(trained, rain_index, steps=2, save_dir=tmp_path / "png")
    assert list(frame.columns) == list(RESULT_COLUMNS)
    test_ids = pd.read_parquet(rain_index).query("split == 'test'")["image_id"]
    assert sorted(frame["image_id"]) == sorted(test_ids)
    row = frame.iloc[0]
    assert (row["dataset"], row["rank_spec"], row["scheduler"], row["rank"], row["steps"]) == (
        "toy_rain",
        "fixed-r4",
        "fixed",
        4,
        2,
    )
    assert pd.isna(row["order"])
    assert set(frame["sampler"]) == {"ddim"}  # sampler "default" of an RDDM run, by its name in the table
    assert len(list((tmp_path / "png").glob("*.png"))) == len(frame)
    # image i's noise does not depend on the other images evaluated
    first = evaluate_run(trained, rain_index, steps=2, limit=1)
    assert first.loc[0, "psnr"] == frame.loc[0, "psnr"]


def test_run_column_tells_runs_of_one_dataset_apart(trained, tiny_config, rain_index, tmp_path):
    """Two runs of one dataset whose folders share their last name (``seed0``) get different ``run`` values."""
    other = train(
        tiny_config.replace(steps=2, rank_spec="full", extra={"dataset": "toy_rain"}),
        tmp_path / "full" / "seed0",
        progress=False,
    )
    same_leaf = tmp_path / "fixed" / "seed0"
    same_leaf.mkdir(parents=True)
    (same_leaf / "model.pt").write_bytes(trained.read_bytes())
    frames = [evaluate_run(model, rain_index, steps=1, limit=1) for model in (same_leaf / "model.pt", other)]
    runs = [frame.loc[0, "run"] for frame in frames]
    assert runs[0] != runs[1]
    assert runs == [
        f"{tiny_config.process}/{tiny_config.objective}/fixed-r4/seed0",
        f"{tiny_config.process}/{tiny_config.objective}/full/seed0",
    ]


def test_restore_examples_returns_gt_input_and_runs(trained, rain_index):
    images, psnrs = restore_examples({"r = 4": trained}, rain_index, steps=1)
    assert list(images) == ["GT", "Input", "r = 4"]
    assert set(psnrs) == {"Input", "r = 4"}
    assert images["GT"].dtype.name == "uint8" and images["GT"].shape == images["r = 4"].shape


@pytest.mark.parametrize("protocol, resize", [("derain_y", None), ("lrdm_y", 24)])
def test_grid_psnrs_are_the_score_rows_of_the_same_images(trained, rain_index, protocol, resize):
    """The restoration grids score as the tables do: each grid PSNR is its image's row in the score file."""
    frame = evaluate_run(trained, rain_index, steps=2, protocol=protocol, resize=resize, limit=2)
    options = EvaluationOptions(Sampling(2), protocol=protocol, resize=resize)
    rows, psnrs = restore_rows({"run": trained}, rain_index, [0, 1], options)
    assert [p["run"] for p in psnrs] == pytest.approx(list(frame["psnr"]), abs=1e-9)
    assert [p["Input"] for p in psnrs] == pytest.approx(list(frame["input_psnr"]), abs=1e-9)
    if resize is not None:
        assert rows[0]["Input"].shape[:2] == (resize, resize)


def test_the_scores_record_the_test_image_limit(trained, rain_index):
    assert evaluate_run(trained, rain_index, steps=1, limit=1)["max_test_images"].tolist() == [1]
    assert evaluate_run(trained, rain_index, steps=1)["max_test_images"].isna().all()


def test_cli_train_override_and_error_exit(tmp_path, rain_index, capsys):
    code = main(
        ["train", "--run-dir", str(tmp_path / "bad"), "--set", f"index={rain_index}", "--set", "objective=pred_v"]
    )
    assert code == 2
    assert "'objective'" in capsys.readouterr().err
    code = main(
        [
            "train",
            "--run-dir",
            str(tmp_path / "r"),
            "--set",
            f"index={rain_index}",
            "--set",
            "crop=16",
            "--set",
            "dim=8",
            "--set",
            "dim_mults=[1, 2]",
            "--set",
            "steps=1",
            "--set",
            "T=10",
        ]
    )
    assert code == 0 and (tmp_path / "r" / "model.pt").exists()
    code = main(
        [
            "evaluate",
            "--model",
            str(tmp_path / "r" / "model.pt"),
            "--index",
            str(rain_index),
            "--steps",
            "1",
            "--out",
            str(tmp_path / "s.parquet"),
        ]
    )
    assert code == 0 and len(pd.read_parquet(tmp_path / "s.parquet")) > 0


def test_bench_writes_parquet_schema(tmp_path):
    from lrdm.perf.bench import BENCH_COLUMNS, ratios

    assert main(["bench", "--preset", "tiny", "--repeats", "1", "--out", str(tmp_path / "b.parquet")]) == 0
    frame = pd.read_parquet(tmp_path / "b.parquet")
    assert list(frame.columns) == list(BENCH_COLUMNS)
    modes = set(frame[["operation", "mode"]].itertuples(index=False, name=None))
    assert {
        ("projection", "per_sample_full_svd"),
        ("projection", "batched_gram"),
        ("train_step", "per_sample_svd_b1"),
        ("train_step", "official_recipe"),
        ("train_step", "batched"),
        ("train_step", "optimised"),
        ("train_step", "full_rank"),
        ("sampling", "optimised"),
        ("data_batch", "inline"),
        ("train_loop", "workers0"),
        ("train_loop", "workers1"),
        ("metric_derain_y", "batched"),
        ("image_hash", "first_read"),
    } <= modes
    assert sorted(frame.loc[frame["operation"] == "sampling", "steps"]) == [1, 2, 5, 10]
    assert (frame["seconds_median"] > 0).all()
    assert (frame.loc[frame["operation"] == "train_loop", "repeats"] == 1).all()  # warm-up steps are not timed
    summary = ratios(frame)
    expected = {"speedup_optimised", "projection_share_of_step", "data_inline_share_of_step", "loop_speedup_workers1"}
    assert expected <= set(summary.columns)
    assert (summary[["hash_share_of_step", "hash_share_of_evaluation"]] > 0).all().all()  # issue 11: hashing cost
    assert (frame.loc[frame["operation"] == "sampling", "flops_per_image"] > 0).all()
    baseline = frame.query("operation == 'train_step' and mode == 'per_sample_svd_b1'")
    assert baseline["batch"].eq(1).all() and baseline["precision"].eq("fp32").all()
    assert baseline["backbone"].eq("ddpm_unet").all()
    # the official recipe: its backbone, batch 1 accumulated over 2 micro-batches, fp32
    official = frame.query("operation == 'train_step' and mode == 'official_recipe'")
    assert official["backbone"].eq("rddm_unetres").all() and official["batch"].eq(2).all()
    assert official["precision"].eq("fp32").all()
    assert {"speedup_official_recipe", "gram_speedup_vs_per_sample_svd"} <= set(summary.columns)


def test_cli_lists_the_dataset_registry_as_json(capsys):
    import json

    assert main(["datasets", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert {e["name"] for e in entries} == {
        "raindrop",
        "rain1400",
        "gopro",
        "realblur_j",
        "realblur_r",
        "istd",
        "celebahq",
    }
    assert all({"task", "protocol", "sources", "licence"} <= set(e) for e in entries)


def test_istd_protocol_uses_masks_and_resize_policy(trained, tmp_path):
    from lrdm.data.synthetic import SynthesisOptions, make_synthetic_dataset

    make_synthetic_dataset(tmp_path / "shadow", "shadow", SynthesisOptions(32, 1, test_patches_per_image=1))
    index = tmp_path / "shadow" / "index.parquet"
    frame = evaluate_run(trained, index, steps=1, protocol="istd")
    assert {"mae_all", "mae_shadow", "mae_nonshadow"} <= set(frame.columns)
    assert frame["mae_all"].notna().all() and (frame["protocol"] == "istd").all()
    resized = evaluate_run(trained, index, steps=1, protocol="rgb", resize=48)
    assert (resized["protocol"] == "rgb@48").all() and resized["psnr"].notna().all()


def test_lrdm_transform_restores_the_transformed_input_and_scores_unrounded(trained, rain_index, tmp_path, monkeypatch):
    import functools

    import numpy as np
    from PIL import Image

    import lrdm
    import lrdm.evaluation.evaluate as evaluate_module
    from lrdm.data.paired import PairedImageDataset, from_model_space

    # the transform at 32 instead of 256 keeps the tiny UNet's full attention cheap; the plumbing is the same
    transform = functools.partial(lrdm.lrdm_test_resize, size=32)
    monkeypatch.setattr(evaluate_module, "lrdm_test_resize", transform)
    frame = evaluate_run(trained, rain_index, steps=1, protocol="lrdm_y", resize="lrdm", limit=2, save_dir=tmp_path)
    assert (frame["protocol"] == "lrdm_y@lrdm256").all()
    item = PairedImageDataset(rain_index, split="test")[0]
    png = np.asarray(Image.open(tmp_path / f"{item['image_id']}.png"))
    assert png.shape == (32, 32, 3)  # the network restored the transformed input
    degraded, target = transform(from_model_space(item["input"])), transform(from_model_space(item["target"]))
    assert frame.loc[0, "input_psnr"] == lrdm.score(degraded, target, "lrdm_y")["psnr"]
    # scored unrounded: the PNG (rounded) scores differently in PSNR, equally in SSIM
    rounded = lrdm.score(png, target, "lrdm_y")
    assert frame.loc[0, "psnr"] != rounded["psnr"] and frame.loc[0, "ssim"] == pytest.approx(rounded["ssim"], abs=1e-12)
    with pytest.raises(ValueError, match="resize must be None, a positive integer or 'lrdm'"):
        evaluate_run(trained, rain_index, steps=1, resize="lrdm512")


def test_a_sampler_of_another_process_is_refused_naming_the_key(trained, rain_index):
    with pytest.raises(ConfigError, match="sampling.sampler: sampler 'resshift' samples process 'resshift'"):
        evaluate_run(trained, rain_index, steps=1, limit=1, sampler="resshift")
    with pytest.raises(ConfigError, match="unknown sampler 'euler'"):
        evaluate_run(trained, rain_index, steps=1, limit=1, sampler="euler")
    with pytest.raises(TypeError, match="unexpected keyword argument 'stepz'"):
        evaluate_run(trained, rain_index, steps=1, stepz=2)


def test_further_scorings_rescore_the_same_restored_images(trained, rain_index):
    from lrdm.evaluation.evaluate import evaluate_protocols, parse_protocol_label

    labels = ["derain_y", "derain_y@48", "lrdm_y@lrdm256"]
    primary, further = evaluate_protocols(trained, rain_index, EvaluationOptions(Sampling(1), limit=2), labels)
    assert list(further.columns) == list(primary.columns)
    assert list(further["protocol"]) == labels * 2
    own = further[further["protocol"] == "derain_y"].reset_index(drop=True)
    assert own[["psnr", "ssim", "input_psnr"]].equals(primary[["psnr", "ssim", "input_psnr"]])  # same images
    assert (further["seconds"].to_numpy()[::3] == primary["seconds"].to_numpy()).all()  # restored once
    assert parse_protocol_label("lrdm_y@lrdm256") == ("lrdm_y", "lrdm") and parse_protocol_label("rgb@256") == (
        "rgb",
        256,
    )
    for bad in ("y@256", "rgb@", "rgb@lrdm512", "rgb@-3"):
        with pytest.raises(ValueError, match="protocol label"):
            parse_protocol_label(bad)
    with pytest.raises(ValueError, match="restored at their own size"):
        evaluate_protocols(trained, rain_index, EvaluationOptions(Sampling(1), resize=48), labels)


def test_scores_do_not_depend_on_the_eval_batch(trained, rain_index):
    """Batches of same-size test images: per-image noise generators, so the scores equal batch 1's.

    Up to floating point: a CPU convolution may pick another kernel for another batch size, which moved one
    image's PSNR by 2.5e-5 dB on one machine; a shared noise draw would move it by whole dB."""
    one = evaluate_run(trained, rain_index, steps=2)
    many = evaluate_run(trained, rain_index, steps=2, batch=len(one), progress=True)
    columns = ["psnr", "ssim", "input_psnr", "input_ssim"]
    assert list(one["image_id"]) == list(many["image_id"])
    assert np.allclose(one[columns].to_numpy(), many[columns].to_numpy(), rtol=0, atol=1e-3), (
        (one[columns] - many[columns]).abs().max()
    )


def test_evaluate_rule_asks_for_a_gpu_with_training():
    from lrdm.workflow import eval_batch, eval_gpus

    assert eval_gpus({"train_gpus": 4}) == 1 and eval_gpus({}) == 1
    assert eval_batch({"eval_batch": 8}) == 8 and eval_batch({}) == 1
