import pytest

from robustbook import presets
from robustbook.config import RunConfig
from robustbook.runs import st_config


@pytest.mark.parametrize("key", sorted(presets.EXPERIMENTS))
@pytest.mark.parametrize("profile", presets.PROFILE_NAMES)
def test_every_preset_builds_valid_distinct_configs(key, profile):
    exp = presets.get(key)
    cfgs = exp.configs(profile)
    assert cfgs and all(isinstance(c, RunConfig) for _, c in cfgs)
    assert all(c.profile == profile for _, c in cfgs)
    ids = [c.run_id for _, c in cfgs]
    assert len(set(ids)) == len(ids), "two runs of one experiment share an id"
    labels = {label for label, _ in exp.runs}
    assert {label for label, _ in cfgs} == labels


@pytest.mark.parametrize("key", sorted(presets.EXPERIMENTS))
def test_reduced_profiles_list_their_deviations(key):
    exp = presets.get(key)
    assert exp.deviations("paper") == []
    for profile in ("cpu", "smoke"):
        lines = exp.deviations(profile)
        assert any(line.startswith("epochs:") or line.startswith("train_size:") for line in lines)
        # every listed deviation is real: the paper's value differs from the profile's
        for (label, paper_cfg), (_, cfg) in zip(exp.runs, exp.configs(profile, seeds=[0])):
            for name, value in cfg.to_dict().items():
                if name not in ("profile", "seed") and value != paper_cfg.to_dict()[name]:
                    assert any(line.startswith(f"{name}:") for line in lines), (label, name)


def test_paper_profile_is_the_paper():
    t2 = dict(presets.get("fpr_table2").configs("paper", seeds=[0]))
    madry = t2["Madry et al. (2017)"]
    assert madry.eps == pytest.approx(8 / 255) and madry.steps == 5 and madry.alpha == pytest.approx(2 / 255)
    assert madry.model_kw == {"filters": "narrow"} and madry.train_size is None
    assert t2["AT-att-reg"].model_kw["attention"] == "nonlinear" and t2["AT-att-reg"].lam == 0.01
    rl = dict(presets.get("rlfat_table1b").configs("paper", seeds=[0]))
    assert rl["RLFAT_T"].beta == 6 and rl["RLFAT_T"].eta == 1 and rl["RLFAT_P"].eta == 0.5
    assert rl["PGDAT"].optimizer == "adam" and rl["PGDAT"].batch_size == 32 and rl["PGDAT"].model_kw["filters"] == "w32-10"


@pytest.mark.parametrize("key", ["aelf_table2", "aelf_table3", "aelf_table4"])
@pytest.mark.parametrize("profile", ["paper", "cpu"])
def test_aelfs_starts_from_the_tables_own_st_run(key, profile):
    """The ST row of an AELF table is exactly the run AELFs initialises from (no hidden extra run)."""
    cfgs = presets.get(key).configs(profile, seeds=[0])
    st_ids = {c.run_id for label, c in cfgs if c.method == "st"}
    for label, c in cfgs:
        if c.method == "aelfs":
            assert st_config(c).run_id in st_ids, label


def test_unknown_keys():
    with pytest.raises(ValueError, match="unknown experiment"):
        presets.get("table99")
    with pytest.raises(ValueError, match="profile"):
        presets.get("fpr_table2").configs("gpu")
