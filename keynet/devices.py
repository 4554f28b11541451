"""Device choice: the one place where ``"auto"``, ``"cpu"``, ``"cuda"`` and ``"cuda:N"`` become a torch device."""

from __future__ import annotations

import torch

from .errors import DeviceError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The torch device ``device`` names: ``"auto"`` is CUDA when it is available, else the CPU.

    Raises:
        DeviceError: an unknown name, ``cuda`` on a machine without CUDA, or a GPU index it does not have.
    """
    if isinstance(device, torch.device):
        name = str(device)
    elif isinstance(device, str):
        name = device.strip().lower()
    else:
        raise DeviceError(f"device {device!r}: expected one of {', '.join(DEVICE_CHOICES)} or cuda:N")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(name)
    except (RuntimeError, ValueError):
        raise DeviceError(f"device {device!r}: expected one of {', '.join(DEVICE_CHOICES)} or cuda:N") from None
    if resolved.type == "cpu":
        return resolved
    if resolved.type != "cuda":
        raise DeviceError(f"device {device!r}: expected one of {', '.join(DEVICE_CHOICES)} or cuda:N")
    if not torch.cuda.is_available():
        raise DeviceError(f"device {device!r}: CUDA is not available here (torch {torch.__version__}); "
                          "use --device cpu or auto")
    if resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise DeviceError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return resolved
