"""Training runs: the command line, bad input, NaN losses, divergence, damaged checkpoints, SIGKILL then --resume,
torchrun against one process."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch

import trainer.train as train
from keynet.errors import OptionError, WeightsError
from keynet.inference import native_bf16
from keynet.weights import load_model, read_model_card
from trainer.checkpoints import export_run
from trainer.options import MIN_CROP

from .conftest import DATA, REPO, require_shared

TINY = ["--train-pairs", "32", "--val-pairs", "8", "--batch-size", "8", "--crop", "64", "--workers", "0",
        "--threads", "1", "--device", "cpu"]


def train_cmd(images, out, *extra):
    return [sys.executable, "-m", "trainer", "--images", str(images), "--out", str(out), *TINY, *extra]


def run(cmd, **kw):
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, **kw)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Three textured photographs (one smaller than a crop) and a corrupt file."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i, size in enumerate([(200, 260), (150, 150), (40, 50)]):
        blobs = rng.uniform(0, 255, (size[0] // 5, size[1] // 5, 3)).astype(np.uint8)
        cv2.imwrite(str(folder / f"p{i}.png"), cv2.resize(blobs, size[::-1], interpolation=cv2.INTER_CUBIC))
    (folder / "broken.jpg").write_bytes(b"not an image")
    return folder


def final_weights(out):
    return torch.load(out / "last.pt", weights_only=True)["model"]


def test_a_run_writes_checkpoints_log_curves_and_weights_with_a_model_card(photos, tmp_path):
    result = run(train_cmd(photos, tmp_path / "run", "--epochs", "2", "--tiny", "--bf16"))
    assert result.returncode == 0, result.stderr
    assert "skipped 1 unreadable image file(s) of 4: broken.jpg" in result.stderr
    out = tmp_path / "run"
    assert {p.name for p in out.iterdir()} == {"last.pt", "best.pt", "log.csv", "curves.png", "tiny_keynet.pt"}
    assert out.joinpath("log.csv").read_text().splitlines()[0].startswith("epoch,train_loss,val_repeatability")
    assert len(out.joinpath("log.csv").read_text().splitlines()) == 4  # header, initial validation, 2 epochs
    card = read_model_card(out / "tiny_keynet.pt")
    assert card["epochs"] == 2 and card["data"] == str(photos) and "--tiny" in card["command"]
    assert "process" in card["machine"] and card["config"]["bf16"] is native_bf16(torch.device("cpu"))
    assert type(load_model(out / "tiny_keynet.pt")).__name__ == "TinyKeyNet"
    umask = os.umask(0)
    os.umask(umask)
    assert {stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == {0o666 & ~umask}  # as the umask says


def test_bf16_is_chosen_only_where_it_is_native_and_elsewhere_warns_and_trains_in_fp32(photos, tmp_path, monkeypatch,
                                                                                      capsys):
    conf = {"train_pairs": 8, "val_pairs": 4, "batch_size": 8, "crop": 64, "workers": 0, "epochs": 1, "bf16": True}
    monkeypatch.setattr(train, "native_bf16", lambda device: False)
    run_ = train.Trainer([photos], tmp_path / "emulated", "cpu", **conf)
    assert run_.conf["bf16"] is False
    assert "--bf16 ignored" in capsys.readouterr().err
    monkeypatch.setattr(train, "native_bf16", lambda device: True)
    assert train.Trainer([photos], tmp_path / "native", "cpu", **conf).conf["bf16"] is True
    assert "--bf16 ignored" not in capsys.readouterr().err


def test_export_writes_the_best_weights_of_a_stopped_run(photos, tmp_path):
    out = tmp_path / "run"
    assert run(train_cmd(photos, out, "--epochs", "1", "--tiny")).returncode == 0
    (out / "tiny_keynet.pt").unlink()
    result = run(train_cmd(photos, out, "--tiny", "--export"))
    assert result.returncode == 0, result.stderr
    card = read_model_card(out / "tiny_keynet.pt")
    assert card["epochs"] == 1 and "--export" not in card["command"] and "--tiny" in card["command"]
    best = torch.load(out / "best.pt", weights_only=True)["model"]
    exported = load_model(out / "tiny_keynet.pt").state_dict()
    assert all(torch.equal(best[k], exported[k]) for k in exported)
    missing = run(train_cmd(photos, tmp_path / "empty", "--export"))
    assert missing.returncode == 2 and "holds no checkpoint" in missing.stderr


def test_bad_input_is_refused_with_clear_messages(photos, tmp_path):
    (tmp_path / "empty").mkdir()
    result = run(train_cmd(tmp_path / "empty", tmp_path / "a"))
    assert result.returncode == 2 and "no photographs" in result.stderr
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "something").write_text("x")
    result = run(train_cmd(photos, tmp_path / "out", "--epochs", "1"))
    assert result.returncode == 2 and "--resume" in result.stderr and "--overwrite" in result.stderr
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"something"}


def test_a_nan_loss_skips_the_step_and_repeated_nans_stop_the_run(photos, tmp_path, monkeypatch):
    calls = []
    real = train.msip_loss

    def sometimes_nan(*args, **kw):
        calls.append(1)
        return real(*args, **kw) * (float("nan") if len(calls) % 2 else 1.0)

    conf = {"train_pairs": 32, "val_pairs": 4, "batch_size": 8, "crop": 64, "workers": 0, "epochs": 1}
    monkeypatch.setattr(train, "msip_loss", sometimes_nan)
    run_ = train.Trainer([photos], tmp_path / "a", "cpu", **conf)
    before = {k: v.clone() for k, v in run_.model.state_dict().items()}
    run_.fit()
    assert run_.history[-1]["skipped_steps"] == 2 and isinstance(run_.history[-1]["train_loss"], float)
    assert any(not torch.equal(before[k], v) for k, v in run_.model.state_dict().items())

    monkeypatch.setattr(train, "msip_loss", lambda *a, **k: real(*a, **k) * float("nan"))
    run_ = train.Trainer([photos], tmp_path / "b", "cpu", **{**conf, "train_pairs": 64, "max_nan_steps": 3})
    before = {k: v.clone() for k, v in run_.model.state_dict().items()}
    with pytest.raises(train.NonFiniteLoss, match="not finite 3 steps in a row"):
        run_.fit()
    for k, v in run_.model.state_dict().items():  # no update ever came from a NaN
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)


def refused(argv, capsys):
    """The trainer's command line on ``argv``: (exit code, stderr); a bad value gives one line, no traceback."""
    code = train.main(argv)
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    return code, err


def cli_args(images, out, *extra):
    return train_cmd(images, out, *extra)[3:]


def test_a_crop_smaller_than_the_network_needs_is_refused_naming_the_option(photos, tmp_path, capsys):
    result = run(train_cmd(photos, tmp_path / "zero", "--crop", "0"))  # the reported case, through the real CLI
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"--crop must be a whole number of pixels of at least {MIN_CROP}" in result.stderr and "got 0" in result.stderr
    code, err = refused(cli_args(photos, tmp_path / "small", "--crop", str(MIN_CROP - 1)), capsys)
    assert code == 2 and f"got {MIN_CROP - 1}" in err
    assert not (tmp_path / "zero").exists() and not (tmp_path / "small").exists()
    with pytest.raises(OptionError, match="--crop"):
        train.Trainer([photos], tmp_path / "api", "cpu", crop=8)


def test_a_negative_thread_count_is_refused_naming_the_option(photos, tmp_path, capsys):
    code, err = refused(cli_args(photos, tmp_path / "run", "--threads", "-3"), capsys)
    assert code == 2 and "--threads must be a whole number of at least 0" in err and "got -3" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("lr", ["0", "-0.001", "1e30", "2", "nan", "inf"])
def test_a_non_positive_or_absurd_learning_rate_is_refused_before_training(photos, tmp_path, capsys, lr):
    code, err = refused(cli_args(photos, tmp_path / "run", "--lr", lr), capsys)
    assert code == 2 and err.startswith("error: --lr must be") and f"got {float(lr)!r}" in err
    assert not (tmp_path / "run").exists()  # nothing trained, nothing exported


def test_an_out_that_is_a_file_is_refused_and_left_as_it_is(photos, tmp_path, capsys):
    taken = tmp_path / "notes.txt"
    taken.write_text("keep me")
    for extra in ((), ("--resume",), ("--overwrite",)):
        code, err = refused(cli_args(photos, taken, *extra), capsys)
        assert code == 2 and f"--out {taken} is a file" in err
    assert taken.read_text() == "keep me"


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "foreign"])
def test_a_damaged_last_checkpoint_is_refused_on_resume_naming_it_and_nothing_is_overwritten(photos, tmp_path,
                                                                                               capsys, damage):
    out = tmp_path / "run"
    conf = {"train_pairs": 8, "val_pairs": 2, "batch_size": 8, "crop": 64, "workers": 0, "threads": 1}
    train.Trainer([photos], out, "cpu", **conf)._save(improved=True)  # a real epoch-0 checkpoint
    last = out / "last.pt"
    data = last.read_bytes()
    if damage == "foreign":  # a readable file that is no checkpoint of ours
        torch.save({"weights": torch.ones(3)}, last)
    else:
        last.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"not a checkpoint", "empty": b""}[damage])
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    code, err = refused(cli_args(photos, out, "--train-pairs", "8", "--val-pairs", "2", "--resume"), capsys)
    assert code == 2 and f"checkpoint {last}" in err
    assert ("not a checkpoint of this trainer" if damage == "foreign" else "truncated or corrupt") in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_diverging_run_stops_with_a_clear_message_and_exports_no_exploded_weights(photos, tmp_path):
    conf = {"train_pairs": 16, "val_pairs": 2, "batch_size": 8, "crop": 64, "workers": 0, "threads": 1, "epochs": 3}
    out = tmp_path / "run"
    run_ = train.Trainer([photos], out, "cpu", **conf)
    steps = []

    def explode(optimizer, args, kwargs):  # two good steps per epoch; in epoch 2 a step sends weights to 1e30
        steps.append(1)
        if len(steps) == 3:
            with torch.no_grad():
                run_.model.last_conv[0].weight.mul_(1e30)

    run_.optimizer.register_step_post_hook(explode)
    with pytest.raises(train.DivergedWeights, match="diverged in epoch 2: last_conv.0.weight reaches") as error:
        run_.fit()
    assert f"last good checkpoint: {out / 'last.pt'}" in str(error.value) and "--lr" in str(error.value)
    assert not (out / "tiny_keynet.pt").exists() and not (out / "keynet.pt").exists()
    saved = torch.load(out / "last.pt", weights_only=True)
    assert saved["epoch"] == 1 and all(torch.isfinite(v).all() for v in saved["model"].values())

    state = torch.load(out / "best.pt", weights_only=True)  # a checkpoint whose weights are not finite
    state["model"]["last_conv.0.weight"][0, 0, 0, 0] = float("nan")
    torch.save(state, out / "best.pt")
    with pytest.raises(WeightsError, match="best.pt is not exported: last_conv.0.weight holds non-finite"):
        export_run(out)
    assert not (out / "keynet.pt").exists()


def test_sigkill_then_resume_loses_at_most_one_epoch_and_ends_as_an_uninterrupted_run(photos, tmp_path):
    epochs = ["--epochs", "5"]
    out = tmp_path / "killed"
    proc = subprocess.Popen(train_cmd(photos, out, *epochs), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline, seen = time.time() + 120, 0
    while proc.poll() is None and time.time() < deadline:
        if (out / "last.pt").exists():
            seen = torch.load(out / "last.pt", weights_only=True)["epoch"]  # never half-written
            if seen >= 2:
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    for ckpt in out.glob("*.pt"):
        torch.load(ckpt, weights_only=True)
    saved = torch.load(out / "last.pt", weights_only=True)["epoch"]
    assert saved >= seen >= 2

    resumed = run(train_cmd(photos, out, *epochs, "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    assert f"epoch {saved + 1}/5" in resumed.stderr and f"epoch {saved}/5" not in resumed.stderr
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["epoch"] == 5 and [r["epoch"] for r in state["history"]] == [0, 1, 2, 3, 4, 5]
    assert not list(out.glob(".*tmp*"))
    other_data = run(train_cmd(photos, out, *epochs, "--resume", "--seed", "1"))
    assert other_data.returncode == 2 and "changed: seed 0 -> 1" in other_data.stderr

    straight = run(train_cmd(photos, tmp_path / "straight", *epochs))
    assert straight.returncode == 0, straight.stderr
    for key, value in final_weights(tmp_path / "straight").items():
        torch.testing.assert_close(state["model"][key], value, rtol=1e-5, atol=1e-6, msg=key)


@pytest.mark.slow
def test_torchrun_with_two_processes_ends_with_the_weights_of_one(photos, tmp_path):
    one = run(train_cmd(photos, tmp_path / "one", "--epochs", "1"))
    assert one.returncode == 0, one.stderr
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = train_cmd(photos, tmp_path / "two", "--epochs", "1")
    two = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *cmd[1:]],
              env=env)
    assert two.returncode == 0, two.stderr
    torch.manual_seed(0)  # the He initialisation both runs started from
    initial = train.build_model("keynet")
    train.he_initialise(initial)
    a, b = final_weights(tmp_path / "one"), final_weights(tmp_path / "two")
    for key in a:
        torch.testing.assert_close(a[key].float(), b[key].float(), rtol=1e-4, atol=1e-5, msg=key)
    assert not torch.allclose(a["last_conv.0.weight"], initial.state_dict()["last_conv.0.weight"])
    image = torch.rand(1, 1, 96, 96, generator=torch.Generator().manual_seed(1))
    one_model, two_model = train.build_model("keynet").eval(), train.build_model("keynet").eval()
    one_model.load_state_dict(a)
    two_model.load_state_dict(b)
    with torch.no_grad():
        torch.testing.assert_close(one_model(image), two_model(image), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_a_short_cpu_training_on_real_photographs_lowers_the_loss_and_raises_repeatability(tmp_path):
    folders = [require_shared(DATA / "train_images"), require_shared(DATA / "train_photos")]
    out = tmp_path / "real"
    result = run([sys.executable, "-m", "trainer", *[a for f in folders for a in ("--images", str(f))], "--out",
                  str(out), "--train-pairs", "320", "--val-pairs", "48", "--crop", "128", "--epochs", "3",
                  "--bf16", "--workers", "2"])
    assert result.returncode == 0, result.stderr
    history = torch.load(out / "last.pt", weights_only=True)["history"]
    losses = [r["train_loss"] for r in history[1:]]
    repeatability = [r["val_repeatability"] for r in history]
    assert losses[-1] < losses[0], losses
    assert max(repeatability[1:]) > repeatability[0] + 10, repeatability  # epoch 0: the He initialisation
