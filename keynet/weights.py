"""Loading and saving Key.Net weights, always with ``torch.load(..., weights_only=True)``.

Two formats load:

- the authors' published checkpoint: a dict whose ``state_dict`` uses Key.Net's module names
  (``feature_extractor.lb_block.conv{0,1,2}.{0,1}.*``, ``last_conv.0.*``);
- ours: ``{"format": "keynet-live-weights", "version": 1, "architecture": "keynet" | "tiny_keynet",
  "config": {...}, "state_dict": {...}, "model_card": {...}}``, where the model card says what the weights were
  trained on, for how long, when and with which command.

Every failure, a missing file included, raises ``WeightsError`` (a ``ValueError``) naming the file and what was
wrong.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any

import torch

from .errors import InputError, WeightsError
from .files import atomic_torch_save
from .model import KeyNet, architecture_name, build_model

FORMAT = "keynet-live-weights"
VERSION = 1
#: How torch's weights-only unpickler names what would import or call code: a global, or the opcodes that load one
#: (GLOBAL, STACK_GLOBAL, REDUCE, INST, OBJ, NEWOBJ, BUILD).
_CODE_OPCODES = ("Unsupported global", "GLOBAL", "Unsupported operand 99", "Unsupported operand 149",
                 "Unsupported operand 82", "Unsupported operand 105", "Unsupported operand 111",
                 "Unsupported operand 129", "Unsupported operand 98")
ASSETS = Path(__file__).resolve().parent.parent / "assets" / "weights"


def read_weights_file(path: str | Path, what: str = "weights file") -> Any:
    """What a PyTorch file holds, read safely (tensors, numbers, strings, lists and dicts only), on the CPU.

    Raises:
        WeightsError: no such file (named as ``what``), not a PyTorch file, or one that holds objects other than
            plain data (code).
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{what} {path} " + ("is a folder, not a file" if path.is_dir() else "does not exist"))
    with open(path, "rb") as f:
        magic = f.read(4)
    if not (magic.startswith(b"PK\x03\x04") or magic[:1] == b"\x80"):
        raise WeightsError(f"{what} {path} is not a PyTorch file (neither a zip archive nor a pickle)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if any(code in str(exc) for code in _CODE_OPCODES):
            raise WeightsError(
                f"{path} holds Python objects other than tensors and plain data (a pickle that could run code); "
                "refused: weights are loaded with weights_only=True"
            ) from None
        raise WeightsError(f"{what} {path} is not a PyTorch checkpoint (damaged or another format)") from None
    except Exception as exc:  # torch.load raises many types on garbage input (IndexError, RuntimeError, ...)
        raise WeightsError(f"{path} is not a PyTorch checkpoint ({type(exc).__name__}: {exc})") from None
    return obj


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A Key.Net checkpoint dict (``read_weights_file``'s safety) with a ``state_dict`` entry.

    Raises:
        WeightsError: no such file, not a PyTorch checkpoint, code in it, or no ``state_dict``.
    """
    obj = read_weights_file(path)
    if not isinstance(obj, dict) or not isinstance(obj.get("state_dict"), dict):
        raise WeightsError(f"{path} is not a Key.Net checkpoint: expected a dict with a 'state_dict' entry")
    return obj


def _is_ours(ckpt: dict[str, Any]) -> bool:
    return ckpt.get("format") == FORMAT


def load_model(path: str | Path, architecture: str | None = None) -> KeyNet:
    """Build the model a weights file describes and load its weights (eval mode, CPU).

    Args:
        path: our weights file or the authors' checkpoint.
        architecture: ``"keynet"`` or ``"tiny_keynet"``; read from the file for ours, ``"keynet"`` for the
            authors'. When given, it must match the file.
    """
    ckpt = load_checkpoint(path)
    if _is_ours(ckpt):
        if ckpt.get("version") != VERSION:
            raise WeightsError(f"{path} is weights format version {ckpt.get('version')}; this version reads {VERSION}")
        arch, conf = ckpt.get("architecture"), ckpt.get("config", {})
        if architecture is not None and architecture != arch:
            raise WeightsError(f"{path} holds {arch} weights, not {architecture}")
    else:
        arch, conf = architecture or "keynet", {}
    try:
        model = build_model(arch, **conf)
    except ValueError as exc:
        raise WeightsError(f"{path} describes a model that cannot be built: {exc}") from None
    state = ckpt["state_dict"]
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: every state_dict entry must be a tensor")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())
        raise WeightsError(f"{path} does not fit the {arch} architecture: {detail}") from None
    broken = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if broken:
        raise WeightsError(f"{path} holds NaN or infinite weights (in {', '.join(broken[:3])}"
                           + (", ..." if len(broken) > 3 else "") + "): the training that made them diverged")
    return model.eval()


def read_model_card(path: str | Path) -> dict[str, Any]:
    """The model card of one of our weights files ({} for the authors' checkpoint)."""
    ckpt = load_checkpoint(path)
    return dict(ckpt.get("model_card", {})) if _is_ours(ckpt) else {}


def save_weights(model: KeyNet, path: str | Path, model_card: dict[str, Any]) -> None:
    """Write ``model`` in our format, with its architecture config and ``model_card``, atomically."""
    required = {"data", "epochs", "date"}
    missing = required - set(model_card)
    if missing:
        raise InputError(f"model_card lacks {sorted(missing)}; it must say at least {sorted(required)}")
    ckpt = {
        "format": FORMAT,
        "version": VERSION,
        "architecture": architecture_name(model),
        "config": dict(model.conf),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "model_card": dict(model_card),
    }
    atomic_torch_save(ckpt, path)


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 of a model's state dict (names, dtypes, shapes and values): which weights produced a result."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return digest.hexdigest()


def default_weights(architecture: str = "keynet") -> Path | None:
    """The shipped weights file for ``architecture`` (``assets/weights/<architecture>.pt``), or None if absent."""
    path = ASSETS / f"{architecture}.pt"
    return path if path.is_file() else None


def resolve_weights(path: str | Path | None, architecture: str = "keynet") -> Path:
    """The weights file to use: ``path`` if given, else the shipped one for ``architecture``.

    Raises:
        WeightsError: no ``path`` and no shipped weights in this checkout.
    """
    if path is not None:
        return Path(path)
    shipped = default_weights(architecture)
    if shipped is None:
        raise WeightsError(f"no --weights given and no shipped weights (assets/weights/{architecture}.pt) in this "
                           "checkout; pass --weights FILE, for example the authors' keynet_pytorch.pth")
    return shipped
