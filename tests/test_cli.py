from atomlens.cli import main


def test_graphs_build_and_info(tmp_path, crystal_file, capsys):
    code = main(
        [
            "graphs",
            "build",
            str(crystal_file),
            "--targets",
            "band_gap",
            "--cache-dir",
            str(tmp_path),
            "--workers",
            "1",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "graphs      14" in out
    entry = out.split("cache entry: ")[1].splitlines()[0]
    assert main(["graphs", "info", entry]) == 0
    assert "band_gap" in capsys.readouterr().out


def test_data_info(crystal_file, capsys):
    assert main(["data", "info", str(crystal_file), "--json"]) == 0
    assert '"structures": 14' in capsys.readouterr().out


def test_errors_are_one_clear_line(tmp_path, capsys):
    assert main(["data", "info", str(tmp_path / "missing.xyz")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("atomlens: error: structure file not found")
    assert main(["graphs", "build", "qm9", "--param", "bogus"]) == 1
    assert "NAME=VALUE" in capsys.readouterr().err


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "graphs" in capsys.readouterr().out


def test_graphs_show_lists_neighbours(molecule_file, capsys):
    assert main(["graphs", "show", str(molecule_file)]) == 0
    out = capsys.readouterr().out
    # C-H faces: 4 x pi close the carbon cell; H-H faces (2.094 sr) pass the filters too
    assert out.startswith("CH4 (molecule, 5 atoms, 20 edges)")
    assert "3.1416" in out  # each C-H face of methane is a quarter of the sphere
    assert main(["graphs", "show", str(molecule_file), "--frame", "99"]) == 1
