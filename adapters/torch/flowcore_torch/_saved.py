"""What a ``torch.save`` file holds, found without running its pickle (``weights_only`` at most).

A user often brings ``torch.save(model.state_dict(), "ae.pt")``: weights without the
architecture, which no exporter can turn into a graph. ``torch.jit.load`` then fails with a
"may be corrupted" message that points the wrong way. :func:`describe_pickle` recognises such
files (a ``torch.save`` zip archive with ``data.pkl`` and no TorchScript code, or the legacy
pickle format) and says what they are and what to save instead.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

__all__ = ["describe_pickle", "SAVE_INSTEAD"]

SAVE_INSTEAD = ('save the model itself instead: torch.export.save(torch.export.export(model, (x,)), "ae.pt2") '
                '(ExportedProgram, .pt2) or torch.jit.save(torch.jit.script(model), "ae.pt") '
                "(TorchScript, .pt/.ts/.jit/.pth)")
# torch.save's legacy (non-zip) format starts with this pickled magic number
_LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"


def _is_torch_pickle(path: Path) -> bool:
    """A ``torch.save`` archive (zip with ``data.pkl``, no TorchScript code) or legacy pickle."""
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except (OSError, zipfile.BadZipFile):
            return False
        parts = [n.split("/", 1)[-1] for n in names]
        script = any(p == "constants.pkl" or p.startswith("code/") for p in parts)
        return "data.pkl" in parts and not script
    with open(path, "rb") as fh:
        return fh.read(len(_LEGACY_MAGIC)) == _LEGACY_MAGIC


def _tensor_dict(obj: object) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def describe_pickle(path: str | Path) -> str | None:
    """One line saying what a ``torch.save`` pickle holds and what to save instead, or None.

    The file is opened with ``torch.load(weights_only=True)`` only (tensors, dicts, lists and
    numbers; no class is imported, no code runs); a pickle that needs more is reported as
    such, never loaded.

    Parameters
    ----------
    path : str or Path
        The file ``torch.jit.load`` / ``torch.export.load`` could not read.

    Returns
    -------
    str or None
        ``"<path> is a PyTorch state dict …"`` (or a checkpoint dict, or a pickled object);
        None when the file is not a ``torch.save`` pickle at all.
    """
    path = Path(path)
    if not _is_torch_pickle(path):
        return None
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:  # weights_only refuses anything but plain containers and tensors
        return (f"{path} is a pickled PyTorch object (torch.save(model)?), which flowcore does not unpickle "
                f"(unpickling runs arbitrary code); {SAVE_INSTEAD}")
    if _tensor_dict(obj):
        return (f"{path} is a PyTorch state dict (torch.save(model.state_dict()): {len(obj)} weight tensors, no "
                f"architecture), so there is no model to export; {SAVE_INSTEAD}")
    if isinstance(obj, Mapping):
        inner = [str(k) for k, v in obj.items() if _tensor_dict(v)]
        if inner:
            return (f"{path} is a PyTorch training checkpoint (a dict holding the state dict(s) {inner[:4]}: "
                    f"weights only, no architecture), so there is no model to export; {SAVE_INSTEAD}")
    return f"{path} is a torch.save file holding a {type(obj).__name__}, not a model; {SAVE_INSTEAD}"
