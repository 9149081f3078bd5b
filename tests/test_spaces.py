"""Search-space files: the shipped ones load, bad ones are refused with exit status 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuning import search
from tuning.config import TrainConfig
from tuning.errors import SpaceError
from tuning.spaces import SPACES_DIR, load_space

DEFAULTS = TrainConfig()


@pytest.mark.parametrize("name", ["default", "wide", "smoke"])
def test_shipped_spaces_load_and_start_from_the_defaults(name: str) -> None:
    space = load_space(SPACES_DIR / f"{name}.yaml")
    assert space.name == name  # a sweep is named <space>-<date>-<time> after it
    first = space.first_point()
    assert first == {k: getattr(DEFAULTS, k) for k in space.parameters}
    assert space.budget.num_samples >= 1 and space.budget.grace_period <= space.budget.max_epochs


def test_default_space_searches_the_four_documented_settings() -> None:
    space = load_space(SPACES_DIR / "default.yaml")
    assert set(space.parameters) == {"batch_size", "learning_rate", "dropout_rate", "weight_decay"}
    assert space.parameters["learning_rate"].log and space.parameters["weight_decay"].log
    assert space.parameters["batch_size"].distribution == "choice"
    assert (space.parameters["dropout_rate"].low, space.parameters["dropout_rate"].high) == (0.0, 0.5)


def test_wide_space_adds_model_size_cell_and_clip() -> None:
    space = load_space(SPACES_DIR / "wide.yaml")
    assert {"hidden_size", "num_layers", "cell", "gradient_clip"} <= set(space.parameters)


def test_param_space_maps_to_tune_domains() -> None:
    from ray.tune.search.sample import Categorical, Float, Integer

    space = load_space(SPACES_DIR / "wide.yaml")
    tune_space = space.param_space()
    assert isinstance(tune_space["batch_size"], Categorical)
    assert isinstance(tune_space["learning_rate"], Float)
    hidden = tune_space["hidden_size"]
    assert isinstance(hidden, Integer)
    # our int bounds are inclusive; Tune's randint upper bound is exclusive
    assert (hidden.lower, hidden.upper) == (16, 129)


def test_yaml_1_1_exponent_strings_are_numbers(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("parameters:\n  learning_rate: {distribution: loguniform, low: 1e-4, high: 1e-2}\n")
    p = load_space(path).parameters["learning_rate"]
    assert (p.low, p.high) == (1e-4, 1e-2)


BAD_SPACES = {
    "malformed yaml": ("parameters: [unclosed\n", "not valid YAML"),
    "not a mapping": ("- a\n- b\n", "must be a mapping"),
    "empty space": ("parameters: {}\n", "the space is empty"),
    "no parameters": ("budget: {num_samples: 2}\n", "the space is empty"),
    "unknown section": (
        "parameters:\n  dropout_rate: {distribution: uniform, low: 0, high: 0.5}\nsearch: 1\n",
        "unknown section",
    ),
    "unknown distribution": (
        "parameters:\n  learning_rate: {distribution: normal, low: 0.1, high: 1}\n",
        "unknown distribution 'normal'",
    ),
    "low above high": ("parameters:\n  dropout_rate: {distribution: uniform, low: 0.5, high: 0.1}\n", "low < high must hold"),
    "log with zero low": (
        "parameters:\n  weight_decay: {distribution: loguniform, low: 0, high: 0.1}\n",
        "log scale needs low > 0",
    ),
    "log int with negative low": (
        "parameters:\n  hidden_size: {distribution: int, low: -4, high: 64, log: true}\n",
        "log scale needs low > 0",
    ),
    "unknown parameter": (
        "parameters:\n  lr: {distribution: loguniform, low: 1.0e-4, high: 1.0e-2}\n",
        "'lr' is not a config field (did you mean 'learning_rate'?)",
    ),
    "missing bound": ("parameters:\n  dropout_rate: {distribution: uniform, low: 0.0}\n", "needs 'high'"),
    "non-numeric bound": ("parameters:\n  dropout_rate: {distribution: uniform, low: zero, high: 0.5}\n", "low must be a number"),
    "choice without values": ("parameters:\n  batch_size: {distribution: choice, values: []}\n", "non-empty list 'values'"),
    "invalid value in range": (
        "parameters:\n  dropout_rate: {distribution: uniform, low: 0.0, high: 1.5}\n",
        "dropout_rate must be in [0, 1)",
    ),
    "defaults outside": (
        "parameters:\n  learning_rate: {distribution: loguniform, low: 0.01, high: 0.1}\n",
        "default learning_rate=0.001 lies outside",
    ),
    "fixed unknown field": (
        "parameters:\n  dropout_rate: {distribution: uniform, low: 0, high: 0.5}\nfixed: {hiden_size: 8}\n",
        "'hiden_size' is not a config field",
    ),
    "searched and fixed": (
        "parameters:\n  dropout_rate: {distribution: uniform, low: 0, high: 0.5}\nfixed: {dropout_rate: 0.1}\n",
        "both searched and fixed",
    ),
    "reserved field": (
        "parameters:\n  dropout_rate: {distribution: uniform, low: 0, high: 0.5}\nfixed: {max_epochs: 3}\n",
        "set by the sweep itself",
    ),
    "bad budget": (
        "parameters:\n  dropout_rate: {distribution: uniform, low: 0, high: 0.5}\nbudget: {num_samples: 0}\n",
        "budget.num_samples must be",
    ),
    "unknown budget key": (
        "parameters:\n  dropout_rate: {distribution: uniform, low: 0, high: 0.5}\nbudget: {trials: 3}\n",
        "unknown budget key",
    ),
    "uniform on an int field": (
        "parameters:\n  batch_size: {distribution: uniform, low: 256, high: 4096}\n",
        "holds int values; use distribution int or choice",
    ),
    "int on a str field": (
        "parameters:\n  cell: {distribution: int, low: 1, high: 2}\n",
        "holds str values; use distribution choice",
    ),
    "log not a bool": (
        "parameters:\n  hidden_size: {distribution: int, low: 16, high: 64, log: 'no'}\n",
        "log must be true or false",
    ),
    "grace above max": (
        "parameters:\n  dropout_rate: {distribution: uniform, low: 0, high: 0.5}\nbudget: {max_epochs: 2, grace_period: 3}\n",
        "grace_period (3) must be <= max_epochs (2)",
    ),
}


@pytest.mark.parametrize("case", list(BAD_SPACES), ids=list(BAD_SPACES))
def test_bad_space_file_is_refused_with_exit_2(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text, message = BAD_SPACES[case]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpaceError) as info:
        load_space(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)

    rc = search.main(["--space", str(path), "--storage-path", str(tmp_path / "results"), "--name", "bad"])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "results" / "bad").exists()  # refused before anything is written


def test_missing_space_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = search.main(["--space", str(tmp_path / "nope.yaml"), "--storage-path", str(tmp_path)])
    assert rc == 2
    assert "search-space file not found" in capsys.readouterr().err


def _exit_code(argv: list[str]) -> int:
    """main() returns its status; argparse's own errors leave through SystemExit."""
    try:
        return search.main(argv)
    except SystemExit as e:
        return int(e.code or 0)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--num-samples", "0"], "--num-samples: must be >= 1"),
        (["--max-epochs", "x"], "--max-epochs: must be a whole number"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--resume"], "--resume needs the --name"),
        (["--resume", "--name", "never-ran"], "no sweep named 'never-ran'"),
        (["--grace-period", "5", "--max-epochs", "2", "--smoke-test"], "grace_period (5) must be <= max_epochs (2)"),
    ],
)
def test_bad_flags_exit_2_with_one_line(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = _exit_code([*argv, "--storage-path", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_existing_experiment_needs_resume_or_new_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "taken").mkdir()
    rc = search.main(["--smoke-test", "--storage-path", str(tmp_path), "--name", "taken"])
    assert rc == 2
    assert "exists; continue it with --resume" in capsys.readouterr().err


def test_binary_space_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(bytes(range(256)) * 4)
    assert _exit_code(["--space", str(path), "--storage-path", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "cannot read search-space file" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("name", ["../escape", "a/b", ".hidden", ""])
def test_experiment_name_is_one_folder(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit_code(["--smoke-test", "--storage-path", str(tmp_path / "results"), "--name", name]) == 2
    assert "experiment name" in capsys.readouterr().err
    assert not (tmp_path / "escape").exists()


@pytest.mark.parametrize("flag", ["--len-source", "--len-target"])
def test_window_lengths_must_be_positive(flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit_code([flag, "0", "--storage-path", str(tmp_path)]) == 2
    assert f"{flag}: must be >= 1" in capsys.readouterr().err


def test_bad_data_leaves_no_experiment_behind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A sweep refused at start-up must not block the corrected command with 'exists'."""
    short = tmp_path / "short.csv"
    short.write_text("a,b\n" + "\n".join(f"{i},{i + 1}" for i in range(20)) + "\n")
    argv = ["--smoke-test", "--storage-path", str(tmp_path / "results"), "--name", "retry"]
    assert _exit_code([*argv, "--data", str(short)]) == 2
    assert "too short" in capsys.readouterr().err
    assert not (tmp_path / "results" / "retry").exists()
