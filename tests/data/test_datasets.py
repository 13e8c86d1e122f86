"""Tests for lrdm.data.registry: layout parsers on miniature copies of each benchmark's tree,
pair verification, CelebA-HQ masks, prepare() end to end and the registry description."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from lrdm.data.download import Source
from lrdm.data.images import load_mask, load_rgb
from lrdm.data.index import INDEX_COLUMNS, MANIFEST_FILENAME, read_index, verify_index
from lrdm.data.layouts import (
    CELEBAHQ_FILL,
    RAIN1400_VERSIONS,
    inpainting_mask,
    parse_celebahq,
    parse_gopro,
    parse_istd,
    parse_rain1400,
    parse_raindrop,
    parse_realblur,
)
from lrdm.data.paired import PairedImageDataset
from lrdm.data.prepare import DatasetWarning, build_index, prepare
from lrdm.data.registry import REGISTRY, DatasetEntry, registry_json
from lrdm.errors import DataError, ManualDownloadRequired
from lrdm.files import sha256_file
from lrdm.paths import INDEX_FILE
from lrdm.vocab import PROTOCOLS, TASKS

SIDE = 8  # every fixture image is 8x8 unless a test needs otherwise


def img(path: Path, size: tuple[int, int] = (SIDE, SIDE), value: int = 0, mode: str = "RGB") -> Path:
    """Write a tiny image (format from the suffix); pixel values vary with ``value``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    arr = (np.arange(h * w * 3, dtype=np.int64).reshape(h, w, 3) * 7 + value * 31) % 256
    im = Image.fromarray(arr.astype(np.uint8))
    if mode != "RGB":
        im = im.convert(mode)
    im.save(path)
    return path


def by_id(df: pd.DataFrame) -> dict[str, pd.Series]:
    return {row.image_id: row for row in df.itertuples(index=False)}


def counts(df: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in df["split"].value_counts().items()}


# --------------------------------------------------------------------------------------
# Fixture trees mimicking the real layouts
# --------------------------------------------------------------------------------------


def raindrop_tree(root: Path) -> Path:
    base = root / "RainDrop"  # archives often wrap the tree in one more folder
    for split, n, ext in (("train", 3, "png"), ("test_a", 2, "png"), ("test_b", 2, "jpg")):
        for i in range(n):
            img(base / split / "data" / f"{i}_rain.{ext}", value=i)
            img(base / split / "gt" / f"{i}_clean.{ext}", value=i + 50)
    img(root / "__MACOSX" / "train" / "data" / "9_rain.png")  # archive junk: ignored
    (base / "train" / "data" / "._0_rain.png").write_bytes(b"junk")  # AppleDouble: ignored
    return root


def rain1400_tree(root: Path, versions: int = RAIN1400_VERSIONS) -> Path:
    for split, ids in (("training", (1, 2)), ("testing", (901,))):
        for cid in ids:
            img(root / "rainy_image_dataset" / split / "ground_truth" / f"{cid}.jpg", value=cid)
            for k in range(1, versions + 1):
                img(root / "rainy_image_dataset" / split / "rainy_image" / f"{cid}_{k}.jpg", value=cid + k)
    return root


def gopro_tree(root: Path) -> Path:
    layout = {"train": {"GOPR0372_07_00": 2, "GOPR0374_11_00": 1}, "test": {"GOPR0384_11_00": 2}}
    for split, seqs in layout.items():
        for seq, n in seqs.items():
            for i in range(n):
                name = f"{i + 47:06d}.png"
                for sub, v in (("blur", 1), ("blur_gamma", 2), ("sharp", 3)):
                    img(root / "GOPRO_Large" / split / seq / sub / name, value=i + v)
    return root


REALBLUR_DIRS = {  # written out, not taken from lrdm.data.registry, so a typo there fails here
    "J": "RealBlur-J_ECC_IMCORR_centroid_itensity_ref",
    "R": "RealBlur-R_BM3D_ECC_IMCORR_centroid_itensity_ref",
}


def realblur_tree(root: Path) -> Path:
    base = root / "RealBlur"
    for v, folder in REALBLUR_DIRS.items():
        for scene in ("scene001", "scene002", "scene003"):
            for k in (1, 2):
                img(base / folder / scene / "gt" / f"gt_{k}.png", value=k)
                img(base / folder / scene / "blur" / f"blur_{k}.png", value=k + 9)
        lines = {
            "train": [f"{folder}/scene001/gt/gt_{k}.png {folder}/scene001/blur/blur_{k}.png" for k in (1, 2)]
            # one line with the two paths swapped: still paired by folder name
            + [f"{folder}/scene002/blur/blur_1.png {folder}/scene002/gt/gt_1.png", ""],
            "test": [f"{folder}/scene003/gt/gt_{k}.png {folder}/scene003/blur/blur_{k}.png" for k in (1, 2)],
        }
        for split, text in lines.items():
            (base / f"RealBlur_{v}_{split}_list.txt").write_text("\n".join(text) + "\n")
    return root


def istd_tree(root: Path, n_train: int = 2, n_test: int = 2) -> Path:
    for split, n in (("train", n_train), ("test", n_test)):
        for i in range(n):
            name = f"{90 + i}-{i + 1}.png"
            img(root / "ISTD_Dataset" / split / f"{split}_A" / name, value=i)
            img(root / "ISTD_Dataset" / split / f"{split}_B" / name, value=i, mode="L")
            img(root / "ISTD_Dataset" / split / f"{split}_C" / name, value=i + 3)
    return root


def celebahq_tree(root: Path, size: tuple[int, int] = (20, 12)) -> Path:
    """Two rows in a HF-style shard: an ``image`` struct column (bytes, path) plus a label."""
    payloads = []
    for i in range(2):
        buf = io.BytesIO()
        arr = (np.arange(size[0] * size[1] * 3).reshape(size[1], size[0], 3) * (i + 3)) % 256
        Image.fromarray(arr.astype(np.uint8)).save(buf, format="JPEG")
        payloads.append({"bytes": buf.getvalue(), "path": f"{1000 + i}.jpg"})
    table = pa.table({"image": payloads, "label": [0, 1]})
    (root / "hf" / "data").mkdir(parents=True, exist_ok=True)
    pq.write_table(table, root / "hf" / "data" / "train-00000-of-00001.parquet")
    return root


# --------------------------------------------------------------------------------------
# Layout parsers
# --------------------------------------------------------------------------------------


def test_raindrop_pairs_and_splits(tmp_path):
    df = parse_raindrop(raindrop_tree(tmp_path))
    assert counts(df) == {"train": 3, "test": 2, "test_b": 2}  # test_a -> test
    for row in df.itertuples(index=False):
        n = row.image_id.split("-", 1)[1]
        assert Path(row.input).name.startswith(f"{n}_rain.") and Path(row.target).name.startswith(f"{n}_clean.")
        assert Path(row.input).parent.name == "data" and Path(row.target).parent.name == "gt"
        assert row.mask is None
    test_b = df[df["split"] == "test_b"]
    assert all(p.endswith(".jpg") for p in [*test_b["input"], *test_b["target"]])
    assert "__MACOSX" not in "".join(df["input"])


@pytest.mark.parametrize(
    ("tree", "parse", "removed", "message"),
    [
        (raindrop_tree, parse_raindrop, "RainDrop/test_a/gt/1_clean.png", r"1_rain\.png.*1_clean"),  # its target
        (realblur_tree, lambda root: parse_realblur(root, "R"), "RealBlur/RealBlur_R_test_list.txt", "R_test_list"),
        (istd_tree, parse_istd, "ISTD_Dataset/test/test_B/91-2.png", r"test_A/91-2\.png.*test_B/91-2\.png"),  # mask
    ],
    ids=["raindrop_target", "realblur_list", "istd_mask"],
)
def test_a_missing_file_is_named(tmp_path, tree, parse, removed, message):
    tree(tmp_path)
    (tmp_path / removed).unlink()
    with pytest.raises(DataError, match=message):
        parse(tmp_path)


def test_rain1400_fourteen_inputs_per_target(tmp_path):
    df = parse_rain1400(rain1400_tree(tmp_path))
    assert counts(df) == {"train": 28, "test": 14}
    assert df.attrs["warnings"] == []
    rows = by_id(df)
    assert Path(rows["train-2_14"].input).name == "2_14.jpg"
    assert Path(rows["train-2_14"].target).name == "2.jpg"
    assert Path(rows["test-901_3"].target).parent.parent.name == "testing"
    per_target = df.groupby("target")["input"].count()
    assert set(per_target) == {14} and len(per_target) == 3
    for row in df.itertuples(index=False):  # id parsing: target stem = part before "_"
        assert Path(row.input).stem.split("_")[0] == Path(row.target).stem
        assert row.source == f"{row.split}-{Path(row.target).stem}"


def test_rain1400_wrong_version_count_warns(tmp_path):
    rain1400_tree(tmp_path, versions=2)
    df = parse_rain1400(tmp_path)
    assert counts(df) == {"train": 4, "test": 2}
    assert any("exactly 14" in w for w in df.attrs["warnings"])


def test_gopro_uses_blur_not_blur_gamma(tmp_path):
    df = parse_gopro(gopro_tree(tmp_path))
    assert counts(df) == {"train": 3, "test": 2}
    for row in df.itertuples(index=False):
        assert Path(row.input).parent.name == "blur" and Path(row.target).parent.name == "sharp"
        assert Path(row.input).name == Path(row.target).name
        assert Path(row.input).parent.parent.name == row.source
    assert "train-GOPR0372_07_00-000048" in set(df["image_id"])


def test_realblur_pairs_come_from_the_lists(tmp_path):
    realblur_tree(tmp_path)
    for v in ("J", "R"):
        df = parse_realblur(tmp_path, v)
        assert counts(df) == {"train": 3, "test": 2}  # scene002/blur_2 is in no list: left out
        for row in df.itertuples(index=False):
            assert REALBLUR_DIRS[v] in row.input
            assert Path(row.input).parent.name == "blur" and Path(row.target).parent.name == "gt"
            assert Path(row.input).name.replace("blur_", "") == Path(row.target).name.replace("gt_", "")
            assert Path(row.input).is_file() and Path(row.target).is_file()
        assert set(df.loc[df["split"] == "test", "source"]) == {"scene003"}
    assert REGISTRY["realblur_j"].parse(tmp_path)["input"].str.contains("RealBlur-J_").all()


def test_istd_triplets_with_mask(tmp_path):
    df = parse_istd(istd_tree(tmp_path, n_train=3, n_test=2))
    assert counts(df) == {"train": 3, "test": 2}
    for row in df.itertuples(index=False):
        assert Path(row.input).parent.name == f"{row.split}_A"
        assert Path(row.mask).parent.name == f"{row.split}_B"
        assert Path(row.target).parent.name == f"{row.split}_C"
        assert Path(row.input).name == Path(row.mask).name == Path(row.target).name


def test_celebahq_deterministic_masks(tmp_path):
    runs = []
    for run in ("a", "b"):
        root = celebahq_tree(tmp_path / run)
        df = parse_celebahq(root, size=16)
        runs.append(df)
        assert len(df) == 2 and set(df["image_id"]) == {f"{s}-{k}" for s, k in zip(df["split"], ("1000", "1001"))}
        for row in df.itertuples(index=False):
            inp, tgt, mask = load_rgb(row.input), load_rgb(row.target), load_mask(row.mask)
            assert inp.shape == tgt.shape == (16, 16, 3) and mask.shape == (16, 16)
            assert mask.any() and not mask.all()
            assert (inp[mask] == CELEBAHQ_FILL).all()
            assert (inp[~mask] == tgt[~mask]).all()
            expected, _ = inpainting_mask(row.image_id, 16, 16)
            assert (mask == expected).all()
    # same bytes on a second, independent run
    for col in ("input", "target", "mask"):
        assert [sha256_file(p) for p in runs[0][col]] == [sha256_file(p) for p in runs[1][col]]
    assert list(runs[0]["image_id"]) == list(runs[1]["image_id"])


def test_inpainting_mask_kinds():
    center, kind = inpainting_mask("x", 16, 12, "center")
    assert kind == "center" and center.sum() == 6 * 6 and center[5:11, 3:9].all()
    irregular, kind = inpainting_mask("x", 16, 12, "irregular")
    assert kind == "irregular" and irregular.any()
    again, _ = inpainting_mask("x", 16, 12, "irregular")
    assert (again == irregular).all()
    kinds = {inpainting_mask(f"id{i}", 8, 8)[1] for i in range(40)}
    assert kinds == {"center", "irregular"}  # "mixed" draws both
    with pytest.raises(ValueError, match="mask kind"):
        inpainting_mask("x", 8, 8, "stripes")


# --------------------------------------------------------------------------------------
# Pair verification and index building
# --------------------------------------------------------------------------------------


def _entry(name: str, parse, **kw) -> DatasetEntry:
    kw.setdefault("sources", ())
    return DatasetEntry(name=name, task="shadow", licence="test", protocol="istd", beta2_sum=0.01, parse=parse, **kw)


def test_size_mismatch_names_the_files(tmp_path):
    istd_tree(tmp_path / "raw")
    bad = tmp_path / "raw" / "ISTD_Dataset" / "train" / "train_C" / "90-1.png"
    img(bad, size=(SIDE, SIDE + 2))
    with pytest.raises(DataError, match=r"size mismatch.*train_C/90-1\.png is 8x10"):
        build_index(_entry("istd", parse_istd), tmp_path / "raw", tmp_path / "data")


def test_listed_file_missing_names_the_file(tmp_path):
    realblur_tree(tmp_path / "raw")
    (tmp_path / "raw" / "RealBlur" / REALBLUR_DIRS["J"] / "scene003" / "gt" / "gt_2.png").unlink()
    entry = dataclasses.replace(REGISTRY["realblur_j"], expected_counts={})
    with pytest.raises(DataError, match=r"target file not found: .*scene003/gt/gt_2\.png"):
        build_index(entry, tmp_path / "raw", tmp_path / "data")


def test_count_mismatch_is_a_warning(tmp_path):
    istd_tree(tmp_path / "raw")
    entry = _entry("istd", parse_istd, expected_counts={"train": 2, "test": 540})
    with pytest.warns(DatasetWarning, match="2 test pairs, expected 540"):
        df = build_index(entry, tmp_path / "raw", tmp_path / "data")
    assert df.attrs["counts"] == {"test": 2, "train": 2}
    assert df.attrs["warnings"] == ["istd: 2 test pairs, expected 540"]


# --------------------------------------------------------------------------------------
# prepare() end to end
# --------------------------------------------------------------------------------------


def _zip_tree(tree: Path, archive: Path) -> str:
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(tree.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(tree).as_posix())
    return hashlib.sha256(archive.read_bytes()).hexdigest()


def _placed_istd(tmp_path: Path, expected_counts: dict[str, int]) -> tuple[Path, dict, str]:
    """An ISTD tree of 2 train and 3 test triplets, zipped into ``resources/downloads`` as a manual source placed by
    hand: ``(resources, registry, sha256 of the archive)``, the registry's entry expecting ``expected_counts``."""
    resources = tmp_path / "resources"
    istd_tree(tmp_path / "tree", n_train=2, n_test=3)
    digest = _zip_tree(tmp_path / "tree", resources / "downloads" / "ISTD_Dataset.zip")
    source = Source(filename="ISTD_Dataset.zip", sha256=digest, manual=True, page="https://example.invalid/istd")
    return resources, {"istd": _entry("istd", parse_istd, sources=(source,), expected_counts=expected_counts)}, digest


def test_prepare_manual_archive_end_to_end(tmp_path):
    resources, registry, digest = _placed_istd(tmp_path, {"train": 2, "test": 3})

    path = prepare("istd", resources, progress=False, registry=registry)
    assert path == resources / "data" / "istd" / INDEX_FILE

    stored = pd.read_parquet(path)
    assert list(stored.columns) == list(INDEX_COLUMNS)
    assert all(p.startswith("../../raw/istd/ISTD_Dataset/") for p in [*stored["input"], *stored["mask"]])
    assert set(stored["task"]) == {"shadow"} and set(stored["source"]) == {"istd"}
    assert (stored["height"] == SIDE).all() and (stored["width"] == SIDE).all()

    index = read_index(path)
    assert verify_index(index) == 3 * len(index)  # every input, target and mask hash checks
    ds = PairedImageDataset(index, "test")
    assert len(ds) == 3 and ds.has_mask
    item = ds[0]
    assert item["input"].shape == (3, SIDE, SIDE) and item["mask"].shape == (1, SIDE, SIDE)
    assert item["image_id"] == "test-90-1"

    manifest = json.loads((path.parent / MANIFEST_FILENAME).read_text())
    assert manifest["counts"] == {"test": 3, "train": 2} and manifest["warnings"] == []
    assert manifest["archives"] == [
        {
            "filename": "ISTD_Dataset.zip",
            "sha256": digest,
            "size": (resources / "downloads" / "ISTD_Dataset.zip").stat().st_size,
        }
    ]

    before = path.read_bytes()
    assert prepare("istd", resources, progress=False, registry=registry) == path  # rerun: no-op extract
    assert path.read_bytes() == before


def test_prepare_fails_on_a_pair_count_off_from_the_registry_unless_the_config_accepts_it(tmp_path):
    resources, registry, _ = _placed_istd(tmp_path, {"train": 1330, "test": 540})
    message = (
        r"istd: 3 test pairs, expected 540, 2 train pairs, expected 1330 \(the registry's count, tolerance 1%\): "
        r"a partial download or another release; to use these pairs set config key datasets\.istd\.expected_pairs: "
        r"5 \(or 'any'\)"
    )
    with pytest.warns(DatasetWarning), pytest.raises(DataError, match=message):
        prepare("istd", resources, progress=False, registry=registry)
    assert not (resources / "data" / "istd" / INDEX_FILE).exists()
    with pytest.warns(DatasetWarning), pytest.raises(DataError, match=r"5 pairs found \(3 test, 2 train\), config "
                                                     r"key datasets\.istd\.expected_pairs says 6"):  # fmt: skip
        prepare("istd", resources, progress=False, registry=registry, expected_pairs=6)
    for accepted in (5, "any"):
        with pytest.warns(DatasetWarning):
            path = prepare("istd", resources, progress=False, registry=registry, expected_pairs=accepted)
        assert len(read_index(path)) == 5
    within = {"istd": dataclasses.replace(registry["istd"], expected_counts={"train": 2, "test": 3})}
    assert len(read_index(prepare("istd", resources, progress=False, registry=within))) == 5


def test_prepare_celebahq_from_raw_shards(tmp_path):
    resources = tmp_path / "resources"
    celebahq_tree(resources / "raw" / "celebahq")
    registry = {"celebahq": dataclasses.replace(REGISTRY["celebahq"], parse=lambda r: parse_celebahq(r, size=16))}
    with pytest.warns(DatasetWarning):  # no test shard -> hash hold-out warning (and maybe no test pairs)
        # the Parquet shards are the mirror route: placed under raw/ by hand, parsed without fetching the zip
        path = prepare("celebahq", resources, progress=False, registry=registry, fetch_sources=False)
    index = read_index(path)
    assert len(index) == 2 and set(index["task"]) == {"inpainting"} and index["mask"].notna().all()
    assert verify_index(index) == 6


def test_celebahq_manual_zip_is_named_then_used(tmp_path):
    """The manual source: prepare names the file, the page and where to put it; then uses the placed archive."""

    resources = tmp_path / "resources"
    with pytest.raises(ManualDownloadRequired) as err:
        prepare("celebahq", resources, progress=False)
    message = str(err.value)
    for part in ("celebahq", "CelebAMask-HQ.zip", "github.com/switchablenorms/CelebAMask-HQ",
                 str((resources / "downloads" / "CelebAMask-HQ.zip").resolve())):
        assert part in message, message
    archive = resources / "downloads" / "CelebAMask-HQ.zip"
    archive.parent.mkdir(parents=True)
    with zipfile.ZipFile(archive, "w") as zf:
        for number in range(40):
            buf = io.BytesIO()
            Image.fromarray(np.full((12, 12, 3), number * 5, np.uint8)).save(buf, format="JPEG")
            zf.writestr(f"CelebAMask-HQ/CelebA-HQ-img/{number}.jpg", buf.getvalue())
        zf.writestr("CelebAMask-HQ/README.txt", "segmentation masks are not used")
    registry = {"celebahq": dataclasses.replace(REGISTRY["celebahq"], parse=lambda r: parse_celebahq(r, size=16))}
    with pytest.warns(DatasetWarning, match="held out"):
        path = prepare("celebahq", resources, progress=False, registry=registry)
    index = read_index(path)
    assert len(index) == 40 and set(index["split"]) == {"train", "test"} and verify_index(index) == 3 * 40
    assert json.loads((path.parent / "manifest.json").read_text())["archives"][0]["filename"] == "CelebAMask-HQ.zip"


def test_prepare_missing_manual_archive(tmp_path):
    with pytest.raises(ManualDownloadRequired, match="train.zip"):
        prepare("raindrop", tmp_path, progress=False)
    with pytest.raises(ManualDownloadRequired, match="celebahq"):
        prepare("celebahq", tmp_path, progress=False)


def test_prepare_unknown_name_lists_registry(tmp_path):
    with pytest.raises(ValueError, match=r"unknown dataset 'rain100'.*gopro.*raindrop"):
        prepare("rain100", tmp_path)


# --------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------


def test_registry_json():
    info = json.loads(json.dumps(registry_json()))
    names = [d["name"] for d in info]
    assert names == ["raindrop", "rain1400", "gopro", "realblur_j", "realblur_r", "istd", "celebahq"]
    for d in info:
        assert d["verified"] is False and "NOT VERIFIED" in d["notes"]
        assert d["task"] in TASKS and d["protocol"] in PROTOCOLS
        for s in d["sources"]:
            assert set(s) >= {"filename", "url", "sha256", "manual", "page"}
    by_name = {d["name"]: d for d in info}
    assert by_name["raindrop"]["beta2_sum"] == 1.0 and by_name["gopro"]["beta2_sum"] == 0.01
    assert by_name["istd"]["sources"][0]["manual"] is True
    assert by_name["gopro"]["sources"][0]["url"].endswith("/GOPRO_Large.zip")
    assert by_name["realblur_j"]["raw_dir"] == by_name["realblur_r"]["raw_dir"] == "realblur"


def test_entry_validation():
    with pytest.raises(ValueError, match="task"):
        dataclasses.replace(REGISTRY["gopro"], task="denoise")
    with pytest.raises(ValueError, match="protocol"):
        dataclasses.replace(REGISTRY["gopro"], protocol="lab")


def _tar_tree(tree: Path, archive: Path) -> str:
    import tarfile

    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tf:
        for p in sorted(tree.rglob("*")):
            tf.add(p, p.relative_to(tree).as_posix(), recursive=False)
    return hashlib.sha256(archive.read_bytes()).hexdigest()


def test_prepare_downloads_from_local_http_server_with_an_interruption(tmp_path, server, no_proxy):
    """GoPro's real archive name and layout, served from 127.0.0.1; the first transfer is cut and resumed."""
    gopro_tree(tmp_path / "tree")
    archive = tmp_path / "served" / "GOPRO_Large.zip"
    digest = _zip_tree(tmp_path / "tree", archive)
    server.state.files["/GOPRO_Large.zip"] = archive.read_bytes()
    server.state.cut_after = archive.stat().st_size // 3
    real = REGISTRY["gopro"]
    source = dataclasses.replace(real.sources[0], url=server.url("GOPRO_Large.zip"), sha256=digest)
    registry = {"gopro": dataclasses.replace(real, sources=(source,), expected_counts={"train": 3, "test": 2})}

    index = prepare("gopro", tmp_path / "resources", progress=False, registry=registry)
    assert [r["range"] for r in server.state.requests] == [None, f"bytes={archive.stat().st_size // 3}-"]
    frame = read_index(index)
    assert sorted(frame["split"].value_counts().items()) == [("test", 2), ("train", 3)]
    assert all("/blur/" in p for p in frame["input"]) and all("/sharp/" in p for p in frame["target"])


def test_prepare_realblur_lists_from_local_http_server(tmp_path, server, no_proxy):
    """RealBlur's tar.gz with its split lists, served from 127.0.0.1, for both variants (one shared archive)."""
    realblur_tree(tmp_path / "tree")
    archive = tmp_path / "served" / "RealBlur.tar.gz"
    digest = _tar_tree(tmp_path / "tree", archive)
    server.state.files["/RealBlur.tar.gz"] = archive.read_bytes()
    registry = {}
    for name in ("realblur_j", "realblur_r"):
        real = REGISTRY[name]
        source = dataclasses.replace(real.sources[0], url=server.url("RealBlur.tar.gz"), sha256=digest)
        registry[name] = dataclasses.replace(real, sources=(source,), expected_counts={})
    for name in registry:
        frame = read_index(prepare(name, tmp_path / "resources", progress=False, registry=registry))
        assert len(frame) > 0 and frame["input"].str.contains("/blur/").all()
    assert len(server.state.requests) == 1  # the second variant reuses the verified archive
