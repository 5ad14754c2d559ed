from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture
def crystal_file() -> Path:
    return DATA / "mp_crystals_sample.extxyz"


@pytest.fixture
def molecule_file() -> Path:
    return DATA / "qm9_sample.extxyz"
