import torch
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


# ---- issue 9: each paper profile follows its official code where the paper is silent
@pytest.mark.parametrize("profile", presets.PROFILE_NAMES)
def test_rlfat_models_take_the_image_unstandardized_and_attack_in_train_mode(profile):
    from robustbook import models

    for key in ("rlfat_table1a", "rlfat_table1b", "rlfat_table1c"):
        for _, cfg in presets.get(key).configs(profile, seeds=[0]):
            assert cfg.model_kw["standardize"] is False and cfg.attack_bn_train and cfg.weight_decay == 0
    cfg = presets.get("rlfat_table1b").configs("smoke", seeds=[0])[0][1]
    model = models.build(cfg.model, 10, **dict(cfg.model_kw))
    assert isinstance(model.standardize, torch.nn.Identity)
    assert not isinstance(models.build("madry_resnet", 10).standardize, torch.nn.Identity)  # default kept


def test_fpr_attacks_in_train_mode_and_decays_weights_only_aelf_follows_appendix_c():
    for key in ("fpr_table1", "fpr_table2", "fpr_table3", "fpr_table5", "fpr_table6", "fpr_table4"):
        for profile in ("paper", "cpu"):  # cpu follows paper here (cost does not force a change)
            for _, cfg in presets.get(key).configs(profile, seeds=[0]):
                assert cfg.attack_bn_train, (key, profile)
                if cfg.dataset != "mnist":
                    assert cfg.weight_decay_params == "weights"
    for key in ("aelf_table2", "aelf_table3", "aelf_table4"):
        exp = presets.get(key)
        assert exp.seeds("paper")[0] == 8  # appendix C: seed 8
        for profile in ("paper", "cpu"):
            for _, cfg in exp.configs(profile, seeds=[0]):
                assert not cfg.attack_bn_train and cfg.weight_decay_params == "all"


def test_weight_decay_scope_groups():
    from robustbook import models, runs

    cfg = presets.get("fpr_table2").configs("smoke", seeds=[0])[0][1]
    model = models.build(cfg.model, 10, **dict(cfg.model_kw))
    groups = runs.decay_groups(model, model.parameters(), cfg)
    decayed = {id(p) for p in groups[0]["params"]}
    assert groups[0]["weight_decay"] == cfg.weight_decay and groups[1]["weight_decay"] == 0
    for m in model.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            assert id(m.weight) in decayed and (m.bias is None or id(m.bias) not in decayed)
        if isinstance(m, torch.nn.BatchNorm2d):
            assert id(m.weight) not in decayed and id(m.bias) not in decayed
    all_cfg = cfg.replace(weight_decay_params="all")
    assert len(runs.decay_groups(model, model.parameters(), all_cfg)) == 1


def test_transfer_seed_is_the_next_seed_cyclically_and_fpr_table6_trains_its_partner():
    exp = presets.get("fpr_table2")
    assert [exp.transfer_seed("cpu", s) for s in exp.seeds("cpu")] == [1, 2, 0]
    assert [exp.transfer_seed("paper", s) for s in exp.seeds("paper")] == [1, 0]
    assert presets.get("fpr_table6").seeds("paper") == [0, 1]


def test_lambda_rows_of_both_fpr_texts_and_aelf_table6_differs_from_table2():
    labels = [label for label, _ in presets.get("fpr_table2").runs]
    assert "AT-reg (IJCAI λ = 1)" in labels and "AT-att-reg (IJCAI λ = 0.1)" in labels
    lam = {label: c.lam for label, c in presets.get("fpr_table2").configs("cpu", seeds=[0])}
    assert lam["AT-reg"] == 0.1 and lam["AT-reg (IJCAI λ = 1)"] == 1.0
    t2 = dict(presets.get("aelf_table2").configs("cpu", seeds=[0]))["AT"]
    t6 = dict(presets.get("aelf_table6").configs("cpu", seeds=[0]))["AT"]
    assert t6.epochs * 5 == t2.epochs * 3 and t6.run_id != t2.run_id  # the paper's 30:50
