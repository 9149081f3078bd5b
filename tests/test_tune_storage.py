"""Tune's files on local storage are written whole (tuning.tune_storage), without Ray running."""

from __future__ import annotations

import json
import logging
import pickle
import threading
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from tuning.analysis import newest_snapshot
from tuning.errors import UserError
from tuning.storage import Experiment
from tuning.tune_storage import GOOD_SUFFIX, repair_torn_snapshot, tune_filesystem

STATE = "experiment_state-2026-01-01_00-00-00.json"


def _state(*trial_ids: str) -> str:
    return json.dumps({"trial_data": [[json.dumps({"trial_id": t, "status": "TERMINATED"}), "{}"] for t in trial_ids]})


def _upload(staging: Path, exp: Experiment) -> None:
    """What Tune does with its staging folder at every snapshot (Ray 2.60's ``_upload_to_fs_path``)."""
    fs = tune_filesystem(exp)
    assert fs is not None
    fs.create_dir(exp.path)
    pafs.copy_files(str(staging), exp.path, destination_filesystem=fs, chunk_size=64 * 1024 * 1024)


@pytest.fixture
def exp(tmp_path: Path) -> Experiment:
    return Experiment.at(tmp_path / "results", "sweep")


def test_copies_arrive_whole_and_a_torn_snapshot_keeps_the_last_complete_one(tmp_path: Path, exp: Experiment) -> None:
    staging = tmp_path / "staging"
    (staging / "trial_a").mkdir(parents=True)
    (staging / STATE).write_text(_state("a"))
    (staging / "trial_a" / "result.json").write_text('{"epoch": 1}\n')
    _upload(staging, exp)
    folder = Path(exp.path)
    assert (folder / STATE).read_text() == _state("a") == (folder / (STATE + GOOD_SUFFIX)).read_text()
    assert (folder / "trial_a" / "result.json").read_text() == '{"epoch": 1}\n'

    # The copy read the staged snapshot while Tune rewrote it: cut short, or empty.
    for torn in (_state("a", "b")[:40], ""):
        (staging / STATE).write_text(torn)
        (staging / "trial_a" / "result.json").write_text('{"epoch": 1}\n{"epoch": 2}\n')
        _upload(staging, exp)
        assert (folder / STATE).read_text() == _state("a")
        assert (folder / "trial_a" / "result.json").read_text().count("epoch") == 2
    assert [t["trial_id"] for t, _ in newest_snapshot(folder)] == ["a"]
    assert not list(folder.rglob(".*.tmp"))


def test_a_copy_racing_tunes_rewrite_of_its_snapshot_never_leaves_it_torn(tmp_path: Path, exp: Experiment) -> None:
    """Tune rewrites the staged snapshot in place at every save while its copy to storage may read it.

    With pyarrow's plain local filesystem most of these copies arrive torn (532 of 544 in
    3 s on a quiet machine); here none may.
    """
    staging = tmp_path / "staging"
    staging.mkdir()
    doc = _state(*(f"trial_{i:03d}_{'x' * 2000}" for i in range(40)))
    (staging / STATE).write_text(doc)
    _upload(staging, exp)
    done = threading.Event()

    def save_in_place() -> None:  # TuneController.save_to_dir: open(path, "w") and json.dump
        while not done.is_set():
            with open(staging / STATE, "w") as f:
                f.write(doc)

    saver = threading.Thread(target=save_in_place)
    saver.start()
    try:
        for _ in range(30):
            _upload(staging, exp)
            assert (Path(exp.path) / STATE).read_text() == doc
    finally:
        done.set()
        saver.join()


def test_a_writer_killed_or_dropped_before_close_leaves_the_old_file(exp: Experiment) -> None:
    fs = tune_filesystem(exp)
    assert fs is not None
    target = Path(exp.path) / "trial_a" / "result.json"
    target.parent.mkdir(parents=True)
    target.write_text("old\n")
    stream = fs.open_output_stream(str(target))
    stream.write(b"half of the new")
    assert target.read_text() == "old\n"  # a kill -9 here leaves the old file (and a hidden temporary one)
    del stream
    assert target.read_text() == "old\n"
    assert not list(target.parent.glob(".*.tmp"))


def test_tune_gets_it_for_local_storage_only_and_can_pickle_it(exp: Experiment) -> None:
    fs = tune_filesystem(exp)
    assert fs is not None and fs.type_name == "py::local"
    assert pickle.loads(pickle.dumps(fs)) == fs  # into tuner.pkl, and to the trials
    assert tune_filesystem(Experiment("s3://bucket/prefix", "sweep")) is None


def test_resume_puts_back_a_torn_snapshot_from_its_complete_copy(
    tmp_path: Path, exp: Experiment, caplog: pytest.LogCaptureFixture
) -> None:
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / STATE).write_text(_state("a", "b"))
    _upload(staging, exp)
    newest = Path(exp.path) / STATE
    newest.write_bytes(newest.read_bytes()[:100])  # torn by a copy tool, or a version without this module
    with pytest.raises(UserError, match="truncated or corrupt"):
        newest_snapshot(Path(exp.path))
    with caplog.at_level(logging.WARNING, logger="tuning"):
        repair_torn_snapshot(exp)
    assert [t["trial_id"] for t, _ in newest_snapshot(Path(exp.path))] == ["a", "b"]
    assert [r.getMessage() for r in caplog.records] == [
        f"Tune's snapshot {newest} was torn (100 bytes); resuming from its last complete copy {STATE}{GOOD_SUFFIX}"
    ]
    caplog.clear()
    repair_torn_snapshot(exp)  # a complete snapshot is left alone
    assert not caplog.records


def test_a_torn_snapshot_without_a_complete_copy_is_left_for_the_one_line_refusal(exp: Experiment) -> None:
    folder = Path(exp.path)
    folder.mkdir(parents=True)
    (folder / STATE).write_text("")
    repair_torn_snapshot(exp)
    assert (folder / STATE).read_text() == ""
    with pytest.raises(UserError, match="truncated or corrupt"):
        newest_snapshot(folder)
