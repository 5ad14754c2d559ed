"""Bad input through the command line (issue 15, items 10, 11 and 13).

Every case runs ``atomlens.cli.main`` in-process and checks that the command fails with a
non-zero status and one line on stderr that names the option or file, without a traceback,
and that what an earlier run left in the output folder is untouched.
"""

from __future__ import annotations

import json
from pathlib import Path

import ase
import ase.io
import numpy as np
import pytest
import yaml

from atomlens.cli import main
from atomlens.files import dumps_json, to_strict_json, write_json_atomic
from atomlens.structures.io import read_structures

DATA = Path(__file__).parent / "data"
CRYSTALS = DATA / "mp_crystals_sample.extxyz"
MOLECULES = DATA / "qm9_sample.extxyz"


# ----------------------------------------------------------------------------- helpers


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (what "untouched" compares)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def earlier_results(folder: Path) -> dict[str, bytes]:
    """Fill ``folder`` with the files of an earlier run and return their snapshot."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "earlier.json").write_text('{"result": 1.5}\n')
    (folder / "earlier.csv").write_text("a,b\n1,2\n")
    return snapshot(folder)


def fails_cleanly(capsys: pytest.CaptureFixture, argv: list, *names: str) -> str:
    """Run the command; assert a non-zero exit and one error line naming ``names``."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code in (1, 2), f"exit {code}: {err}"
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("atomlens: error: "), err
    for name in names:
        assert name in lines[0], f"{name!r} not in {lines[0]!r}"
    return lines[0]


def one_frame_file(tmp_path: Path) -> Path:
    path = tmp_path / "one.extxyz"
    ase.io.write(path, ase.io.read(MOLECULES, index=0))
    return path


def trajectory(tmp_path: Path, n_frames: int = 12) -> Path:
    """A small Li random walk in a periodic cell (wrapped, as MD codes write it)."""
    rng = np.random.default_rng(0)
    cell = np.eye(3) * 8.0
    start = rng.uniform(0, 8, (8, 3))
    steps = np.cumsum(rng.normal(0, 0.3, (n_frames, 8, 3)), axis=0)
    frames = [
        ase.Atoms("Li8", positions=(start + step) % 8.0, cell=cell, pbc=True) for step in steps
    ]
    path = tmp_path / "md.extxyz"
    ase.io.write(path, frames)
    return path


def feature_table(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 3))
    rows = ["id,a,b,c,y"] + [
        f"r{i},{a:.4f},{b:.4f},{c:.4f},{2 * a - b:.4f}" for i, (a, b, c) in enumerate(x)
    ]
    path = tmp_path / "table.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def train_config(tmp_path: Path, **data: object) -> Path:
    config = {
        "run_dir": str(tmp_path / "run"),
        "data": {"source": str(MOLECULES), "target": "homo", **data},
        "training": {"epochs": 1},
    }
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def coercivity_config(tmp_path: Path, out: Path, **params: object) -> Path:
    config = {
        "out": str(out),
        "model": {"kind": "simple_cubic", "params": {"L": 2, "J": 1.0, "D": 0.5, **params}},
        "temperatures": [0.1],
        "sampling": {"bins": 16, "windows": 1, "lnf_final": 1e-2, "threads": 1, "m_max": 1.0},
    }
    path = tmp_path / "coercivity.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


# ---------------------------------------------------------------- graph parameters and frames


@pytest.mark.parametrize(
    ("kind", "param", "name"),
    [
        ("cutoff", "cutoff=0", "cutoff"),
        ("cutoff", "cutoff=-2.5", "cutoff"),
        ("voronoi", "open_boundary_radius=0", "open_boundary_radius"),
        ("voronoi", "open_boundary_radius=-1", "open_boundary_radius"),
        ("voronoi", "max_distance=-3", "max_distance"),
        ("voronoi", "min_solid_angle=-0.1", "min_solid_angle"),
    ],
)
def test_graph_parameters_are_checked(tmp_path, capsys, kind, param, name):
    fails_cleanly(capsys, ["graphs", "show", MOLECULES, "--kind", kind, "--param", param], name)
    cache = tmp_path / "cache"
    before = earlier_results(cache)
    argv = ["graphs", "build", CRYSTALS, "--kind", kind, "--param", param, "--cache-dir", cache]
    fails_cleanly(capsys, argv, name)
    assert snapshot(cache) == before


def test_frame_past_the_end_of_the_file(tmp_path, capsys):
    path = one_frame_file(tmp_path)
    line = fails_cleanly(capsys, ["graphs", "show", path, "--frame", "3"], "one.extxyz", "frame 3")
    assert "1 structure" in line and "no structures" not in line


def test_frames_are_numbered_in_the_file_not_in_the_selection(tmp_path):
    assert [s.frame for s in read_structures(CRYSTALS, index="3:5")] == [3, 4]
    assert [s.frame for s in read_structures(CRYSTALS, index="-2:")] == [12, 13]
    assert [s.frame for s in read_structures(CRYSTALS, index="::5")] == [0, 5, 10]
    # a broken third frame is reported as frame 2 even when reading starts at frame 1
    frames = ase.io.read(MOLECULES, index=":3")
    path = tmp_path / "broken.extxyz"
    ase.io.write(path, frames)
    text = path.read_text().splitlines()
    n0, n1 = len(frames[0]), len(frames[1])
    third = 2 + n0 + 2 + n1 + 2  # first atom line of frame 2
    text[third] = "Xx 0.0 0.0 nan"
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(Exception, match="frame 2"):
        list(read_structures(path, index="1:"))


# -------------------------------------------------------------------- configs and --set


def test_non_utf8_configs(tmp_path, capsys):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("run_dir: r\u00e9sultats\n".encode("latin-1"))
    fails_cleanly(capsys, ["train", path], "latin1.yaml", "UTF-8")
    out = tmp_path / "spins"
    before = earlier_results(out)
    fails_cleanly(capsys, ["coercivity", path], "latin1.yaml", "UTF-8")
    assert snapshot(out) == before


@pytest.mark.parametrize(
    "override",
    [
        "training.epochs=[1",
        "training.epochs=!!python/object/apply:os.system ['echo hacked']",
        "training.epochs={a: 1",
    ],
)
def test_invalid_set_values(tmp_path, capsys, override):
    path = train_config(tmp_path)
    fails_cleanly(capsys, ["train", path, "--set", override], "--set training.epochs")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("split", [{"val": -5}, {"test": -0.1}, {"train": -100}])
def test_negative_split_sizes_fail_before_loading(tmp_path, capsys, split):
    # the source does not exist: the split must be refused before anything is loaded
    path = train_config(tmp_path, source=str(tmp_path / "missing.extxyz"), split=split)
    (key,) = split
    line = fails_cleanly(capsys, ["train", path], "train.yaml", f"split.{key}")
    assert "missing.extxyz" not in line


def test_corrupt_metadata_json(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(
        yaml.safe_dump({"data": {"source": str(MOLECULES), "target": "homo"}})
    )
    (run / "metadata.json").write_text('{"graph": {"kind": "voronoi", "par')
    out = tmp_path / "predictions"
    before = earlier_results(out)
    fails_cleanly(capsys, ["predict", run, MOLECULES, "--out", out], "metadata.json", "corrupt")
    assert snapshot(out) == before


# ------------------------------------------------------------------------ descriptor tables


@pytest.mark.parametrize(
    "files",
    [
        {"model.json": b"{not json"},
        {"model.json": b'{"kind": "rf"}'},
        {"model.json": b'{"kind": "rf", "seed": 0, "target": "y", "features": ["a"], '
         b'"bootstrap_models": 0}', "model.skops": b"\x00" * 64},
        {"model.json": b'{"kind": "xgboost", "seed": 0, "target": "y", "features": ["a"], '
         b'"bootstrap_models": 0}', "model_0.json": b"{]"},
    ],
)  # fmt: skip
def test_predict_table_rejects_corrupt_models(tmp_path, capsys, files):
    model = tmp_path / "model"
    model.mkdir()
    for name, content in files.items():
        (model / name).write_bytes(content)
    table = feature_table(tmp_path)
    out = tmp_path / "p.csv"
    out.write_text("earlier\n")
    fails_cleanly(capsys, ["predict-table", model, table, "--out", out], "'", "model")
    assert out.read_text() == "earlier\n"


def test_predict_table_reads_empty_and_binary_tables_cleanly(tmp_path, capsys):
    """With a readable model, the table itself is checked (fit-table writes the model)."""
    table = feature_table(tmp_path)
    fitted = tmp_path / "fitted"
    argv = ["fit-table", table, "--target", "y", "--cv", "kfold", "--folds", "2"]
    assert main([str(a) for a in [*argv, "--permutation-repeats", "1", "--out", fitted]]) == 0
    capsys.readouterr()
    for content, what in [(b"", "not a readable CSV"), (b"\xff\xfe\x00\x81" * 50, "bad.csv")]:
        bad = tmp_path / "bad.csv"
        bad.write_bytes(content)
        fails_cleanly(capsys, ["predict-table", fitted, bad, "--out", tmp_path / "p.csv"], what)
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.parametrize(
    ("option", "value"),
    [("--dim", "0"), ("--complexity", "-1"), ("--sis-size", "0"), ("--cv", "1")],
)
def test_sisso_options(tmp_path, capsys, option, value):
    table = feature_table(tmp_path)
    out = tmp_path / "report.json"
    out.write_text("earlier\n")
    argv = ["sisso", table, "--target", "y", "--ops", "", option, value, "--out", out]
    fails_cleanly(capsys, argv, option)
    assert out.read_text() == "earlier\n"


# --------------------------------------------------------------------------- diffusion, MD


@pytest.mark.parametrize(
    ("extra", "name"),
    [
        (["--fit-range", "5", "50"], "--fit-range"),
        (["--fit-range", "3", "1"], "--fit-range"),
        (["--blocks", "0"], "--blocks"),
        (["--blocks", "1"], "--blocks"),
        (["--step", "0"], "--step"),
    ],
)
def test_diffusion_options(tmp_path, capsys, extra, name):
    traj = trajectory(tmp_path)  # 12 frames, 1 ps apart: 11 ps
    out = tmp_path / "out"
    before = earlier_results(out)
    argv = ["diffusion", traj, "--temperature", "300", "--timestep", "1000", "--out", out]
    fails_cleanly(capsys, [*argv, *extra], name)
    assert snapshot(out) == before


def test_negative_temperature(tmp_path, capsys):
    traj = trajectory(tmp_path)
    out = tmp_path / "out"
    before = earlier_results(out)
    argv = ["diffusion", traj, "--temperature", "-300", "--timestep", "10", "--out", out]
    fails_cleanly(capsys, argv, "--temperature")
    fails_cleanly(capsys, ["arrhenius", out / "earlier.json", "--at", "-5", "--out", out], "--at")
    assert snapshot(out) == before


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--atoms", "0"),
        ("--atoms", "-10"),
        ("--melt-steps", "-20"),
        ("--interval", "0"),
        ("--segment-steps", "0"),
    ],
)
def test_amorphous_options(tmp_path, capsys, option, value):
    out = tmp_path / "md"
    before = earlier_results(out)
    argv = ["amorphous", "Li2O", "--potential", "emt", "--out", out, option, value]
    fails_cleanly(capsys, argv, option)
    assert snapshot(out) == before


# ------------------------------------------------------------------------------ coercivity


def test_coercivity_bad_model_parameter_and_threads(tmp_path, capsys):
    out = tmp_path / "run"
    before = earlier_results(out)
    path = coercivity_config(tmp_path, out, L="abc")
    fails_cleanly(capsys, ["coercivity", path, "--no-progress"], "simple_cubic", "abc")
    path = coercivity_config(tmp_path, out)
    fails_cleanly(capsys, ["coercivity", path, "--threads", "0"], "--threads")
    assert snapshot(out) == before


def test_coercivity_corrupt_checkpoint_and_record(tmp_path, capsys):
    out = tmp_path / "run"
    before = earlier_results(out)
    path = coercivity_config(tmp_path, out)
    checkpoint = out / "T_0.1" / "range0" / "rewl_rank0.npz"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"PK\x03\x04 truncated")
    fails_cleanly(capsys, ["coercivity", path, "--no-progress"], "rewl_rank0.npz", "corrupt")
    assert checkpoint.read_bytes() == b"PK\x03\x04 truncated"
    checkpoint.unlink()
    (out / "T_0.1" / "sampling.json").write_text('{"fingerprint": ')
    (out / "T_0.1" / "free_energy.csv").write_text("m,M,F,visited\n")
    fails_cleanly(capsys, ["coercivity", path, "--no-progress"], "sampling.json", "corrupt")
    for name in ("earlier.json", "earlier.csv"):
        assert (out / name).read_bytes() == before[name]


# -------------------------------------------------------------- k-fold benchmark folds


def test_benchmark_one_fold_fails_before_building_the_cache(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["benchmark", "--task", "band_gap", "--data", CRYSTALS, "--model", "scann"]
    fails_cleanly(capsys, [*argv, "--folds", "1", "--out", tmp_path / "bench"], "--folds")
    assert not (tmp_path / ".cache").exists() and not (tmp_path / "bench").exists()


# --------------------------------------------------------------- output paths (item 10)


@pytest.mark.parametrize("command", ["fit-table", "sisso", "diffusion", "featurize", "rdf"])
def test_output_path_of_the_wrong_kind_fails_before_computing(tmp_path, capsys, command):
    table, traj = feature_table(tmp_path), trajectory(tmp_path)
    folder, file = tmp_path / "a_folder", tmp_path / "a_file.txt"
    folder.mkdir()
    (folder / "keep.txt").write_text("kept")
    file.write_text("kept")
    argv = {
        "fit-table": (["fit-table", table, "--target", "y", "--cv", "kfold"], file),
        "sisso": (["sisso", table, "--target", "y", "--ops", ""], folder),
        "diffusion": (["diffusion", traj, "--temperature", "300", "--timestep", "100"], file),
        "featurize": (["featurize", CRYSTALS], folder),
        "rdf": (["rdf", traj], file),
    }[command]
    args, out = argv
    fails_cleanly(capsys, [*args, "--out", out], "--out", out.name)
    assert file.read_text() == "kept" and (folder / "keep.txt").read_text() == "kept"
    # a folder under a file cannot be created either
    fails_cleanly(capsys, [*args, "--out", file / "sub" / "x.json"], "--out", "a_file.txt")
    assert file.read_text() == "kept"


@pytest.mark.parametrize(
    "command", ["validate-attention", "demo", "explain", "graphs build", "benchmark", "train"]
)
def test_other_commands_check_their_output_first(tmp_path, capsys, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    taken = tmp_path / "taken"
    taken.write_text("kept")
    argv, option = {
        "validate-attention": (["validate-attention", tmp_path, "--cache-dir", taken],
                               "--cache-dir"),
        "demo": (["demo", "--run-dir", taken], "--run-dir"),
        "explain": (["explain", tmp_path, MOLECULES, "--out", taken], "--out"),
        "graphs build": (["graphs", "build", CRYSTALS, "--cache-dir", taken], "--cache-dir"),
        "benchmark": (["benchmark", "--task", "band_gap", "--data", CRYSTALS, "--model",
                       "scann", "--out", taken], "--out"),
        "train": (["train", train_config(tmp_path), "--set", f"run_dir={taken}"], "run_dir"),
    }[command]  # fmt: skip
    fails_cleanly(capsys, argv, option, "taken")
    assert taken.read_text() == "kept"
    assert not (tmp_path / ".cache").exists()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
@pytest.mark.parametrize("command", ["fit-table", "sisso", "diffusion", "coercivity"])
def test_unwritable_output_fails_before_computing(tmp_path, capsys, command):
    # nothing can be created in /proc, not even by root (chmod would not stop root)
    table, traj = feature_table(tmp_path), trajectory(tmp_path)
    unwritable = Path("/proc/atomlens-out")
    argv, name = {
        "fit-table": (["fit-table", table, "--target", "y", "--out", unwritable], "--out"),
        "sisso": (["sisso", table, "--target", "y", "--out", unwritable / "s.json"], "--out"),
        "diffusion": (["diffusion", traj, "--temperature", "300", "--timestep", "100",
                       "--out", unwritable], "--out"),
        "coercivity": (["coercivity", coercivity_config(tmp_path, unwritable)], "out"),
    }[command]  # fmt: skip
    fails_cleanly(capsys, argv, name, "atomlens-out", "cannot be written")


def test_coercivity_out_that_is_a_file(tmp_path, capsys):
    out = tmp_path / "taken"
    out.write_text("kept")
    fails_cleanly(capsys, ["coercivity", coercivity_config(tmp_path, out)], "out", "taken")
    assert out.read_text() == "kept"


def test_predict_out_that_is_a_file(tmp_path, capsys):
    out = tmp_path / "taken.csv"
    out.write_text("kept")
    fails_cleanly(capsys, ["predict", tmp_path, MOLECULES, "--out", out], "--out", "taken.csv")
    assert out.read_text() == "kept"


def test_os_errors_are_one_line(tmp_path, capsys, monkeypatch):
    from atomlens.cli import descriptors

    def unwritable(args):
        raise PermissionError(13, "Permission denied", str(tmp_path / "locked" / "x.csv"))

    monkeypatch.setattr(descriptors, "_featurize", unwritable)
    fails_cleanly(capsys, ["featurize", CRYSTALS], "Permission denied", "x.csv")


# ----------------------------------------------------------------- strict JSON (item 13)


def strict_loads(text: str):
    def refuse(constant: str):
        raise AssertionError(f"bare {constant} in JSON")

    return json.loads(text, parse_constant=refuse)


def test_json_is_strict(tmp_path):
    value = {
        "nan": float("nan"),
        "inf": [np.inf, -np.inf, 1.5],
        "array": np.array([1.0, np.nan]),
        "numpy": (np.float32(2.5), np.int64(3), np.bool_(True)),
        "path": tmp_path,
    }
    expected = {
        "nan": None,
        "inf": [None, None, 1.5],
        "array": [1.0, None],
        "numpy": [2.5, 3, True],
        "path": str(tmp_path),
    }
    assert to_strict_json(value) == expected
    assert strict_loads(dumps_json(value)) == expected
    path = write_json_atomic(tmp_path / "x.json", value)
    assert strict_loads(path.read_text()) == expected


def test_arrhenius_of_two_temperatures_writes_strict_json(tmp_path, capsys):
    # two points leave no scatter: the 95 % interval is not finite and must be null
    results = []
    for t, d in ((1000.0, 1e-5), (1500.0, 4e-5)):
        path = tmp_path / f"d{t:g}.json"
        path.write_text(json.dumps({"temperature_K": t, "diffusivity_cm2_s": d}))
        results.append(path)
    out = tmp_path / "out"
    assert main([str(a) for a in ["arrhenius", *results, "--out", out]]) == 0
    assert "Ea = " in capsys.readouterr().out
    summary = strict_loads((out / "arrhenius.json").read_text())
    assert summary["activation_energy_eV"] > 0
    assert None in summary["activation_energy_95_eV"]
