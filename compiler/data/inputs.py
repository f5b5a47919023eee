"""User input arrays: an .npy [T, *shape] / [batch, T, *shape], or an .npz with one array per input
port. One reader for every command and the sweep."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from snnc.ir.errors import ModelFileError, ShapeError


def _one_line(value) -> str:
    return " ".join(str(value).split())


def load_input_array(path: str | Path) -> np.ndarray | dict[str, np.ndarray]:
    """Read IN.npy as a numeric array, or IN.npz: one array, or one array per input port by name."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError("input file not found", where=str(path), hint="pass a .npy file saved with numpy.save")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - numpy raises ValueError/OSError/EOFError/UnpicklingError
        raise ModelFileError(
            f"cannot read the input array ({type(exc).__name__}: {_one_line(exc)})",
            where=str(path),
            hint="save inputs with numpy.save(path, array)",
        ) from exc
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            arrays = {key: data[key] for key in data.keys()}
        if not arrays:
            raise ModelFileError("the .npz input holds no array", where=str(path), hint="numpy.savez(path, input=array)")
        for key, arr in arrays.items():
            if arr.dtype.kind not in "biuf":
                raise ShapeError("input must be numeric", where=f"{path}[{key}]", got=str(arr.dtype))
        # one unnamed array is the single input; several are matched to the model's ports by name
        return next(iter(arrays.values())) if len(arrays) == 1 else arrays
    if data.dtype.kind not in "biuf":
        raise ShapeError("input must be numeric", where=str(path), got=str(data.dtype))
    return data
