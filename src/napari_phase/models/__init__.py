"""Shipped model weights (*.pt, each with a JSON model card), saving, and a per-(model, device) cache.

SIPRAD fits a fresh network to every image and ships no weights; the 4D-STEM CNN
(``airpi_default``) and FlowTIE (``flowtie_default``) ship theirs here. A model is named either
by a shipped name or by the path of a ``.pt`` file with its ``.json`` card beside it (a user's
fine-tuned model).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Callable


def _folder():
    return resources.files(__name__)


def list_models() -> list[str]:
    """Names of the shipped models (a <name>.pt with a <name>.json card)."""
    names = []
    for entry in _folder().iterdir():
        if entry.name.endswith(".pt") and _folder().joinpath(entry.name[:-3] + ".json").is_file():
            names.append(entry.name[:-3])
    return sorted(names)


def _is_path(name: str) -> bool:
    return str(name).endswith(".pt") or "/" in str(name) or "\\" in str(name)


def _card_file(name: str):
    if _is_path(name):
        return Path(name).with_suffix(".json")
    return _folder().joinpath(f"{name}.json")


def model_card(name: str) -> dict:
    """The JSON card of a shipped model name or of a ``.pt`` path (its ``.json`` beside it)."""
    card = _card_file(name)
    if not card.is_file():
        if _is_path(name):
            raise KeyError(f"no model card {card} beside the weights {name}")
        raise KeyError(f"no model named {name!r}; shipped: {', '.join(list_models()) or 'none'}")
    return json.loads(card.read_text())


@lru_cache(maxsize=8)
def load_state_dict(name: str, device: str = "cpu"):
    """The weights of a shipped model (or a ``.pt`` path), loaded once per (name, device), float32."""
    import torch

    model_card(name)  # clear error for an unknown name
    if _is_path(name):
        state = _load_weights(Path(name), device)
    else:
        with resources.as_file(_folder().joinpath(f"{name}.pt")) as path:
            state = _load_weights(path, device)
    return {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}


def _load_weights(path: Path, device: str) -> dict:
    """``torch.load(weights_only=True)`` of a state dict; anything else is one InputError line."""
    import pickle

    import torch

    from ..jobs import InputError

    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
        first = " ".join(str(exc).split())[:120]
        raise InputError(f"model {path.name} is not a weights file napari-phase can load safely: {first}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"model {path.name} is not a weights file (a state dict of tensors)")
    return state


_MODELS: dict[tuple[str, str], Any] = {}


def load_model(name: str, build: Callable[[dict], Any], device="cpu"):
    """A ready model: ``build(card)`` makes the architecture, the weights are loaded; eval mode.

    Cached per (name, device): a panel re-running on the same model does not reload it.
    """
    key = (str(name), str(device))
    if key not in _MODELS:
        card = model_card(name)
        model = build(card)
        model.load_state_dict(load_state_dict(str(name), str(device)))
        model.to(device).eval()
        _MODELS[key] = model
    return _MODELS[key]


def git_commit() -> str:
    """The current commit of the source tree (for model cards), or '' outside a checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=5, cwd=Path(__file__).parent)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def save_model(model, card: dict, folder, name: str, dtype=None) -> Path:
    """Write ``<folder>/<name>.pt`` (floating weights as ``dtype``, default float16) and its card.

    The card gains ``file``, ``size_bytes``, ``sha256``, ``parameters``, ``dtype`` and ``git_commit``,
    and ``command_chain`` (every invocation that trained these weights, with steps and wall time per
    stage) when the model came out of :func:`napari_phase.training.train_job`.
    Returns the path of the weights.
    """
    import torch

    dtype = torch.float16 if dtype is None else dtype
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: (v.detach().to("cpu", dtype) if v.is_floating_point() else v.detach().cpu())
             for k, v in model.state_dict().items()}
    path = folder / f"{name}.pt"
    torch.save(state, path)
    data = path.read_bytes()
    card = dict(card)
    chain = getattr(model, "training_chain", None)
    if chain and "command_chain" not in card:
        card["command_chain"] = chain
    card.update(
        name=name,
        file=path.name,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        parameters=int(sum(p.numel() for p in model.parameters())),
        dtype=str(dtype).replace("torch.", ""),
        git_commit=card.get("git_commit") or git_commit(),
    )
    path.with_suffix(".json").write_text(json.dumps(card, indent=2, default=str) + "\n")
    for key in [k for k in _MODELS if k[0] in (name, str(path))]:
        del _MODELS[key]
    load_state_dict.cache_clear()
    return path
