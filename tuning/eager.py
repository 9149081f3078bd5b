"""torch for eager training, without importing the compiler: the engine's AdamW and determinism.

torch 2.13 wraps ``Optimizer.step``, ``zero_grad``, ``add_param_group``, ``state_dict`` and
``load_state_dict`` so that ``torch.compile`` does not trace into them. Each wrapper imports
``torch._dynamo`` (with sympy and the FX symbolic-shape machinery) the first time it runs,
compiled or not: about 1.5 CPU-seconds. Every trial process pays it once, and at a sweep's
start two trial processes pay it at the same time on 2 cores, where it was a quarter of the
time until the first epoch began (``benchmarks/bench_search.py``'s fixed cost).

This engine never compiles, so :class:`AdamW` calls torch's own undecorated methods
(``functools.wraps`` keeps them as ``__wrapped__``) and does the one thing the wrappers do
outside a compiled region: ``step`` runs without autograd (unless the optimizer was made
``differentiable``). The update itself is torch's, bit for bit (``tests/test_eager.py``).
Where a torch release drops a wrapper, the plain method is used.

``torch.use_deterministic_algorithms`` imports the compiler too:
:func:`use_deterministic_algorithms` sets the same flag without it.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from typing import Any

import torch


def _undecorated(method: Callable[..., Any]) -> Callable[..., Any]:
    # The whole chain: an optimizer built before this import has wrapped AdamW.step once more
    # (Optimizer._patch_step_function, the step hooks), and this class gets that wrapper too.
    return inspect.unwrap(method)


_STEP = _undecorated(torch.optim.AdamW.step)
_ZERO_GRAD = _undecorated(torch.optim.Optimizer.zero_grad)
_ADD_PARAM_GROUP = _undecorated(torch.optim.Optimizer.add_param_group)
_STATE_DICT = _undecorated(torch.optim.Optimizer.state_dict)
_LOAD_STATE_DICT = _undecorated(torch.optim.Optimizer.load_state_dict)


class AdamW(torch.optim.AdamW):
    """:class:`torch.optim.AdamW` for eager training only (the engine never calls ``torch.compile``)."""

    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        # What torch's _use_grad does outside a compiled region: autograd only for a differentiable optimizer.
        with torch.set_grad_enabled(self.defaults["differentiable"]):
            return _STEP(self, closure)

    def zero_grad(self, set_to_none: bool = True) -> None:
        _ZERO_GRAD(self, set_to_none)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        _ADD_PARAM_GROUP(self, param_group)

    def state_dict(self) -> dict[str, Any]:
        return _STATE_DICT(self)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        _LOAD_STATE_DICT(self, state_dict)


def use_deterministic_algorithms() -> None:
    """``torch.use_deterministic_algorithms(True, warn_only=True)`` without importing Inductor.

    torch's function also sets Inductor's ``deterministic`` flag, for compiled code, and
    importing Inductor's config imports Dynamo. Where Inductor is already loaded (someone
    compiles in this process), torch's own function runs and sets both.
    """
    if "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch._C._set_deterministic_algorithms(True, warn_only=True)
