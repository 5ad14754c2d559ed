import csv
import json

import ase.build
import ase.io

from atomlens.cli import main
from atomlens.cli.explain import ATTRIBUTION_METHODS
from atomlens.explain.baselines import BASELINES


def test_explain_files_writes_every_output(molecule_run, tmp_path, capsys):
    out = tmp_path / "out"
    status = main(
        [
            "explain",
            str(molecule_run),
            "tests/data/qm9_sample.extxyz",
            "--out",
            str(out),
            "--faithfulness",
            "--local",
            "--figures",
            "3",
            "--page-limit",
            "4",
        ]
    )
    assert status == 0
    printed = capsys.readouterr().out
    assert "explained 12 structure(s) by rollout (the default" in printed
    assert "deletion AUC" in printed
    assert "per-structure figures for the first 3" in printed
    assert "index.html shows the first 4" in printed
    assert (out / "index.html").read_text().count('"formula":') == 4
    for name in (
        "explanations.extxyz",
        "atoms.csv",
        "structures.csv",
        "index.html",
        "faithfulness.json",
        "faithfulness.csv",
        "figures/attention_by_element.png",
        "figures/attention_by_environment.png",
        "figures/faithfulness.png",
    ):
        assert (out / name).is_file(), name
    assert len(list((out / "figures").glob("attention_0*.png"))) == 3
    assert (out / "figures" / "attention_0000_qm9_id_1.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((out / "faithfulness.json").read_text())
    assert summary["mode"] == "atom" and summary["n_structures"] == 12
    rows = list(read_rows(out / "faithfulness.csv"))
    assert len(rows) == 12 and float(rows[0]["deletion_auc_attention"]) >= 0
    assert summary["method"] == "rollout"
    frames = ase.io.read(out / "explanations.extxyz", index=":")
    assert "atomlens_local_attention_2" in frames[0].arrays
    assert "atomlens_rollout" in frames[0].arrays


def test_explain_split_and_readout_mask(molecule_run, tmp_path, capsys):
    out = tmp_path / "split"
    assert (
        main(
            [
                "explain",
                str(molecule_run),
                "--split",
                "test",
                "--out",
                str(out),
                "--faithfulness",
                "readout",
            ]
        )
        == 0
    )
    assert "explained 2 structure(s)" in capsys.readouterr().out
    assert json.loads((out / "faithfulness.json").read_text())["mode"] == "readout"
    split = json.loads((molecule_run / "split.json").read_text())
    table = list(read_rows(out / "structures.csv"))
    assert len(table) == len(split["test"]) == 2


def test_explain_errors_name_the_problem(molecule_run, tmp_path, capsys):
    assert main(["explain", str(molecule_run), "--out", str(tmp_path)]) == 1
    assert "give structure files or --split" in capsys.readouterr().err
    silicon = tmp_path / "si.xyz"
    ase.io.write(silicon, [ase.build.molecule("CH4"), ase.build.molecule("SiH4")])
    assert main(["explain", str(molecule_run), str(silicon), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "Si never seen in training" in err and "si.xyz" in err and "frame 1" in err
    empty = tmp_path / "empty.xyz"
    empty.write_text("")
    assert main(["explain", str(molecule_run), str(empty), "--out", str(tmp_path / "o")]) == 1
    assert "empty.xyz" in capsys.readouterr().err


def _fake_frontier_weights(calls):
    """Stand-in for the PySCF step: HOMO on the heaviest atoms, LUMO on the lightest."""

    def fake(structure, **settings):
        calls.append(settings)
        z = structure.numbers.astype(float)
        return {"homo": z / z.sum(), "lumo": (1 / z) / (1 / z).sum(), "homo_degeneracy": 1}

    return fake


def test_validate_attention_command(molecule_run, tmp_path, capsys, monkeypatch):
    calls = []
    monkeypatch.setattr("atomlens.explain.orbitals.frontier_weights", _fake_frontier_weights(calls))
    out = tmp_path / "bench"
    args = [
        "validate-attention",
        str(molecule_run),
        "--molecules",
        "2",
        "--functional",
        "hf",
        "--basis",
        "sto-3g",
        "--samples",
        "4",
        "--steps",
        "4",
        "--bootstrap",
        "200",
        "--out",
        str(out),
        "--label",
        "tiny",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "2 test molecules, hf/sto-3g HOMO lowdin atom weights" in printed
    assert "best baseline: " in printed and "vs best " in printed and "fewest_h" in printed
    report = json.loads((out / "benchmark_tiny_homo.json").read_text())
    assert report["n_molecules"] == 2 and report["reference"] == "homo"
    assert report["methods"] == list(ATTRIBUTION_METHODS)  # all a SCANN model supports
    assert set(report["scores"]) == {*ATTRIBUTION_METHODS, *BASELINES}
    rows = read_rows(out / "benchmark_tiny_homo.csv")
    assert len(rows) == (len(ATTRIBUTION_METHODS) + len(BASELINES)) * 5
    assert "| `occlusion` |" in (out / "benchmark_tiny_homo.md").read_text()
    orbital_files = list((out / "orbitals").rglob("*.json"))
    assert len(orbital_files) == 2 and len(calls) == 2  # one SCF per molecule, in --out
    assert calls[0] == {"method": "hf", "basis": "sto-3g", "population": "lowdin"}
    # The alias; the other orbital and two methods, from the cached SCF results and scores.
    lumo = [*args, "--reference", "lumo", "--methods", "occlusion,shapley"]
    assert main(["benchmark-explanations", *lumo[1:]]) == 0
    assert sorted((out / "orbitals").rglob("*.json")) == sorted(orbital_files)
    assert len(calls) == 2
    assert json.loads((out / "benchmark_tiny_lumo.json").read_text())["methods"] == [
        "occlusion",
        "shapley",
    ]
    capsys.readouterr()
    assert main([*args, "--methods", "attention,hf"]) == 1
    assert "--methods: unknown method 'hf'" in capsys.readouterr().err
    assert main([*args, "--molecules", "0"]) == 1
    assert "--molecules must be at least 1" in capsys.readouterr().err


def test_validate_attention_refuses_crystal_models(crystal_run, tmp_path, capsys):
    args = ["validate-attention", str(crystal_run), "--reference", "homo", "--n", "2"]
    assert main([*args, "--out", str(tmp_path)]) == 1
    assert "molecules only" in capsys.readouterr().err


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))
