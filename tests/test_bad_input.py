"""Bad input to the library and the detect CLI: each gives a clear error or a documented, correct result."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from keynet.detect import KeyNetDetector
from keynet.image import to_grey_tensor
from keynet.model import MIN_IMAGE_SIDE, KeyNet
from keynet.weights import WeightsError, load_model, save_weights

from .conftest import REPO


@pytest.fixture(scope="module")
def detector():
    return KeyNetDetector(KeyNet().eval(), num_keypoints=50)


def test_empty_array_is_refused(detector):
    with pytest.raises(ValueError, match="empty"):
        detector.detect(np.zeros((0, 0), np.uint8))


@pytest.mark.parametrize("side", [1, 20])
def test_images_smaller_than_the_minimum_are_refused(detector, side):
    with pytest.raises(ValueError, match=f"{side}x{side} pixels.*at least {detector.min_image_side}"):
        detector.detect(np.zeros((side, side), np.uint8))


def test_model_refuses_inputs_below_its_minimum():
    with pytest.raises(ValueError, match=f"at least {MIN_IMAGE_SIDE}"):
        KeyNet()(torch.zeros(1, 1, 8, 64))


def test_rgb_rgba_grey_and_uint16_convert_to_the_same_luma():
    grey = np.random.default_rng(0).integers(0, 256, (40, 50), dtype=np.uint8)
    bgr = np.repeat(grey[:, :, None], 3, 2)
    bgra = np.concatenate([bgr, np.full((40, 50, 1), 7, np.uint8)], 2)
    want = torch.from_numpy(grey).float()[None, None] / 255
    for image in (grey, grey[:, :, None], bgr, bgra):
        torch.testing.assert_close(to_grey_tensor(image), want)
    torch.testing.assert_close(to_grey_tensor(grey.astype(np.uint16) * 257), want)
    torch.testing.assert_close(to_grey_tensor(grey / 255.0), want)


def test_colour_uses_opencv_luma_weights():
    bgr = np.zeros((20, 20, 3), np.uint8)
    bgr[..., 2] = 255  # pure red in OpenCV's BGR order
    import cv2

    want = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255
    np.testing.assert_allclose(to_grey_tensor(bgr)[0, 0].numpy(), want, atol=1 / 255)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_are_refused(bad):
    image = np.full((40, 40), 0.5, np.float32)
    image[3, 4] = bad
    with pytest.raises(ValueError, match="1 NaN or infinite"):
        to_grey_tensor(image)


def test_floats_outside_unit_range_are_refused():
    with pytest.raises(ValueError, match=r"span \[0, 255\].*expected \[0, 1\]"):
        to_grey_tensor(np.array([[0.0, 255.0]] * 40, np.float32))


def test_wrong_channel_count_and_type_are_refused():
    with pytest.raises(ValueError, match="2 channels"):
        to_grey_tensor(np.zeros((40, 40, 2), np.uint8))
    with pytest.raises(TypeError, match="NumPy array or a torch.Tensor"):
        to_grey_tensor([[0, 1]])
    with pytest.raises(TypeError, match="int64"):
        to_grey_tensor(np.zeros((40, 40), np.int64))


def test_missing_weights_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.pt"):
        load_model(tmp_path / "nothere.pt")


def test_a_file_that_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("these are not weights")
    with pytest.raises(WeightsError, match="notes.pt is not a PyTorch checkpoint"):
        load_model(path)


def test_a_checkpoint_without_a_state_dict(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(WeightsError, match="other.pt.*'state_dict'"):
        load_model(path)


def test_weights_of_the_wrong_shapes(tmp_path):
    path = tmp_path / "wide.pt"
    torch.save({"state_dict": KeyNet(num_filters=16).state_dict()}, path)
    with pytest.raises(WeightsError, match="wide.pt does not fit the keynet architecture.*size mismatch"):
        load_model(path)


class RunsCode:
    def __reduce__(self):
        return (os.system, ("touch HOSTILE_PAYLOAD_RAN",))


def test_a_pickle_that_tries_to_run_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "hostile.pt"
    torch.save({"state_dict": {}, "payload": RunsCode()}, path)
    with pytest.raises(WeightsError, match="hostile.pt holds Python objects.*weights_only=True"):
        load_model(path)
    assert not (tmp_path / "HOSTILE_PAYLOAD_RAN").exists()


def test_our_format_round_trips_with_its_model_card(tmp_path):
    model = KeyNet().eval()
    card = {"data": "unit test", "epochs": 0, "date": "2026-11-25"}
    save_weights(model, tmp_path / "w.pt", card)
    loaded = load_model(tmp_path / "w.pt")
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)
    assert [p.name for p in tmp_path.iterdir()] == ["w.pt"]  # no temporary file left behind
    with pytest.raises(ValueError, match="model_card lacks"):
        save_weights(model, tmp_path / "x.pt", {"data": "x"})


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "main.py"), *args], capture_output=True, text=True, cwd=REPO)


def test_detect_cli_reports_a_missing_image_in_one_line(tmp_path):
    result = run_cli("detect", str(tmp_path / "missing.png"), "--weights", str(tmp_path / "w.pt"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: image file {tmp_path / 'missing.png'} does not exist"


def test_detect_cli_reports_a_corrupt_image(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG not really")
    result = run_cli("detect", str(bad), "--weights", str(tmp_path / "w.pt"))
    assert result.returncode == 2 and "bad.png is not a readable image" in result.stderr


def test_without_weights_or_shipped_ones_the_error_says_to_pass_them(monkeypatch):
    import keynet.cli

    monkeypatch.setattr(keynet.cli, "default_weights", lambda architecture="keynet": None)
    with pytest.raises(FileNotFoundError, match="pass --weights FILE"):
        keynet.cli.resolve_weights(None, "tiny_keynet")


def test_detect_cli_prints_json_and_draws(test_image, authors_weights, tmp_path):
    import json

    out = tmp_path / "kps.png"
    result = run_cli("detect", str(test_image), "--weights", str(authors_weights), "--num", "200", "--json",
                     "--out", str(out))
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert 0 < doc["count"] <= 200 and set(doc["keypoints"][0]) == {"x", "y", "scale", "score"}
    import cv2

    assert cv2.imread(str(out)).shape[:2] == cv2.imread(str(test_image)).shape[:2]
