"""Image modalities: decoding, pooling, object (timm) and scene (UperNet) encoders, the sharded stage."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from bamir.data.schema import RawDataset
from bamir.features.image import ObjectStage, SceneStage
from bamir.features.image.decoding import CORRUPT, MISSING, OK, decode_bytes, resize_crop
from bamir.features.image.encoders import ObjectEncoder, SceneEncoder
from bamir.features.image.pooling import Pool
from bamir.features.settings import ObjectSettings, SceneSettings
from tests.helpers.prep import CORRUPT_POST, MISSING_POST, TRUNCATED_POST, make_raw, tiny_stages
from tests.helpers.paths import REPO

TINY_OBJECT = dict(model="test_resnet", image_size=32, batch_size=8, num_workers=0)
TINY_SCENE = {k: v for k, v in tiny_stages()["scene"].items() if k not in ("_target_", "shard_size")}


def _object(**settings) -> ObjectEncoder:
    return ObjectEncoder(ObjectSettings(**{**TINY_OBJECT, **settings}), device="cpu")


def _scene(**settings) -> SceneEncoder:
    return SceneEncoder(SceneSettings(**{**TINY_SCENE, **settings}), device="cpu")


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> RawDataset:
    return RawDataset.load(make_raw(tmp_path_factory.mktemp("raw")))


def _encoded(fmt: str, size=(50, 30), color=(10, 200, 30)) -> torch.Tensor:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format=fmt)
    return torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)


def test_decode_and_resize_crop():
    for fmt in ("JPEG", "PNG", "BMP"):  # BMP goes through the PIL fallback
        image = decode_bytes(_encoded(fmt))
        assert image.shape == (3, 30, 50) and image.dtype == torch.uint8
        out = resize_crop(image, 16)
        assert out.shape == (3, 16, 16)
        assert abs(int(out[1].float().mean()) - 200) <= 3
    with pytest.raises(Exception):
        decode_bytes(torch.randint(0, 256, (300,), dtype=torch.uint8))


def test_pooling_published_mean_max():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.05, 0.05, 0.9], [0.3, 0.3, 0.4]])
    rows = torch.tensor([0, 0, 2])
    pub = Pool(4, 3, "published", 0.1, torch.device("cpu"))
    pub.add(rows, probs)
    feats, present = pub.result()
    assert present.tolist() == [True, False, True, False]
    summed = torch.tensor([0.7 + 0.0, 0.2 + 0.0, 0.0 + 0.9])  # zero those <= 0.1, then sum
    assert torch.allclose(feats[0], torch.softmax(summed, 0))
    assert torch.allclose(feats[2], torch.softmax(probs[2], 0))
    assert torch.equal(feats[1], torch.zeros(3))
    mean = Pool(4, 3, "mean", 0.1, torch.device("cpu"))
    mean.add(rows, probs)
    assert torch.allclose(mean.result()[0][0], probs[:2].mean(0))
    mx = Pool(4, 3, "max", 0.1, torch.device("cpu"))
    mx.add(rows[:1], probs[:1])
    mx.add(rows[1:], probs[1:])
    assert torch.allclose(mx.result()[0][0], probs[:2].max(0).values)
    with pytest.raises(ValueError, match="pooling"):
        Pool(1, 1, "median", 0.1, torch.device("cpu"))


def test_object_encoder_statuses_and_device_decoding(raw, tmp_path):
    paths = [raw.root / "images" / f"{p}.jpg" for p in ("b0_p0", MISSING_POST, CORRUPT_POST, TRUNCATED_POST, "i0_p1")]
    paths.append(raw.root / "images" / "b1_p0.png")
    results = {}
    for decode in ("worker", "device"):  # "device" is the GPU-decoding path, run here on the CPU
        encoder = _object(decode=decode)
        index, probs, status = next(encoder.encode_files(paths))
        assert index.tolist() == list(range(6))
        assert status.tolist() == [OK, MISSING, CORRUPT, CORRUPT, OK, OK]
        assert probs.shape == (6, encoder.num_classes)
        assert torch.allclose(probs[status == OK].sum(1), torch.ones(3), atol=1e-4)
        assert torch.equal(probs[status != OK], torch.zeros(3, encoder.num_classes))
        results[decode] = probs
    assert torch.allclose(results["worker"], results["device"], atol=1e-4)


def test_object_encoder_loads_local_weights(tmp_path):
    import timm

    reference = timm.create_model("test_resnet", pretrained=False).eval()
    torch.save(reference.state_dict(), tmp_path / "w.pth")
    encoder = _object(weights=str(tmp_path / "w.pth"))
    x = torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.uint8)
    with torch.inference_mode():
        expected = reference(encoder.normalise(x)).softmax(1)
    assert torch.allclose(encoder.run_model(x), expected, atol=1e-5)
    assert not encoder.random_weights
    with pytest.raises(FileNotFoundError):
        _object(weights=str(tmp_path / "none.pth")).prepare_model()


def test_scene_areas_at_decoder_resolution(tmp_path):
    encoder = _scene()
    encoder.prepare_model()
    x = encoder.normalise(torch.randint(0, 255, (3, 3, 32, 32), dtype=torch.uint8))
    with torch.inference_mode():
        logits = encoder.decoder_logits(x)
        assert logits.shape == (3, 12, 8, 8)  # 1/4 of the input: no upsampling to 32 x 32
        soft = encoder.distributions(x)
        assert torch.allclose(soft, logits.softmax(1).mean((2, 3)), atol=1e-6)
        encoder.area = "hard"
        hard = encoder.distributions(x)
    assert torch.allclose(hard.sum(1), torch.ones(3))
    assert torch.all(hard * 64 == (hard * 64).round())  # shares of 8 x 8 decoder pixels
    # a saved checkpoint folder loads back as the same model
    encoder.model.save_pretrained(tmp_path / "upernet")
    loaded = _scene(weights=str(tmp_path / "upernet"))
    y = torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.uint8)
    encoder.area = "soft"
    assert torch.allclose(loaded.run_model(y), encoder.run_model(y), atol=1e-5)
    assert loaded.num_classes == 12


def test_object_stage_counts_skips_and_note(raw, tmp_path):
    accounts = raw.accounts["account_id"].tolist()
    stage = ObjectStage(**{**TINY_OBJECT, "num_workers": 1}, pooling="mean", shard_size=6, progress=False)
    out = stage.run(raw, accounts, set(), tmp_path)["object"]
    assert out.skipped == {"missing_file": 1, "corrupt_image": 2}
    assert out.counts["posts_without_image"] == 2
    assert out.counts["images_ok"] == out.counts["posts_with_image"] - 3
    assert out.counts["shards"] == 3 and out.counts["shards_resumed"] == 0
    assert out.counts["accounts_uniform"] == 0  # only published pooling can collapse to uniform
    assert "RANDOM-INITIALISED" in out.note
    assert out.features.shape == (16, 1000) and bool(out.present.all())
    assert torch.allclose(out.features.sum(1), torch.ones(16), atol=1e-4)
    # rerun: everything comes from the shards
    again = ObjectStage(**TINY_OBJECT, pooling="mean", shard_size=6, progress=False).run(raw, accounts, set(), tmp_path)
    assert again["object"].counts["shards_resumed"] == 3
    assert torch.equal(again["object"].features, out.features)


def test_account_without_usable_images_is_absent(raw, tmp_path):
    accounts = raw.accounts["account_id"].tolist()
    posts = raw.posts.copy()
    posts.loc[posts["account_id"] == "i3", "image"] = "images/does-not-exist.jpg"
    changed = RawDataset(raw.root, raw.info, raw.accounts, posts, raw.pairs, raw.splits)
    stage = SceneStage(**TINY_SCENE, shard_size=16, progress=False)
    out = stage.run(changed, accounts, set(), tmp_path)["scene"]
    row = accounts.index("i3")
    assert not bool(out.present[row]) and torch.equal(out.features[row], torch.zeros(12))
    assert out.features.shape == (16, 12)
    assert stage.inputs_hash(changed) != stage.inputs_hash(raw)
    # only settings that change the numbers are in the config (hash)
    assert "batch_size" not in stage.config() and stage.config()["num_labels"] == 12
    assert SceneStage(**{**TINY_SCENE, "batch_size": 2}).config() == stage.config()
    assert np.isclose(stage.config()["threshold"], 0.1)


@pytest.mark.slow
def test_gpu_check_script_runs_its_decoding_path_on_the_cpu(tmp_path):
    """benchmarks/gpu_check.py (the first step of benchmarks/gpu.sh) compares the device-decoding,
    bf16 path with the CPU reference; here it runs that path on the CPU, as a session lent a GPU
    would on CUDA, and both encoders must pass with every odd file's status matched."""
    import json
    import os
    import subprocess
    import sys

    root = REPO
    figures = tmp_path / "check.json"
    done = subprocess.run([sys.executable, str(root / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--amp", "bf16",
                           "--images", "4", "--json", str(figures)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    rows = [json.loads(line) for line in figures.read_text().splitlines()]
    assert [r["encoder"] for r in rows] == ["object", "scene"]
    for row in rows:
        assert row["statuses_equal"] and row["ok_images"] == 5  # 4 JPEGs and the PNG; 3 files refused
        assert row["median_correlation"] > 0.995 and row["max_tv"] < 0.01
