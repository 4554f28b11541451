"""The bundled demo's cache: rendered once per version; earlier versions' renders removed; progress reported."""

from __future__ import annotations

import cv2

from keynet import demo


def test_the_demo_renders_once_and_removes_older_versions(tmp_path, monkeypatch):
    monkeypatch.setenv("KEYNET_CACHE", str(tmp_path))
    (tmp_path / "demo-v1" / "frames").mkdir(parents=True)
    (tmp_path / "bench").mkdir()  # not a demo render: kept
    render = demo.render_sequence
    renders = []

    def short_render(folder, target, progress=None):
        renders.append(folder)
        return render(folder, target, num_frames=3, progress=progress)

    monkeypatch.setattr(demo, "render_sequence", short_render)
    reported = []
    seq = demo.demo_sequence(progress=lambda done, total: reported.append((done, total)))
    assert reported == [(1, 3), (2, 3), (3, 3)]
    assert seq.folder == tmp_path / f"demo-v{demo.VERSION}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench", f"demo-v{demo.VERSION}"]
    frames = sorted(seq.frames.iterdir())
    assert [p.suffix for p in frames] == [demo.FRAME_SUFFIX] * 3
    assert cv2.imread(str(frames[0])).shape == (480, 640, 3)
    demo.demo_sequence(progress=lambda done, total: reported.append((done, total)))
    assert len(renders) == 1 and len(reported) == 3  # cached: nothing rendered, nothing reported
