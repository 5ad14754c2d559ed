"""A run directory is used by one process, replaced only after validation, found anywhere."""

import json
import os
from pathlib import Path

import pytest

from atomlens.config import validate_config
from atomlens.errors import DataError
from atomlens.files import remove_stale_temporary_files
from atomlens.inference import load_model
from atomlens.locks import exclusive
from atomlens.paths import default_cache_dir, resolve_cache_dir
from atomlens.training.trainer import run_dir_lock, train


def test_a_second_training_on_the_same_run_dir_is_refused(tiny_config):
    config = tiny_config(epochs=1)
    with (
        run_dir_lock(Path(config.run_dir)),
        pytest.raises(DataError, match=r"run directory '.*run' is in use by another"),
    ):
        train(config, progress=False)
    run = train(config, progress=False)  # free again once the holder is gone
    assert (run / "checkpoints" / "last.pt").is_file()


def test_overwrite_keeps_the_old_run_when_the_new_data_is_invalid(tiny_config, tmp_path):
    run = train(tiny_config(epochs=1), progress=False)
    before = {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    bad = tmp_path / "nan.extxyz"
    source = tiny_config().data.source
    lines = Path(source).read_text().splitlines()
    lines[1] = lines[1].replace("homo=", "homo=nan dummy=", 1)
    bad.write_text("\n".join(lines) + "\n")
    raw = tiny_config(epochs=1, lr=2e-3).model_dump(mode="json")
    raw["data"]["source"] = str(bad)
    with pytest.raises(DataError, match="non-finite labels"):
        train(validate_config(raw), progress=False, overwrite=True)
    after = {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after == before  # nothing of the old run was deleted or changed


def test_stale_checkpoint_temporaries_are_removed_on_start(tiny_config):
    run = train(tiny_config(epochs=1), progress=False)
    orphan = run / "checkpoints" / ".last.tmp999999999.pt"  # no such process
    orphan.write_bytes(b"torn")
    live = run / "checkpoints" / f".best.tmp{os.getppid()}.pt"  # a running process's file
    live.write_bytes(b"being written")
    assert remove_stale_temporary_files(run / "checkpoints") == [orphan]
    assert live.is_file()
    live.unlink()
    orphan.write_bytes(b"torn")
    train(tiny_config(epochs=2), progress=False)  # resume cleans up
    assert not orphan.exists()


def test_cache_dir_resolver_and_absolute_cache_entry(tiny_config, tmp_path, monkeypatch):
    monkeypatch.setenv("ATOMLENS_CACHE", str(tmp_path / "env-cache"))
    assert default_cache_dir() == tmp_path / "env-cache"
    assert resolve_cache_dir("rel") == (tmp_path.cwd() / "rel")
    monkeypatch.delenv("ATOMLENS_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "atomlens"
    monkeypatch.setenv("ATOMLENS_CACHE", str(tmp_path / "env-cache"))

    raw = tiny_config(epochs=1).model_dump(mode="json")
    raw["data"]["cache_dir"] = None  # the default: $ATOMLENS_CACHE
    run = train(validate_config(raw), progress=False)
    entry = json.loads((run / "metadata.json").read_text())["cache_entry"]
    assert entry.startswith(str(tmp_path / "env-cache")) and os.path.isabs(entry)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the run is found from any working directory
    structures, labels = load_model(run).split_structures("test")
    assert len(structures) == len(labels) == 2


def test_lock_file_does_not_pollute_the_run_dir(tiny_config):
    run = train(tiny_config(epochs=1), progress=False)
    assert not list(run.glob("*.lock"))
    with exclusive(run.parent / f".{run.name}.lock", "x", wait=False):
        pass


def test_a_cache_folder_that_is_a_file_is_a_one_line_error(tiny_config, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("ATOMLENS_CACHE", str(blocker))
    raw = tiny_config(epochs=1).model_dump(mode="json")
    raw["data"]["cache_dir"] = None
    with pytest.raises(DataError, match=r"\$ATOMLENS_CACHE\) '.*not-a-folder' is an existing file"):
        train(validate_config(raw), progress=False)
