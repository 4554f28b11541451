"""Reading HPatches- and Oxford-layout sequences, and the benchmark's handling of bad data."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from keynet.datasets import find_sequences, read_homography
from keynet.errors import InputError

from .conftest import DATA, require_shared


def make_sequence(folder, layout="hpatches", n=3, size=(120, 160)):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur((rng.random(size) * 255).astype(np.uint8), (0, 0), 2)
    for k in range(1, n + 1):
        shift = np.array([[1, 0, 2.0 * (k - 1)], [0, 1, 0], [0, 0, 1]])
        image = cv2.warpPerspective(base, shift, size[::-1])
        cv2.imwrite(str(folder / (f"{k}.png" if layout == "hpatches" else f"img{k}.pgm")), image)
        if k > 1:
            name = f"H_1_{k}" if layout == "hpatches" else f"H1to{k}p"
            np.savetxt(folder / name, shift)
    return folder


def test_both_layouts_are_read_with_their_kinds(tmp_path):
    make_sequence(tmp_path / "v_demo")
    make_sequence(tmp_path / "i_demo")
    make_sequence(tmp_path / "leuven", layout="oxford")
    seqs = {s.name: s for s in find_sequences(tmp_path)}
    assert {n: s.kind for n, s in seqs.items()} == {"v_demo": "viewpoint", "i_demo": "illumination",
                                                     "leuven": "illumination"}
    assert len(seqs["leuven"].images) == 3 and seqs["leuven"].homographies[1][0, 2] == 4.0
    assert seqs["v_demo"].load(0).shape == (120, 160)


def test_real_sets_read_including_pgm_and_ppm_comments():
    oxford = {s.name: s for s in find_sequences(require_shared(DATA / "oxford"))}
    assert oxford["boat"].load(0).ndim == 2  # PGM with a comment line
    assert oxford["bikes"].load(1).shape == (700, 1000, 3)  # img2.ppm has an XV comment in its header
    hp = find_sequences(require_shared(DATA / "hpatches"))
    assert [s.kind for s in hp] == ["viewpoint", "viewpoint"] and all(len(s.images) == 6 for s in hp)


@pytest.mark.parametrize(("layout", "missing"), [("hpatches", "H_1_2"), ("hpatches", "H_1_3"), ("oxford", "H1to2p")])
def test_a_missing_homography_is_named(tmp_path, layout, missing):
    folder = make_sequence(tmp_path / "seq", layout=layout)
    (folder / missing).unlink()
    with pytest.raises(InputError, match=f"{missing} is missing"):
        find_sequences(tmp_path)


def test_a_gap_in_the_images_is_named(tmp_path):
    folder = make_sequence(tmp_path / "v_x", n=4)
    (folder / "3.png").unlink()
    with pytest.raises(InputError, match="no image 3 but has later images"):
        find_sequences(tmp_path)


def test_a_bad_homography_file_is_named(tmp_path):
    path = tmp_path / "H"
    path.write_text("1 0 0\n0 1 zero\n")
    with pytest.raises(InputError, match="H is not a homography"):
        read_homography(path)


def test_an_unknown_layout_is_reported(tmp_path):
    (tmp_path / "photos").mkdir()
    shutil.copy(__file__, tmp_path / "photos" / "a.txt")
    with pytest.raises(InputError, match="no sequence in a known layout"):
        find_sequences(tmp_path)


def test_a_corrupt_image_is_named(tmp_path):
    folder = make_sequence(tmp_path / "v_x")
    (folder / "2.png").write_bytes(b"not a png")
    seq = find_sequences(tmp_path)[0]
    with pytest.raises(InputError, match="2.png is not a readable image"):
        seq.load(1)


def test_pgm_and_ppm_with_comment_lines_are_read(tmp_path):
    folder = tmp_path / "boat"
    folder.mkdir()
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, (40, 48), dtype=np.uint8)
    colour = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    (folder / "img1.pgm").write_bytes(b"P5\n# CREATOR: XV Version 3.10a\n48 40\n255\n" + grey.tobytes())
    (folder / "img2.ppm").write_bytes(b"P6\n# a comment\n48 40\n# another\n255\n" + colour.tobytes())
    np.savetxt(folder / "H1to2p", np.eye(3))
    seq = find_sequences(folder)[0]
    assert seq.kind == "viewpoint" and len(seq.images) == 2
    assert np.array_equal(seq.load(0), grey)
    assert np.array_equal(seq.load(1), colour[..., ::-1])  # OpenCV order: BGR

