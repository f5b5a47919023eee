"""A float ANN to convert, read from a `torch.save(model)` file without running its pickle code.

`snnc budget MODEL.pt` converts a trained float network (what `chip.quantize_model` takes) at every
grid point, so it needs the model itself, not a NIR file (NIR has no ReLU). `torch.load` with
`weights_only=True` rebuilds only allow-listed classes: the torch.nn modules the converter
accepts, so a file cannot execute arbitrary code; anything else is named in the error.
"""
from __future__ import annotations

import re
from pathlib import Path

from snnc.ir.errors import ModelFileError

SUFFIXES = (".pt", ".pth")


def ann_modules() -> list[type]:
    """The torch.nn classes a converted ANN file may hold (the layers quantize_model reads)."""
    import torch.nn as nn

    from .chip import Residual

    return [Residual, nn.Sequential, nn.Conv1d, nn.Conv2d, nn.Linear, nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.AvgPool1d, nn.AvgPool2d, nn.MaxPool1d,
            nn.MaxPool2d, nn.Flatten, nn.BatchNorm1d, nn.BatchNorm2d, nn.Identity, nn.Dropout]


def is_ann_file(path) -> bool:
    return Path(str(path)).suffix.lower() in SUFFIXES


def load_ann(path):
    """The nn.Module saved at `path` (torch.save(model)), in eval mode."""
    import torch
    import torch.nn as nn

    path = Path(path)
    if not path.exists():
        raise ModelFileError("file not found", where=str(path), hint="check the path")
    try:
        with torch.serialization.safe_globals(ann_modules()):
            model = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many kinds (UnpicklingError, RuntimeError, struct.error...)
        text = " ".join(str(exc).split())
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        what = (f"the file holds {found.group(1)}, which the converter does not take" if found
                else "cannot read the ANN file (torch.load, weights only)")
        raise ModelFileError(
            what, where=str(path), got=None if found else f"{type(exc).__name__}: {text[:200]}",
            hint="save the float model with torch.save(model) where model is an nn.Sequential of "
            + ", ".join(c.__name__ for c in ann_modules() if c is not nn.Sequential),
        ) from None
    if not isinstance(model, torch.nn.Module):
        raise ModelFileError("the file holds no nn.Module", where=str(path), got=type(model).__name__,
                             hint="save the model object (torch.save(model)), not its state_dict")
    return model.eval()
