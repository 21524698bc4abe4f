import pytest

from robustbook import __version__
from robustbook.config import ConfigError, RunConfig, canonical, run_id


def test_defaults_are_valid_and_id_is_stable():
    a, b = RunConfig(), RunConfig()
    assert a.run_id == b.run_id and a.run_id.startswith("pgd_at-cifar10-")
    assert f'"_version":"{__version__}"' in canonical(a)


def test_id_changes_with_any_result_field_but_not_device():
    base = RunConfig()
    assert base.replace(seed=1).run_id != base.run_id
    assert base.replace(eps=4 / 255).run_id != base.run_id
    assert base.replace(model_kw={"filters": "wide3"}).run_id != base.run_id
    assert base.replace(device="cpu").run_id == base.run_id
    assert base.replace(profile="cpu").run_id == base.run_id


def test_roundtrip_dict():
    cfg = RunConfig(method="jt", ratio=(0.4, 0.6), milestones=(3, 6), epochs=8)
    again = RunConfig.from_dict(cfg.to_dict())
    assert again == cfg and again.run_id == cfg.run_id


@pytest.mark.parametrize(
    "changes,match",
    [
        (dict(eps=-0.1), "eps"),
        (dict(eps=8), "eps/255"),
        (dict(method="magic"), "method"),
        (dict(dataset="imagenet"), "dataset"),
        (dict(ratio=(0.5, 0.6)), "ratio"),
        (dict(milestones=(20,), epochs=10), "milestones"),
        (dict(batch_size=0), "batch_size"),
        (dict(optimizer="rmsprop"), "optimizer"),
        (dict(method="at_att"), "attention"),
        (dict(method="aelfs", ratio=(0.5, 0.5), beta=0.5), "pretrain_epochs"),
        (dict(model="resnet9000"), "model"),
        (dict(steps=-1), "steps"),
        (dict(epochs=1.5), "epochs"),
    ],
)
def test_invalid_values_name_the_field(changes, match):
    with pytest.raises(ConfigError, match=match):
        RunConfig(**changes)


def test_unknown_fields_rejected():
    with pytest.raises(ConfigError, match="unknown RunConfig field"):
        RunConfig().replace(learning_rate=0.1)
    with pytest.raises(ConfigError, match="unknown RunConfig field"):
        RunConfig.from_dict({"lr": 0.1, "momentun": 0.9})
    assert run_id(RunConfig()) == RunConfig().run_id


def test_schedule_and_warmup_fields():
    import pytest as _pytest

    from robustbook import runs
    from robustbook.config import ConfigError, RunConfig, canonical

    base = RunConfig()
    assert "lr_schedule" not in canonical(base)  # added later: at its default it leaves ids alone
    one = base.replace(lr_schedule="onecycle", epochs=10, lr=5e-3)
    assert '"lr_schedule":"onecycle"' in canonical(one) and one.run_id != base.replace(epochs=10, lr=5e-3).run_id
    lrs = [runs.onecycle_lr(one, p) for p in (0, 2, 4, 7, 10)]
    assert lrs[0] == 0 and lrs[2] == _pytest.approx(5e-3) and lrs[-1] == 0 and lrs[1] == _pytest.approx(2.5e-3)
    with _pytest.raises(ConfigError, match="milestones"):
        base.replace(lr_schedule="onecycle", epochs=10, milestones=(5,))
    with _pytest.raises(ConfigError, match="lr_schedule"):
        base.replace(lr_schedule="cosine")
    # eps warm-up: eps and alpha scale together, the config itself once the ramp is over
    warm = base.replace(eps_warmup_epochs=2.0)
    half = runs.warmup_config(warm, 1.0)
    assert half.eps == _pytest.approx(base.eps / 2) and half.alpha == _pytest.approx(base.alpha / 2)
    assert runs.warmup_config(warm, 2.5) is warm
    with _pytest.raises(ConfigError, match="eps_warmup_epochs"):
        base.replace(eps_warmup_epochs=base.epochs + 1)
