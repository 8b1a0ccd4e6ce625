"""The metrics group options (default / full / none) compose against MetricsConfig; the registry follows them."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from repdyn.metrics import registry
from repdyn.metrics.config import MetricsConfig
from repdyn.metrics.registry import REGISTRY, active, get_metric
from repdyn.paths import CONF_DIR


def compose_metrics(option: str) -> MetricsConfig:
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(group="metrics", name="metrics_schema", node=MetricsConfig)
    with initialize_config_dir(str(CONF_DIR), version_base=None):
        cfg = compose(overrides=[f"+metrics={option}"])  # the group alone, no primary config
    return OmegaConf.to_object(cfg.metrics)


def test_options_compose() -> None:
    default, full, none = (compose_metrics(o) for o in ("default", "full", "none"))
    assert isinstance(default, MetricsConfig)
    assert (default.representation, default.every, default.capacity, default.capacity_every) == (
        True,
        0.001,
        True,
        0.025,
    )
    assert not default.ntk and not default.update_rank
    assert full.ntk and full.update_rank and full.ntk_samples == 1000 and full.update_rank_k == 256
    assert not (none.representation or none.capacity or none.ntk or none.update_rank)
    assert default.scheduled == full.scheduled == none.scheduled == {}
    assert [s.name for s in active(default)] == ["representation", "capacity"]
    assert [s.name for s in active(full)] == list(REGISTRY) == ["representation", "capacity", "ntk", "update_rank"]
    assert [s.name for s in active(none)] == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("every", 0.0),
        ("capacity_every", 2.0),
        ("delta", 1.0),
        ("ntk_q_reduction", "min"),
        ("update_rank_k", 0),
        ("scheduled", {"toy": 0.0}),
    ],
)
def test_bad_values_raise_naming_the_field(field: str, value) -> None:
    with pytest.raises(ValueError, match=f"metrics.{field}"):
        MetricsConfig(**{field: value})


def test_registry_lookup() -> None:
    ntk = get_metric("ntk")
    assert (ntk.switch, ntk.cadence, ntk.config_key) == ("ntk", "ntk_every", "metrics.ntk")
    assert ntk.fraction(MetricsConfig(ntk_every=0.2)) == 0.2
    with pytest.raises(ValueError, match="registered"):
        get_metric("nope")


def test_metric_without_a_field_is_switched_and_timed_by_metrics_scheduled(monkeypatch) -> None:
    monkeypatch.setattr(registry, "REGISTRY", dict(REGISTRY))
    toy = registry.register(registry.ScheduledMetric("toy", lambda ctx: {}, "toy/<key>", ""))
    assert toy.config_key == "metrics.scheduled.toy"
    assert not toy.enabled(MetricsConfig())
    on = MetricsConfig(representation=False, capacity=False, scheduled={"toy": 0.1})
    assert [s.name for s in registry.active(on)] == ["toy"] and toy.fraction(on) == 0.1


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+metrics.scheduled.no_such_metric=0.1", "metrics.scheduled.no_such_metric: no such scheduled metric"),
        ("+metrics.scheduled.ntk=0.1", "switched by metrics.ntk"),
        ("+metrics.scheduled.toy=1.5", "metrics.scheduled.toy: must be a fraction"),
    ],
)
def test_validate_rejects_unknown_or_misplaced_scheduled_metrics(compose, monkeypatch, override, message) -> None:
    from repdyn.config import ConfigError, validate

    monkeypatch.setattr(registry, "REGISTRY", dict(REGISTRY))
    registry.register(registry.ScheduledMetric("toy", lambda ctx: {}, "toy/<key>", ""))
    with pytest.raises(ConfigError, match=message):
        validate(compose(["env=classic/cartpole", "logger=none", override]), [])
