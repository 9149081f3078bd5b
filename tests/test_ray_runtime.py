"""The private Ray's keeper (tuning.ray_runtime) and what it costs to start."""

from __future__ import annotations

import subprocess
import sys

import tuning


def _fresh(code: str) -> str:
    """What ``code`` prints in a new interpreter (this one has torch and Ray loaded)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout


def test_the_keeper_module_loads_neither_torch_nor_pandas() -> None:
    # `python -m tuning.ray_runtime` runs tuning/__init__.py first: an eager package import
    # cost every sweep ~3 s of CPU at its start, racing Ray's own start on 2 cores.
    out = _fresh("import sys, tuning.ray_runtime; print(sorted({'torch', 'pandas', 'ray'} & set(sys.modules)))")
    assert out.strip() == "[]"


def test_every_public_name_of_the_package_resolves() -> None:
    for name in tuning.__all__:
        assert getattr(tuning, name) is not None, name
    assert set(tuning.__all__) <= set(dir(tuning))
    from tuning import lock, trainModel  # a submodule and a legacy alias, as users import them

    assert lock.__name__ == "tuning.lock" and callable(trainModel)
