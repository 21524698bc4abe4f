"""Config errors (issue 11): strings, NaN and infinity in numeric fields, model_kw checked
when the config is made and frozen afterwards, unknown keys in a stored suite."""

import copy
import pickle

import pytest

from robustbook import config, evaluate, runs
from robustbook.config import ConfigError, RunConfig
from robustbook.errors import ConfigError as BaseConfigError
from robustbook.models import registry


def test_config_error_is_one_class_importable_everywhere():
    assert config.ConfigError is runs.ConfigError is BaseConfigError


@pytest.mark.parametrize("field,value", [("lr", "0.1"), ("eps", "8/255"), ("epochs", "10"), ("lam", float("nan")),
                                         ("lr", float("inf")), ("beta", float("-inf")), ("alpha", float("nan")),
                                         ("eta", None), ("ratio", (0.5, float("nan"))), ("milestones", ("5",)),
                                         ("train_size", float("nan")), ("epochs", 10.0)])
def test_non_numbers_in_numeric_fields_are_config_errors_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=rf"RunConfig\.{field}="):
        RunConfig(**{field: value})


def test_model_kw_is_checked_when_the_config_is_made():
    with pytest.raises(ConfigError, match=r"RunConfig\.model_kw=.*unknown keyword argument.*'filterz'"):
        RunConfig(model_kw={"filterz": "narrow"})
    with pytest.raises(ConfigError, match=r"RunConfig\.model_kw=.*filters alias"):
        RunConfig(model_kw={"filters": "huge"})
    with pytest.raises(ConfigError, match=r"model_kw.*depth must be 6n\+4"):
        RunConfig(model="wrn", model_kw={"depth": 30})
    RunConfig(model="wrn", model_kw={"depth": 34, "widen": 10})


def test_every_model_check_takes_exactly_the_models_keywords():
    for name, check in registry.CHECKS.items():
        registry.check_kwargs(name, {})  # the defaults are valid
    assert set(registry.CHECKS) == set(registry.MODELS)


def test_model_kw_cannot_be_changed_afterwards_and_keeps_the_run_id():
    cfg = RunConfig(model_kw={"filters": [4, 4, 8, 8], "units_per_stage": 1})
    rid = cfg.run_id
    with pytest.raises(TypeError, match="cannot be changed.*replace"):
        cfg.model_kw["filters"] = "narrow"
    with pytest.raises(TypeError):
        cfg.model_kw.update(attention="linear")
    assert cfg.to_dict()["model_kw"] == {"filters": [4, 4, 8, 8], "units_per_stage": 1}
    assert RunConfig.from_dict(cfg.to_dict()).run_id == rid
    assert pickle.loads(pickle.dumps(cfg)) == cfg and copy.deepcopy(cfg).run_id == rid
    assert hash(cfg) == hash(RunConfig.from_dict(cfg.to_dict()))
    # the canonical JSON is what it was with a plain dict: sorted keys, lists
    assert '"model_kw":{"filters":[4,4,8,8],"units_per_stage":1}' in config.canonical(cfg)


def test_unknown_key_in_a_stored_suite_is_an_error():
    d = evaluate.get_suite("smoke").to_dict()
    assert evaluate.Suite.from_dict(d) == evaluate.get_suite("smoke")
    with pytest.raises(evaluate.SuiteError, match=r"unknown Suite field.*'pgd_step'"):
        evaluate.Suite.from_dict({**d, "pgd_step": [10]})
