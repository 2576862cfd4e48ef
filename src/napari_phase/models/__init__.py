"""Shipped model weights (*.pt, each with a JSON model card) and a per-(name, device) cache.

SIPRAD fits a fresh network to every image, so it ships no weights; the 4D-STEM CNN and FlowTIE
will add theirs here.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources


def _folder():
    return resources.files(__name__)


def list_models() -> list[str]:
    """Names of the shipped models (a <name>.pt with a <name>.json card)."""
    names = []
    for entry in _folder().iterdir():
        if entry.name.endswith(".pt") and _folder().joinpath(entry.name[:-3] + ".json").is_file():
            names.append(entry.name[:-3])
    return sorted(names)


def model_card(name: str) -> dict:
    card = _folder().joinpath(f"{name}.json")
    if not card.is_file():
        raise KeyError(f"no model named {name!r}; shipped: {', '.join(list_models()) or 'none'}")
    return json.loads(card.read_text())


@lru_cache(maxsize=8)
def load_state_dict(name: str, device: str = "cpu"):
    """The weights of a shipped model, loaded once per (name, device)."""
    import torch

    model_card(name)  # clear error for an unknown name
    with resources.as_file(_folder().joinpath(f"{name}.pt")) as path:
        return torch.load(path, map_location=device, weights_only=True)
