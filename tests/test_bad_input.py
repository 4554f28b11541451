"""Bad input to the library: each gives a clear error or a documented, correct result."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
import torch

from keynet.detect import KeyNetDetector
from keynet.errors import InputError, OptionError, WeightsError
from keynet.image import MAX_IMAGE_PIXELS, read_image, to_grey_tensor
from keynet.model import MIN_IMAGE_SIDE, KeyNet, TinyKeyNet
from keynet.weights import load_model, save_weights


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


def write_notes(path):
    path.write_text("these are not weights")


def write_no_state_dict(path):
    torch.save({"weights": torch.zeros(3)}, path)


def write_random_bytes(path):
    path.write_bytes(np.random.default_rng(0).bytes(4096))


def write_folder(path):
    path.mkdir()


def write_nan_weights(path):
    model = KeyNet()
    with torch.no_grad():
        model.last_conv[0].weight.fill_(float("nan"))
    save_weights(model, path, {"data": "test", "epochs": 1, "date": "2026-12-03"})


def write_absurd_config(path):
    save_weights(KeyNet(), path, {"data": "test", "epochs": 1, "date": "2026-12-03"})
    ckpt = torch.load(path, weights_only=True)
    ckpt["config"]["num_filters"] = 10**9
    torch.save(ckpt, path)


def write_wider_model(path):
    torch.save({"state_dict": KeyNet(num_filters=16).state_dict()}, path)


@pytest.mark.parametrize(("name", "write", "message"), [
    ("nothere.pt", None, "weights file .*nothere.pt does not exist"),
    ("notes.pt", write_notes, "notes.pt is not a PyTorch file"),
    ("random.pt", write_random_bytes, "random.pt is not a PyTorch file"),
    ("folder.pt", write_folder, "folder.pt is a folder"),
    ("nan.pt", write_nan_weights, "nan.pt holds NaN or infinite weights"),
    ("huge.pt", write_absurd_config, "huge.pt describes a model that cannot be built.*num_filters"),
    ("other.pt", write_no_state_dict, "other.pt.*'state_dict'"),
    ("wide.pt", write_wider_model, "wide.pt does not fit the keynet architecture.*size mismatch"),
])
def test_weights_that_cannot_be_used_are_named(tmp_path, name, write, message):
    path = tmp_path / name
    if write is not None:
        write(path)
    with pytest.raises(WeightsError, match=message):
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


def test_a_channels_last_tensor_is_named_as_such():
    with pytest.raises(InputError, match=r"\(375, 500, 3\), channels last.*permute\(2, 0, 1\)"):
        to_grey_tensor(torch.zeros(375, 500, 3))


@pytest.mark.parametrize("count", [1.5, -1, float("nan"), True, "500"])
def test_keypoint_counts_must_be_whole_numbers(count):
    with pytest.raises(OptionError, match="num_keypoints must be a whole number"):
        KeyNetDetector(TinyKeyNet(), num_keypoints=count)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_a_truncated_image_is_refused_not_half_grey(tmp_path, suffix):
    path = tmp_path / f"cut{suffix}"
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 255, (300, 400, 3), np.uint8))
    read_image(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=f"cut{suffix} is not (complete|a readable image).*truncated"):
        read_image(path)


def test_an_image_above_the_size_limit_is_refused_from_its_header(tmp_path):
    path = tmp_path / "big.png"
    cv2.imwrite(str(path), np.zeros((3000, 2000), np.uint8))
    with pytest.raises(InputError, match=r"big.png is 2000x3000 \(6 megapixels\).*downscale"):
        read_image(path, max_pixels=5_000_000)
    assert read_image(path).shape == (3000, 2000)
    assert MAX_IMAGE_PIXELS == 4096 * 4096
