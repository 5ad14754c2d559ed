"""The model registry: names, configs, graphs and capabilities declared once."""

import pytest
from pydantic import ConfigDict

from atomlens.config import validate_config
from atomlens.errors import DataError
from atomlens.models import (
    MODELS,
    ModelConfigBase,
    ModelSpec,
    Scann,
    ScannConfig,
    Sen,
    SenConfig,
    build_model,
    graph_spec,
    model_spec,
    require,
)


def test_every_registered_model_builds_from_its_config_name():
    for name, spec in MODELS.items():
        config = spec.config(name=name)
        assert isinstance(build_model(config), spec.network)
        assert graph_spec(config)[0] == spec.graph_kind
    assert isinstance(build_model(ScannConfig()), Scann)
    assert isinstance(build_model(SenConfig()), Sen)


def test_unknown_model_name_is_an_error():
    with pytest.raises(DataError, match="unknown model 'schnet'; choose from scann, sen"):
        model_spec("schnet")

    class Foreign(ModelConfigBase):
        model_config = ConfigDict(extra="forbid")
        name: str = "mystery"

    with pytest.raises(DataError, match="unknown model 'mystery'"):
        build_model(Foreign())
    with pytest.raises(DataError, match="unknown model name 'mystery'"):
        validate_config({"data": {"source": "x", "target": "y"}, "model": {"name": "mystery"}})


def test_capabilities_are_checked_with_a_clear_message():
    require(ScannConfig(), "local_attention", "--local")
    with pytest.raises(DataError, match=r"--local needs a model with local attention; model 'sen'"):
        require(SenConfig(), "local_attention", "--local")
    assert MODELS["sen"].can("capsules") and not MODELS["scann"].can("capsules")
    with pytest.raises(ValueError, match="unknown capabilities"):
        ModelSpec("x", ScannConfig, Scann, "voronoi", frozenset({"telepathy"}), "")


def test_graph_defaults_come_from_the_config_and_lose_to_data_graph():
    kind, params = graph_spec(SenConfig(cutoff=4.0, symmetry=False))
    assert kind == "cutoff" and params == {"cutoff": 4.0, "widen": True, "symmetry": False}
    assert graph_spec(SenConfig(), {"cutoff": 6.0})[1]["cutoff"] == 6.0
    assert graph_spec(ScannConfig(), {"min_solid_angle": 0.3}) == (
        "voronoi",
        {"min_solid_angle": 0.3},
    )
