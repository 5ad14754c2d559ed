import json
import shutil

import numpy as np
import pytest

import atomlens.datasets.cache as cache_module
from atomlens.datasets import (
    GraphDataset,
    build_graph_cache,
    load_source,
    make_params,
    read_manifest,
)
from atomlens.errors import DataError, StructureError
from atomlens.graphs import voronoi_graph


def test_build_then_hit(tmp_path, crystal_file):
    source = load_source(str(crystal_file), targets=["formation_energy_per_atom"])
    path = build_graph_cache(source, cache_dir=tmp_path, workers=1, progress=False)
    manifest = read_manifest(path)
    assert manifest["n_graphs"] == 14 and manifest["targets"] == ["formation_energy_per_atom"]
    assert manifest["graph"]["params"]["min_solid_angle"] == 0.4
    assert {"numpy", "scipy", "atomlens"} <= manifest["versions"].keys()
    stamp = (path / "manifest.json").stat().st_mtime_ns
    again = build_graph_cache(source, cache_dir=tmp_path, workers=1, progress=False)
    assert again == path and (path / "manifest.json").stat().st_mtime_ns == stamp
    assert not list(tmp_path.glob(".building-*"))


def test_cached_graphs_equal_direct_computation(tmp_path, crystal_file):
    source = load_source(str(crystal_file))
    dataset = GraphDataset(build_graph_cache(source, cache_dir=tmp_path, progress=False))
    for k in (0, 5, 13):
        direct = voronoi_graph(source.structures[k])
        cached = dataset.graph(k)
        assert np.array_equal(direct.neighbors, cached.neighbors)
        assert np.array_equal(direct.shifts, cached.shifts)
        np.testing.assert_allclose(direct.solid_angle, cached.solid_angle, rtol=1e-6)
    np.testing.assert_allclose(dataset.targets, source.targets)
    assert dataset.ids[0] == source.ids[0]


def test_parameter_or_source_change_invalidates(tmp_path, crystal_file):
    source = load_source(str(crystal_file))
    base = build_graph_cache(source, cache_dir=tmp_path, workers=1, progress=False)
    other = build_graph_cache(
        source,
        params=make_params("voronoi", min_solid_angle=0.5),
        cache_dir=tmp_path,
        workers=1,
        progress=False,
    )
    assert other != base
    edited = tmp_path / "edited.extxyz"
    edited.write_text(crystal_file.read_text().replace("band_gap=0.0", "band_gap=0.1", 1))
    changed = load_source(str(edited))
    changed.name = source.name
    assert build_graph_cache(changed, cache_dir=tmp_path, workers=1, progress=False) != base


def test_parallel_equals_serial(tmp_path, molecule_file):
    source = load_source(str(molecule_file))
    serial = GraphDataset(
        build_graph_cache(source, cache_dir=tmp_path / "a", workers=1, chunk_size=3, progress=False)
    )
    parallel = GraphDataset(
        build_graph_cache(source, cache_dir=tmp_path / "b", workers=2, chunk_size=3, progress=False)
    )
    for name in ("centers", "neighbors", "solid_angle", "atom_ptr", "edge_ptr", "targets"):
        assert np.array_equal(serial.arrays[name], parallel.arrays[name]), name


def test_killed_build_resumes_without_redoing_chunks(tmp_path, molecule_file, monkeypatch):
    source = load_source(str(molecule_file))
    real = cache_module._build_chunk
    calls = []

    def failing(task):
        calls.append(task[0])
        if task[0] == 2:
            raise KeyboardInterrupt  # killed while working on chunk 2
        return real(task)

    monkeypatch.setattr(cache_module, "_build_chunk", failing)
    with pytest.raises(KeyboardInterrupt):
        build_graph_cache(source, cache_dir=tmp_path, workers=1, chunk_size=4, progress=False)
    (building,) = tmp_path.glob(".building-*")
    assert sorted(p.name for p in building.glob("chunk-*.npz")) == [
        "chunk-000000000-000000004.npz",
        "chunk-000000004-000000008.npz",
    ]
    assert not list(tmp_path.glob("qm9*"))  # nothing half-finished under the final name

    calls.clear()
    monkeypatch.setattr(
        cache_module, "_build_chunk", lambda task: (calls.append(task[0]), real(task))[1]
    )
    path = build_graph_cache(source, cache_dir=tmp_path, workers=1, chunk_size=4, progress=False)
    assert calls == [2]
    assert GraphDataset(path).manifest["n_graphs"] == len(source)


def test_resume_with_another_chunk_size_never_duplicates_records(
    tmp_path, molecule_file, monkeypatch
):
    source = load_source(str(molecule_file))
    real = cache_module._build_chunk

    def failing(task):
        if task[0] == 2:
            raise KeyboardInterrupt
        return real(task)

    monkeypatch.setattr(cache_module, "_build_chunk", failing)
    with pytest.raises(KeyboardInterrupt):
        build_graph_cache(source, cache_dir=tmp_path, workers=1, chunk_size=4, progress=False)
    monkeypatch.setattr(cache_module, "_build_chunk", real)
    resumed = GraphDataset(
        build_graph_cache(source, cache_dir=tmp_path, workers=1, chunk_size=5, progress=False)
    )
    clean = GraphDataset(
        build_graph_cache(source, cache_dir=tmp_path / "clean", workers=1, progress=False)
    )
    assert len(resumed) == len(source) == len(set(resumed.ids.tolist()))
    for name in ("ids", "centers", "distance", "atom_ptr", "edge_ptr", "targets"):
        assert np.array_equal(resumed.arrays[name], clean.arrays[name]), name


def test_nan_label_is_an_error_naming_file_and_frame(tmp_path, crystal_file):
    text = crystal_file.read_text()
    bad = tmp_path / "nan.extxyz"
    lines = text.splitlines()
    # frame 0 has 1 atom: its comment line is line 1; frame 1 starts at line 3
    lines[4] = lines[4].replace("band_gap=", "band_gap=nan dummy=", 1)
    bad.write_text("\n".join(lines) + "\n")
    source = load_source(str(bad), targets=["band_gap"])
    with pytest.raises(DataError, match=r"nan.extxyz', frame 1 .*label 'band_gap' is nan"):
        build_graph_cache(source, cache_dir=tmp_path, workers=1, progress=False)
    path = build_graph_cache(
        source, cache_dir=tmp_path, workers=1, progress=False, skip_invalid=True
    )
    manifest = read_manifest(path)
    assert manifest["n_graphs"] == 13
    assert manifest["skipped"][0]["record"] == 1


def test_invalid_structure_raises_or_is_skipped(tmp_path):
    bad = tmp_path / "mols.xyz"
    bad.write_text(
        "3\n\nO 0 0 0\nH 0.96 0 0\nH -0.24 0.93 0\n"
        "2\n\nAr 0 0 0\nAr 30 0 0\n"
        "2\n\nH 0 0 0\nH 0.74 0 0\n"
    )
    source = load_source(str(bad))
    with pytest.raises(StructureError, match=r"mols.xyz', frame 1: isolated atom"):
        build_graph_cache(source, cache_dir=tmp_path, workers=1, progress=False)
    path = build_graph_cache(
        source, cache_dir=tmp_path, workers=1, progress=False, skip_invalid=True
    )
    manifest = read_manifest(path)
    assert manifest["n_graphs"] == 2 and "isolated atom" in manifest["skipped"][0]["reason"]
    assert list(GraphDataset(path).arrays["record_index"]) == [0, 2]


def test_errors_for_bad_sources_and_caches(tmp_path, crystal_file):
    with pytest.raises(DataError, match="unknown target"):
        load_source(str(crystal_file), targets=["nope"])
    with pytest.raises(DataError, match="unknown graph kind"):
        make_params("delaunay")
    with pytest.raises(DataError, match="unknown voronoi parameter"):
        make_params("voronoi", w_t=0.3)
    with pytest.raises(DataError, match="not a graph cache entry"):
        GraphDataset(tmp_path)
    path = build_graph_cache(
        load_source(str(crystal_file)), cache_dir=tmp_path, workers=1, progress=False
    )
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["format_version"] = 999
    broken = tmp_path / "broken"
    shutil.copytree(path, broken)
    (broken / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="cache format 999"):
        GraphDataset(broken)


def test_cutoff_kind_is_cached_too(tmp_path, crystal_file):
    source = load_source(str(crystal_file))
    path = build_graph_cache(
        source,
        "cutoff",
        make_params("cutoff", cutoff=6.0),
        cache_dir=tmp_path,
        workers=1,
        progress=False,
    )
    dataset = GraphDataset(path)
    assert dataset.manifest["graph"]["kind"] == "cutoff"
    assert np.isnan(dataset.arrays["solid_angle"]).all()


def _build_in_process(source_file: str, cache_dir: str) -> str:
    source = load_source(source_file)
    return str(build_graph_cache(source, cache_dir=cache_dir, workers=1, progress=False))


def test_concurrent_builds_of_one_entry_share_one_result(tmp_path, molecule_file):
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(2) as pool:
        paths = pool.starmap(_build_in_process, [(str(molecule_file), str(tmp_path))] * 2)
    assert paths[0] == paths[1]
    assert not list(tmp_path.glob(".building-*"))
    assert len(GraphDataset(paths[0])) == 12


def test_a_held_lock_refuses_or_waits(tmp_path):
    from atomlens.locks import exclusive

    lock = tmp_path / "x.lock"
    busy = "run directory 'x' is in use by another atomlens"
    with (
        exclusive(lock, "run directory 'x'", wait=False),
        pytest.raises(DataError, match=busy),
        exclusive(lock, "run directory 'x'", wait=False),
    ):
        pass
    with exclusive(lock, "run directory 'x'", wait=False):  # released: free again
        pass


BAD_FRAMES = (
    "3\n\nO 0 0 0\nH 0.96 0 0\nH -0.24 0.93 0\n"  # 0: fine
    "2\n\nH 0 0 0\nH 0.1 0 0\n"  # 1: atoms 0.1 Å apart (fails validation when read)
    "2\n\nH nan 0 0\nH 0.74 0 0\n"  # 2: NaN coordinate (fails validation when read)
    "2\n\nH 0 0 0\nH 0.74 0 0\n"  # 3: fine
    "2\n\nAr 0 0 0\nAr 30 0 0\n"  # 4: reads, but has no graph (isolated atoms)
)


def test_frames_failing_validation_are_skipped_and_listed(tmp_path):
    bad = tmp_path / "mols.xyz"
    bad.write_text(BAD_FRAMES)
    with pytest.raises(StructureError, match=r"mols.xyz', frame 1: .*0.1"):
        load_source(str(bad))  # the default still fails, naming file and frame
    source = load_source(str(bad), skip_invalid=True)
    assert source.ids == ["mols.xyz:0", "mols.xyz:3", "mols.xyz:4"]  # the file's numbering
    assert [s.frame for s in source.structures] == [0, 3, 4]
    assert [item["frame"] for item in source.invalid] == [1, 2]
    path = build_graph_cache(
        source, cache_dir=tmp_path / "cache", workers=1, progress=False, skip_invalid=True
    )
    manifest = read_manifest(path)
    assert manifest["n_graphs"] == 2
    assert [(s["file"], s["frame"], s["record"]) for s in manifest["skipped"]] == [
        (str(bad), 1, None),
        (str(bad), 2, None),
        (str(bad), 4, 2),
    ]
    reasons = [s["reason"] for s in manifest["skipped"]]
    assert "0.1" in reasons[0] and "nan" in reasons[1].lower() and "isolated" in reasons[2]
    assert GraphDataset(path).ids.tolist() == ["mols.xyz:0", "mols.xyz:3"]
    # A limit counts the file's frames, skipped ones included.
    assert load_source(str(bad), limit=3, skip_invalid=True).ids == ["mols.xyz:0"]


def test_skip_invalid_changes_the_cache_key_only_when_frames_are_skipped(tmp_path, crystal_file):
    from atomlens.datasets.cache import cache_key

    params = make_params("voronoi")
    plain = load_source(str(crystal_file))
    skipping = load_source(str(crystal_file), skip_invalid=True)
    assert skipping.invalid == [] and cache_key(plain, "voronoi", params) == cache_key(
        skipping, "voronoi", params
    )
    bad = tmp_path / "mols.xyz"
    bad.write_text(BAD_FRAMES)
    skipped = load_source(str(bad), skip_invalid=True)
    assert skipped.fingerprint.endswith(":skipped=1,2")
    only_bad = tmp_path / "overlaps.xyz"
    only_bad.write_text("2\n\nH 0 0 0\nH 0.1 0 0\n")
    with pytest.raises(DataError, match=r"all 1 frames are invalid \(frame 0: "):
        load_source(str(only_bad), skip_invalid=True)


def test_graphs_build_cli_reports_skipped_frames(tmp_path, capsys):
    from atomlens.cli import main

    bad = tmp_path / "mols.xyz"
    bad.write_text(BAD_FRAMES)
    cache = tmp_path / "cache"
    assert main(["graphs", "build", str(bad), "--cache-dir", str(cache)]) == 1
    err = capsys.readouterr().err
    assert "mols.xyz', frame 1" in err and len(err.strip().splitlines()) == 1
    assert main(["graphs", "build", str(bad), "--cache-dir", str(cache), "--skip-invalid"]) == 0
    out = capsys.readouterr().out
    assert "3 records, 3 skipped" in out
    assert f"skipped     '{bad}', frame 2: " in out and f"'{bad}', frame 4: " in out


def test_training_skips_invalid_frames_and_finds_its_split_again(tmp_path, molecule_file):
    import ase.io

    from atomlens.config import validate_config
    from atomlens.inference import load_model
    from atomlens.training.trainer import train
    from tests.training.conftest import TINY_MODEL

    frames = ase.io.read(molecule_file, index=":")
    broken = frames[5].copy()
    broken.positions[1] = broken.positions[0] + 0.1
    data = tmp_path / "with_overlap.extxyz"
    ase.io.write(data, [*frames[:5], broken, *frames[5:]])

    def config(skip: bool):
        return validate_config(
            {
                "run_dir": str(tmp_path / f"run{skip}"),
                "data": {
                    "source": str(data),
                    "target": "homo",
                    "cache_dir": str(tmp_path / "cache"),
                    "split": {"train": 8, "val": 2, "test": 2, "seed": 1},
                    "skip_invalid": skip,
                },
                "model": TINY_MODEL,
                "training": {"epochs": 1, "batch_size": 4, "seed": 0, "threads": 1},
            }
        )

    with pytest.raises(StructureError, match=r"with_overlap.extxyz', frame 5"):
        train(config(False), progress=False)
    run = train(config(True), progress=False)
    predictor = load_model(run)
    skipped = read_manifest(predictor.metadata["cache_entry"])["skipped"]
    assert [(s["frame"], s["record"]) for s in skipped] == [(5, None)]
    structures, _ = predictor.split_structures("test")
    assert len(structures) == 2 and 5 not in [s.frame for s in structures]
