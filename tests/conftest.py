"""Shared test fixtures: paths into ../shared (skipped with a reason when it is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from keynet.runtime import prefer_sleeping_threads

# The entry points' thread policy (main.py sets it before torch loads): OpenMP threads sleep while they wait, so
# the window's tests see the UI thread scheduled as users do, not starved by spinning threads on both cores.
prefer_sleeping_threads()

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
AUTHORS_WEIGHTS = SHARED / "reference" / "keynet_official" / "keynet_pytorch.pth"
TEST_IMAGE = SHARED / "reference" / "keynet_official" / "test_im.ppm"
DATA = SHARED / "data"


def require_shared(path: Path) -> Path:
    """Skip the calling test unless ``path`` (a file or folder under ../shared) exists."""
    if not path.exists():
        pytest.skip(f"needs {path} (the read-only ../shared folder beside the repository); it is absent here")
    return path


@pytest.fixture
def authors_weights() -> Path:
    return require_shared(AUTHORS_WEIGHTS)


@pytest.fixture
def test_image() -> Path:
    return require_shared(TEST_IMAGE)


@pytest.fixture
def data_dir() -> Path:
    return require_shared(DATA)


@pytest.fixture(autouse=True)
def autograd_enabled():
    """Each test starts with autograd on, whatever a benchmark entry point called earlier in the process set."""
    import torch

    torch.set_grad_enabled(True)
    yield
