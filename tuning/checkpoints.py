"""Every checkpoint and model file, saved and loaded in one place: one format, atomic, no code.

A checkpoint is a file users send each other, so loading one must never run code.
``torch.load(weights_only=False)`` unpickles anything, and a crafted file can call
``os.system``. Everything written here holds tensors and plain values only (dicts,
lists, tuples, str, int, float, bool, None; RNG states and the grad scaler included)
and is read back with ``torch.load(weights_only=True)``; a file that needs more is
refused with :class:`UnsafeCheckpointError` before any of it runs.

One format: a dict with ``format`` (the version) and ``kind`` beside the payload's
own keys. ``kind`` is :data:`RUN` (everything needed to continue a run: model,
optimizer, scheduler, scaler, early stopping, histories, RNG states, config) or
:data:`MODEL` (weights and what is needed to use them: config, and for a final model
the input size, scaler and sensor ids).
"""

from __future__ import annotations

import io
import logging
import pickle
import random
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tuning.errors import UserError
from tuning.storage import write_atomic

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
RUN = "run"
MODEL = "model"
RUN_STATE_FILE = "state.pt"
"""The file inside a Tune trial's checkpoint folder."""
BEST_FILE = "best.pt"
EPOCH_GLOB = "epoch_*.pt"

_PLAIN = (type(None), bool, int, float, str)
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


class CheckpointError(UserError):
    """A checkpoint is missing, truncated, corrupt or not one of ours."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint needs more than tensors and plain values to load: it is refused, unrun."""


# ----------------------------------------------------------------------------------
# writing


def save(path: str | Path, kind: str, payload: Mapping[str, Any]) -> Path:
    """Write a checkpoint of ``kind`` atomically.

    Raises:
        TypeError: ``payload`` holds something other than tensors and plain values
            (a bug: it could not be loaded back with ``weights_only=True``).
    """
    doc = {"format": FORMAT_VERSION, "kind": kind, **payload}
    _check_plain(doc, "checkpoint")
    buffer = io.BytesIO()
    torch.save(doc, buffer)
    return write_atomic(path, buffer.getbuffer())


def _check_plain(obj: Any, where: str) -> None:
    if type(obj) in _PLAIN or isinstance(obj, torch.Tensor):
        return
    if type(obj) in (dict, OrderedDict):
        for key, value in obj.items():
            if type(key) not in (str, int):
                raise TypeError(f"{where} has a key of type {type(key).__name__}; checkpoint keys must be str or int")
            _check_plain(value, f"{where}[{key!r}]")
        return
    if type(obj) in (list, tuple):
        for i, value in enumerate(obj):
            _check_plain(value, f"{where}[{i}]")
        return
    raise TypeError(
        f"{where} is a {type(obj).__name__}; checkpoints hold tensors and plain values only "
        "(convert arrays to tensors or lists, numpy scalars to float/int)"
    )


# ----------------------------------------------------------------------------------
# reading


def load(path: str | Path, kind: str | None = None) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save` onto the CPU, running no code.

    Raises:
        UnsafeCheckpointError: the file needs more than tensors and plain values.
        CheckpointError: it is missing, truncated, corrupt, of another format or kind.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        needs = _GLOBAL.search(str(e))
        if needs:
            raise UnsafeCheckpointError(
                f"refusing checkpoint {path}: loading it would call {needs.group(1)}, and checkpoints may hold only "
                "tensors and plain values (a file from an older version, or a tampered one); delete it"
            ) from None
        raise CheckpointError(f"cannot read checkpoint {path}: it is corrupt or not a checkpoint; delete it") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"cannot read checkpoint {path}: {first}; delete it") from e
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_VERSION:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise CheckpointError(
            f"{path} is not a tuning checkpoint of format {FORMAT_VERSION} (found {found!r}); "
            "it was written by another program or version"
        )
    if kind is not None and doc.get("kind") != kind:
        raise CheckpointError(f"{path} holds a {doc.get('kind')!r} file where a {kind!r} checkpoint was expected")
    return doc


def load_first(paths: Iterable[Path], kind: str) -> tuple[Path, dict[str, Any]] | None:
    """The first of ``paths`` that loads, skipping corrupt ones with a warning.

    A run keeps more than one checkpoint so that a torn or damaged newest file costs
    an epoch or two, not the run. An unsafe file is never skipped silently: it raises.
    """
    for path in paths:
        try:
            return path, load(path, kind)
        except UnsafeCheckpointError:
            raise
        except CheckpointError as e:
            log.warning("%s; trying the checkpoint before it", e)
    return None


# ----------------------------------------------------------------------------------
# RNG states as tensors and plain values


def rng_state() -> dict[str, Any]:
    """Python's, NumPy's, torch's (and CUDA's) generator states, in loadable form."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [str(name), torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():  # dropout masks on the GPU come from the CUDA generators
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------------
# a run's folder


class CheckpointFolder:
    """A training run's ``epoch_NNNN.pt`` files (the newest ``keep``) and ``best.pt``.

    A fresh run in a folder an older run left behind removes the older files only
    once its own first checkpoint is written: a run that fails before that (bad data,
    divergence, a full disk) leaves the older run intact and resumable.
    """

    def __init__(self, path: str | Path, keep: int, *, continuing: bool) -> None:
        self.path = Path(path).resolve()
        self.keep = keep
        # Files of the run being continued are ours; those of an older run are not.
        self._older_run = [] if continuing else self._files()

    def _files(self) -> list[Path]:
        return [*self.epochs(), *[p for p in [self.path / BEST_FILE] if p.is_file()]]

    def epochs(self) -> list[Path]:
        """Epoch checkpoints, newest first."""
        return sorted(self.path.glob(EPOCH_GLOB), reverse=True)

    def save_epoch(self, epoch: int, state: Mapping[str, Any]) -> Path:
        path = save(self.path / f"epoch_{epoch:04d}.pt", RUN, state)
        if self._older_run:
            log.info("first checkpoint written: removing the previous run's checkpoints in %s", self.path)
            for old in self._older_run:
                if old != path:
                    old.unlink(missing_ok=True)
            self._older_run = []
        for old in self.epochs()[self.keep :]:
            old.unlink(missing_ok=True)
        return path

    def save_best(self, payload: Mapping[str, Any]) -> Path:
        return save(self.path / BEST_FILE, MODEL, payload)
