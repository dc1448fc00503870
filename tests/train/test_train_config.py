"""Training configuration: defaults, validation with clear messages, overrides, the examples."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from realsr.errors import UsageError
from realsr.train.config import TrainConfig, dump_yaml, from_dict, load_config, parse_override

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_a_valid_config():
    cfg = from_dict({})
    assert isinstance(cfg, TrainConfig)
    assert cfg.model.arch == "rrdbnet" and cfg.data.batch_size == 16 and cfg.optim.ema == 0.999
    # the resolved config round-trips through YAML
    again = from_dict(yaml.safe_load(dump_yaml(cfg)))
    assert again == cfg


@pytest.mark.parametrize("tree, message", [
    ({"modle": {}}, "config key modle: unknown key"),
    ({"losses": {"pixel": {"wieght": 1}}}, "config key losses.pixel.wieght: unknown key (known: weight, kind)"),
    ({"data": {"batch_size": "many"}}, "config key data.batch_size: expected int, got str 'many'"),
    ({"data": {"batch_size": 2.5}}, "config key data.batch_size: expected int"),
    ({"data": {"flip": "yes"}}, "config key data.flip: expected bool"),
    ({"scale": None}, "config key scale: may not be null"),
    ({"losses": {"pixel": {"kind": "l3"}}}, "losses.pixel.kind: 'l3' is not one of l1, l2, charbonnier"),
    ({"optim": {"schedule": {"type": "step"}}}, "optim.schedule.type: 'step' is not one of"),
    ({"data": {"patch_size": 30}}, "data.patch_size (30) must be a positive multiple of the scale (4)"),
    ({"data": {"batch_size": 6}, "optim": {"accumulate": 4}}, "multiple of optim.accumulate"),
    ({"losses": {"gan": {"weight": 0.1}}}, "losses.gan.weight > 0 needs discriminator.arch"),
    ({"losses": {"perceptual": {"weight": 1}}}, "needs losses.perceptual.vgg_weights"),
    ({"losses": {"pixel": {"weight": 0}}}, "every loss weight is 0"),
    ({"optim": {"ema": 1.0}}, "optim.ema must be in [0, 1)"),
    ({"data": {"degradation": {"mode": "pool"}}}, "data.degradation.pool is not set"),
    ({"model": []}, "config key model: expected a mapping"),
])
def test_bad_configs_name_the_key(tree, message):
    with pytest.raises(UsageError) as e:
        from_dict(tree)
    assert message in str(e.value)


def test_overrides_are_yaml_values_on_dotted_keys():
    assert parse_override("optim.generator.lr=0.5") == ("optim.generator.lr", 0.5)
    assert parse_override("model.args={nb: 2, nf: 8}") == ("model.args", {"nb": 2, "nf": 8})
    cfg = from_dict({"model": {"args": {"nb": 3}}},
                    ["optim.iterations=7", "model.args={nb: 2}", "data.degradation.mode=classic", "optim.generator.lr=1e-4"])
    assert cfg.optim.iterations == 7 and cfg.model.args == {"nb": 2}
    assert cfg.data.degradation.mode == "classic" and cfg.optim.generator.lr == 1e-4
    # YAML 1.1 reads 1e6 as a string; an integral one is taken for an int key, a fraction is not
    assert from_dict({}, ["optim.iterations=1e6"]).optim.iterations == 1_000_000
    with pytest.raises(UsageError, match="data.batch_size: expected int, got float 2.5"):
        from_dict({}, ["data.batch_size=2.5e0"])
    with pytest.raises(UsageError, match="not key=value"):
        from_dict({}, ["optim.iterations"])
    with pytest.raises(UsageError, match="optim.iterationz: unknown key"):
        from_dict({}, ["optim.iterationz=3"])


def test_yaml_file_errors(tmp_path):
    with pytest.raises(UsageError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(UsageError, match="cannot read config"):
        load_config(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- a\n- b\n")
    with pytest.raises(UsageError, match="must hold a YAML mapping"):
        load_config(lst)
    typo = tmp_path / "typo.yaml"
    typo.write_text("optim: {iters: 3}\n")
    with pytest.raises(UsageError) as e:
        load_config(typo)
    assert e.value.path == str(typo) and "optim.iters" in str(e.value)


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "examples").glob("*.yaml")))
def test_example_presets_are_valid(name):
    cfg = load_config(ROOT / "examples" / name)
    from realsr.train.models import arch_class

    arch_class(cfg.model.arch)
    assert cfg.optim.iterations >= 1


@pytest.mark.parametrize("losses, data, message", [
    ({"ssim": {"weight": -1}}, {}, "losses.ssim.weight must be >= 0"),
    ({"ms_ssim": {"weight": -0.5}}, {}, "losses.ms_ssim.weight must be >= 0"),
    ({"pixel": {"weight": 0}, "ssim": {"weight": 0}}, {}, "every loss weight is 0"),
    ({"ssim": {"weight": 1, "window": 4}}, {}, "losses.ssim.window must be an odd number >= 1, got 4"),
    ({"ms_ssim": {"weight": 1, "window": 0, "small_images": "shrink_window"}}, {}, "losses.ms_ssim.window must be an odd"),
    ({"ssim": {"weight": 1, "k2": 0}}, {}, "losses.ssim.sigma, k1 and k2 must be > 0"),
    ({"ssim": {"weight": 1, "window": 65}}, {"patch_size": 64}, "losses.ssim.window (65) is larger than data.patch_size (64)"),
    ({"ms_ssim": {"weight": 1}}, {"patch_size": 128},
     "losses.ms_ssim: a 128-px patch is 8 px at scale 5, smaller than the 11-px window"),
    ({"ms_ssim": {"weight": 1, "scale_weights": []}}, {}, "losses.ms_ssim.scale_weights must be a non-empty list"),
    ({"ms_ssim": {"weight": 1, "scale_weights": [0.5, -0.5]}}, {}, "one per scale"),
    ({"ms_ssim": {"weight": 1, "small_images": "pad"}}, {}, "losses.ms_ssim.small_images: 'pad' is not one of error, shrink_window"),
    ({"ms_ssim": {"weight": 1, "scales": 3}}, {}, "config key losses.ms_ssim.scales: unknown key"),
])
def test_ssim_and_ms_ssim_options_are_checked(losses, data, message):
    with pytest.raises(UsageError) as e:
        from_dict({"losses": losses, "data": data})
    assert message in str(e.value)


def test_ssim_and_ms_ssim_defaults_and_what_fits():
    cfg = from_dict({})
    s, m = cfg.losses.ssim, cfg.losses.ms_ssim
    assert (s.weight, s.window, s.sigma, s.k1, s.k2) == (0.0, 11, 1.5, 0.01, 0.03)
    assert (m.weight, m.window, m.scale_weights, m.small_images) == (0.0, 11, [0.0448, 0.2856, 0.3001, 0.2363, 0.1333], "error")
    # 5 scales of 11 px need 161 px (a multiple of 4: 164); a 128-px patch with the fallback; 3 scales fit 44 px
    assert from_dict({"losses": {"ms_ssim": {"weight": 1}}, "data": {"patch_size": 164}}).losses.ms_ssim.weight == 1
    with pytest.raises(UsageError, match="160-px patch is 10 px at scale 5"):
        from_dict({"losses": {"ms_ssim": {"weight": 1}}, "data": {"patch_size": 160}})
    from_dict({"losses": {"ms_ssim": {"weight": 1, "small_images": "shrink_window"}}, "data": {"patch_size": 128}})
    from_dict({"losses": {"ms_ssim": {"weight": 1, "scale_weights": [0.2, 0.3, 0.5]}}, "data": {"patch_size": 44}})
    # SSIM alone is a valid objective; d2c takes the pixel loss only
    from_dict({"losses": {"pixel": {"weight": 0}, "ssim": {"weight": 1}}})
    with pytest.raises(UsageError, match="method d2c uses losses.pixel only"):
        from_dict({"method": "d2c", "model": {"arch": "d2csr"}, "losses": {"ssim": {"weight": 1}}})
