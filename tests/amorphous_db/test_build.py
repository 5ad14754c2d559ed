import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from atomlens.amorphous_db.build import build
from atomlens.amorphous_db.plan import read_plan
from atomlens.amorphous_db.store import Store
from atomlens.cli import main
from atomlens.errors import DataError

ROOT = Path(__file__).resolve().parents[2]
PLAN = """\
compositions: [CuAu, Cu3Au]
atoms: 12
temperatures: [1000, 1600]
melt: {temperature: 2000, steps: 20}
anneal: {steps: 100}
md: {timestep_fs: 2.0, segment_steps: 20, interval: 4}
potential: {name: emt}
diffusion: {species: Cu}
"""
SMALL = PLAN.replace("[CuAu, Cu3Au]", "[CuAu]")  # two jobs sharing one melt
# Not equal between two runs of the same jobs.
VARYING = {"wall_time_s", "threads"}


def write_plan(folder: Path, text: str = PLAN) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "plan.yaml"
    path.write_text(text)
    return path


def rows(db: Path) -> dict[str, tuple[dict, np.ndarray]]:
    """kind:key -> (key-value pairs without the varying ones, positions)."""
    out = {}
    for row in Store(db, create=False).db.select():
        key = f"{row.kind}:{row.get('job_id', row.composition)}"
        pairs = {k: v for k, v in row.key_value_pairs.items() if k not in VARYING}
        out[key] = (pairs, row.positions)
    return out


def assert_same_rows(a: Path, b: Path, subset: bool = False) -> None:
    """Equal rows; with ``subset``, ``b``'s rows equal those of ``a`` with their keys."""
    first, second = rows(a), rows(b)
    if subset:
        first = {k: v for k, v in first.items() if k in second}
    assert sorted(first) == sorted(second)
    for key in first:
        assert first[key][0] == second[key][0], key
        assert np.array_equal(first[key][1], second[key][1]), key


def cli(*args: str, cwd: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.Popen(
        [sys.executable, "-m", "atomlens.cli", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("adb")
    plan_path = write_plan(folder)
    db = folder / "amorphous.db"
    report = build(read_plan(plan_path), str(db), plan_text=PLAN)
    return folder, plan_path, db, report


def test_build_writes_job_and_arrhenius_rows(built):
    folder, _, db, report = built
    assert len(report.done) == 4 and not report.failed
    store = Store(db, create=False)
    jobs = store.job_rows()
    assert sorted(jobs) == sorted(
        ["CuAu_1000K_seed0", "CuAu_1600K_seed0", "Cu3Au_1000K_seed0", "Cu3Au_1600K_seed0"]
    )
    work = folder / "amorphous_files"
    for row in jobs.values():
        assert row.status == "done" and row.natoms == 12 and row.potential == "emt"
        assert row.D_std_cm2_s > 0 and math.isfinite(row.D_cm2_s)
        assert row.conductivity_S_cm != 0 and 0.2 < row.density_g_cm3 < 25
        assert row.energy == pytest.approx(row.epot_final_eV)
        from atomlens.amorphous_db.jobs import sha256_file

        assert sha256_file(work / row.trajectory) == row.trajectory_sha256
        assert row.plan_hash == read_plan(built[1]).plan_hash()
    # one melt per composition, shared by its two temperatures
    assert len(list((work / "melts").iterdir())) == 2
    fits = store.arrhenius_rows()
    assert sorted(fits) == ["Cu3Au", "CuAu"]
    for composition, fit in fits.items():
        mine = [r for r in jobs.values() if r.composition == composition]
        from atomlens.diffusion.arrhenius import fit_arrhenius

        t = [r.temperature for r in sorted(mine, key=lambda r: r.temperature)]
        d = [r.D_cm2_s for r in sorted(mine, key=lambda r: r.temperature)]
        s = [r.D_std_cm2_s for r in sorted(mine, key=lambda r: r.temperature)]
        expected = fit_arrhenius(np.array(t), np.array(d), np.array(s))
        assert fit.Ea_eV == pytest.approx(expected.activation_energy)
        assert fit.Ea_std_eV == pytest.approx(expected.activation_energy_std)
        assert fit.natoms == 0 and fit.points == 2


def test_rerun_skips_finished_jobs_and_show_prints_them(built, capsys, monkeypatch):
    folder, plan_path, db, _ = built
    import ase.md.langevin

    monkeypatch.setattr(ase.md.langevin.Langevin, "run", lambda *a: pytest.fail("MD ran"))
    assert main(["amorphous-db", "build", str(plan_path), "--db", str(db)]) == 0
    assert "0 job(s) done, 0 failed, 4 already in the database" in capsys.readouterr().out
    plot = folder / "show" / "all.png"
    assert main(["amorphous-db", "show", "--db", str(db), "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert out.count(" done ") == 4 and "Ea (eV)" in out and plot.stat().st_size > 0


def test_other_plan_refused_unless_extend(built, tmp_path):
    _, _, db, _ = built
    changed = write_plan(tmp_path, PLAN.replace("steps: 100", "steps: 120"))
    with pytest.raises(DataError, match="CuAu_1000K_seed0 with other settings"):
        build(read_plan(changed), str(db), extend=True)
    more = write_plan(tmp_path / "more", PLAN.replace("[CuAu, Cu3Au]", "[CuAu, Cu3Au, CuAu3]"))
    with pytest.raises(DataError, match=r"built from another plan .*--extend"):
        build(read_plan(more), str(db))
    before = rows(db)
    assert main(["amorphous-db", "build", str(more), "--db", str(db), "--extend"]) == 0
    after = rows(db)
    for key, (pairs, positions) in before.items():  # old job rows untouched
        if key.startswith("job:"):
            assert after[key][0] == pairs and np.array_equal(after[key][1], positions)
    assert {"job:CuAu3_1000K_seed0", "job:CuAu3_1600K_seed0", "arrhenius:CuAu3"} <= set(after)


def test_failures_are_recorded_and_the_others_go_on(tmp_path):
    # EMT has no Li parameters: the CuLi jobs fail, the CuAu ones finish.
    plan_path = write_plan(tmp_path, PLAN.replace("[CuAu, Cu3Au]", "[CuLi, CuAu]"))
    db = tmp_path / "x.db"
    report = build(read_plan(plan_path), str(db))
    assert sorted(report.done) == ["CuAu_1000K_seed0", "CuAu_1600K_seed0"]
    jobs = Store(db).job_rows()
    failed = jobs["CuLi_1000K_seed0"]
    assert failed.status == "failed" and "Li" in failed.error and "D_cm2_s" not in failed
    again = build(read_plan(plan_path), str(db))
    assert not again.done and len(again.skipped) == 4  # failures are not retried by default


@pytest.mark.slow  # three builds in subprocesses: ~15 s idle, a minute on a loaded machine
def test_kill_9_at_a_random_moment_then_resume_gives_the_same_rows(tmp_path):
    rng = np.random.default_rng(19)
    plan_path = write_plan(tmp_path, SMALL)
    start = time.perf_counter()
    full = cli("amorphous-db", "build", str(plan_path), "--db", "full.db", cwd=tmp_path)
    assert full.wait(timeout=300) == 0, full.stderr.read()
    duration = time.perf_counter() - start
    for attempt in range(4):  # a kill that lands after the end would test nothing
        folder = tmp_path / f"killed{attempt}"
        plan = write_plan(folder, SMALL)
        run = cli("amorphous-db", "build", str(plan), "--db", "x.db", cwd=folder)
        time.sleep(rng.uniform(0.35, 0.9) * duration * 0.6**attempt)
        if run.poll() is None:
            os.kill(run.pid, signal.SIGKILL)
            run.wait()
            break
    else:
        pytest.fail("the build always finished before the kill")
    resumed = cli("amorphous-db", "build", str(plan), "--db", "x.db", cwd=folder)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    assert_same_rows(tmp_path / "full.db", folder / "x.db")


@pytest.mark.slow  # two builds in subprocesses
def test_two_concurrent_builds_share_the_jobs(tmp_path):
    plan_path = write_plan(tmp_path)
    runs = [
        cli("amorphous-db", "build", str(plan_path), "--db", "x.db", cwd=tmp_path) for _ in range(2)
    ]
    outputs = []
    for run in runs:
        assert run.wait(timeout=300) == 0, run.stderr.read()
        outputs.append(run.stdout.read())
    done = [int(out.split(" job(s) done")[0].split()[-1]) for out in outputs]
    assert sum(done) == 4, outputs  # every job ran exactly once
    ids = [r.job_id for r in Store(tmp_path / "x.db").db.select(kind="job")]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 4


@pytest.mark.slow  # a Dask LocalCluster plus four jobs: ~25 s on a loaded machine
def test_dask_local_cluster_gives_the_local_rows(built, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    _, _, local_db, _ = built
    plan_path = write_plan(tmp_path)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        report = build(
            read_plan(plan_path),
            str(tmp_path / "dask.db"),
            executor="dask",
            scheduler=cluster.scheduler_address,
            threads=1,
        )
    assert len(report.done) == 4
    assert len(rows(tmp_path / "dask.db")) == 6
    # (the module's database may hold the extended plan's jobs too)
    assert_same_rows(local_db, tmp_path / "dask.db", subset=True)


def test_rdf_of_an_entry_against_its_own_trajectory_is_one(built, capsys):
    folder, _, db, _ = built
    row = Store(db).job_rows()["CuAu_1600K_seed0"]
    reference = folder / "amorphous_files" / row.trajectory
    out = folder / "rdf"
    assert (
        main(["rdf", str(reference), "--db", str(db), "--job", row.job_id, "--out", str(out)]) == 0
    )
    stored = Store(db).job_rows()["CuAu_1600K_seed0"]
    assert stored.rdf_r2_total == pytest.approx(1.0) and stored.rdf_r2_Cu_Au == pytest.approx(1.0)
    assert stored.rdf_reference == str(reference.resolve())
    assert main(["rdf", str(reference), "--db", str(db), "--job", "nope", "--out", str(out)]) == 1
    assert "has no job 'nope'" in capsys.readouterr().err
