import pytest

from atomlens.amorphous_db.plan import CompositionLine, Plan, read_plan
from atomlens.errors import DataError

BASE = "compositions: [CuAu]\ntemperatures: [1000, 1500]\ndiffusion: {species: Cu}\n"


def _read(tmp_path, text):
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    return read_plan(path)


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ("melt: {temperature: -5}\n", "melt.temperature"),
        ("melt: {temprature: 3000}\n", "melt.temprature"),
        ("anneal: {steps: 0}\n", "anneal.steps"),
        ("md: {timestep_fs: .nan}\n", "md.timestep_fs"),
        ("quench: {temperatures: [0]}\n", "quench.temperatures"),
        ("seeds: [1, 1]\n", "seeds"),
        ("potential: {name: gulp}\n", "potential.name"),
        ("atomz: 10\n", "atomz"),
    ],
)
def test_validation_errors_name_the_key(tmp_path, extra, key):
    with pytest.raises(DataError) as info:
        _read(tmp_path, BASE + extra)
    message = str(info.value)
    assert "plan.yaml" in message and f"{key}:" in message and "\n" not in message


def test_temperatures_compositions_and_species_are_checked(tmp_path):
    with pytest.raises(DataError, match=r"temperatures: .*whole kelvins"):
        _read(
            tmp_path,
            "compositions: [CuAu]\ntemperatures: [1000, 1000.4]\ndiffusion: {species: Cu}\n",
        )
    with pytest.raises(DataError, match=r"compositions: .*cannot parse composition 'CuXx'"):
        _read(tmp_path, "compositions: [CuXx]\ntemperatures: [1000]\n")
    with pytest.raises(DataError, match=r"diffusion.species 'Li' is not in CuAu"):
        _read(tmp_path, "compositions: [CuAu]\ntemperatures: [1000]\n")
    with pytest.raises(DataError, match="temperatures: Field required"):
        _read(tmp_path, "compositions: [CuAu]\ndiffusion: {species: Cu}\n")


def test_composition_line_gives_whole_formulas():
    line = CompositionLine(between=("Li2O", "SiO2"), fractions=[1 / 3, 0.5, 2 / 3])
    assert line.formulas() == ["Li2Si2O5", "Li2SiO3", "Li4SiO4"]


def test_jobs_ids_and_hashes(tmp_path):
    plan = _read(tmp_path, BASE + "seeds: [0, 3]\ncompositions: [CuAu, Cu3Au]\n")
    jobs = plan.jobs()
    assert [j.job_id for j in jobs[:4]] == [
        "CuAu_1000K_seed0",
        "CuAu_1000K_seed3",
        "Cu3Au_1000K_seed0",
        "Cu3Au_1000K_seed3",
    ]
    assert len(jobs) == 8 and len({j.job_hash for j in jobs}) == 8
    # The temperatures of a composition and seed share one melt.
    assert jobs[0].melt_key == jobs[4].melt_key != jobs[1].melt_key
    # Another anneal length changes the job but not the melt; the device changes nothing.
    other = Plan.model_validate(
        plan.model_dump()
        | {"anneal": {"steps": 10}, "potential": {"name": "chgnet", "device": "cuda"}}
    )
    same_device = Plan.model_validate(plan.model_dump() | {"potential": {"device": "cuda"}})
    assert same_device.plan_hash() == plan.plan_hash()
    assert other.jobs()[0].job_hash != jobs[0].job_hash
    assert (
        Plan.model_validate(plan.model_dump() | {"anneal": {"steps": 10}}).jobs()[0].melt_key
        == jobs[0].melt_key
    )
