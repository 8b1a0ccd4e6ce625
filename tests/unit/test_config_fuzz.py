"""CLI fuzz (issue "Reliability"): generated command lines — keys of the config schema with values of every type,
unknown keys, ``+``/``++``/``~``, group choices — through what the CLI runs before training (compose, then the
pre-run check of :mod:`repdyn.preflight`), never training. Each one either passes, or fails on the exit-2 path with a
message naming a key: a Hydra composition error (Hydra's usage errors exit 2) or one :class:`ConfigError`. Never
another exception, and never a file written for it.

Speed: a full Hydra compose costs 0.1-0.3 s here, so each group choice set is composed once by Hydra and the value
overrides are applied with Hydra's own ``ConfigLoaderImpl._apply_overrides_to_config`` (exactly the step a full
compose ends with); ``test_fast_compose_is_hydra_compose`` checks the two agree.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf, open_dict, read_write

from repdyn.config import (
    ConfigError,
    DebugConfig,
    DQNConfig,
    EnvConfig,
    LoggerConfig,
    ModelConfig,
    PPOConfig,
    TrainLoopConfig,
)
from repdyn.metrics.config import MetricsConfig
from repdyn.preflight import check_job

EXAMPLES = 220
ROOT_KEYS = {"name", "seed", "device", "env", "agent", "model", "intervention", "metrics", "logger", "train", "debug"}
GROUP_SETS = [
    ("env=classic/cartpole", "logger=none"),
    ("env=classic/cartpole", "logger=none", "agent=dqn"),
    ("env=classic/acrobot", "logger=none", "agent=dqn", "intervention=[ntk_eviction]"),
    ("env=classic/cartpole", "logger=none", "intervention=[pfo,adam_reset]"),
    ("env=classic/cartpole", "logger=none", "intervention=[infer]", "metrics=none"),
    ("env=classic/acrobot", "logger=wandb", "intervention=[icm]", "metrics=full"),
    ("env=mujoco/hopper", "logger=none"),
    ("env=mujoco/hopper", "logger=none", "agent=dqn"),  # invalid combination
    ("env=atari/phoenix", "logger=none"),
    ("env=atari/phoenix", "logger=none", "agent=dqn_atari", "intervention=[reward_mask]"),
    ("env=atari/phoenix", "logger=none", "model=mlp"),  # invalid combination
    ("env=classic/cartpole", "logger=none", "intervention=[pfo,pfo]"),  # invalid: listed twice
    ("env=classic/nope",),  # Hydra: unknown option
]
INTERVENTION_FIELDS = {
    "pfo": {"coef": float},
    "infer": {"k": int, "beta": float, "coef": float, "networks": list},
    "icm": {"beta": float, "feature_dim": int, "lr": float, "forward_weight": float, "epochs": int},
    "ntk_eviction": {"capacity": int, "q_reduction": str, "chunk_size": int},
    "reward_mask": {"p": float},
}
ATARI_FIELDS = {"frameskip": int, "repeat_action_probability": float, "size": int, "stack": int, "grayscale": bool}
# fmt: off
WORDS = ["tanh", "relu", "huber", "l2", "hard", "soft", "memory", "memmap", "full", "last_frame", "offline",
         "online", "disabled", "wandb", "none", "cpu", "cuda", "max", "mean", "taken", "classic", "atari", "mujoco",
         "CartPole-v1", "Blackjack-v1", "ALE/Phoenix-v5", "Hopper-v5", "..", "../../x", "/abs", "actor", "trunk"]
# fmt: on


def _fields(schema: type, prefix: str) -> dict[str, type]:
    hints = {"int": int, "float": float, "bool": bool, "str": str}
    out = {}
    for f in dataclasses.fields(schema):
        t = str(f.type).split(" | ")[0]
        out[f"{prefix}{f.name}"] = list if t.startswith("list") else dict if t.startswith("dict") else hints.get(t, str)
    return out


COMMON = {
    "name": str,
    "seed": int,
    "device": str,
    **_fields(EnvConfig, "env."),
    **_fields(ModelConfig, "model."),
    **_fields(LoggerConfig, "logger."),
    **_fields(TrainLoopConfig, "train."),
    **_fields(DebugConfig, "debug."),
    **_fields(MetricsConfig, "metrics."),
}
KEYS: dict[str, type] = {
    **COMMON,
    **_fields(PPOConfig, "agent."),
    **_fields(DQNConfig, "agent."),
    **{f"env.atari.{k}": t for k, t in ATARI_FIELDS.items()},
    **{f"intervention.{n}.{k}": t for n, fs in INTERVENTION_FIELDS.items() for k, t in fs.items()},
}


def _keys_for(groups: tuple[str, ...]) -> list[str]:
    """The keys that exist in the config these group choices compose (most overrides target them)."""
    g = dict(o.split("=", 1) for o in groups)
    atari = g["env"].startswith("atari")
    dqn = g.get("agent", "").startswith("dqn")
    keys = {**COMMON, **_fields(DQNConfig if dqn else PPOConfig, "agent.")}
    if atari:
        keys.update({f"env.atari.{k}": t for k, t in ATARI_FIELDS.items()})
    for name in g.get("intervention", "[]").strip("[]").split(","):
        keys.update({f"intervention.{name}.{k}": t for k, t in INTERVENTION_FIELDS.get(name, {}).items()})
    return sorted(keys)


# fmt: off
UNKNOWN = ["agent.foo", "foo", "metrics.bar", "logger.api_key", "logger.token", "env.atari.bogus", "model.hiddn",
           "intervention.pfo.coeff", "hydra.job.env_set.MY_TOKEN"]
# fmt: on


def _float_text(x: float) -> str:
    return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(x), repr(x))


small_ints, unit_floats = st.integers(1, 64), st.floats(0.001, 0.999)
ints = st.one_of(small_ints, small_ints, st.integers(-3, 5000), st.sampled_from([0, -1, 2**31, 2**32, 2**63, 10**12]))
floats = st.one_of(
    unit_floats, unit_floats, st.floats(-10, 10), st.sampled_from([0.0, 1.0, 1e-9, 1e300, float("nan"), float("inf")])
)
texts = st.one_of(st.sampled_from(WORDS), st.text(alphabet="abcxyz019_-./", min_size=0, max_size=10))
scalars = {
    int: ints.map(str),
    float: floats.map(_float_text),
    bool: st.sampled_from(["true", "false"]),
    str: texts,
}
lists = st.lists(st.one_of(ints.map(str), st.sampled_from(["actor", "critic", "0.9", "x"])), max_size=3).map(
    lambda xs: "[" + ",".join(xs) + "]"
)
others = st.sampled_from(["null", "???", "${seed}", "${nonexistent}", "${oc.env:HOME}", "''", "{}", "[]"])


@st.composite
def override(draw: st.DrawFn, groups: tuple[str, ...]) -> str:
    existing = st.sampled_from(_keys_for(groups))
    key = draw(
        st.one_of(existing, existing, existing, existing, st.sampled_from(sorted(KEYS)), st.sampled_from(UNKNOWN))
    )
    kind = KEYS.get(key, str)
    if kind is dict:  # a whole mapping (env.atari): an interpolation there trips OmegaConf's own asserts on a later
        value = draw(st.sampled_from(["{}", "{frameskip: 2}", "{size: x}", "null", "[]", "7"]))  # sub-key update
    else:
        typed = lists if kind is list else scalars[kind]
        anything = st.one_of(st.sampled_from(list(scalars.values())).flatmap(lambda s: s), lists, others)
        value = draw(st.one_of(typed, typed, typed, typed, anything))
    prefix = draw(st.sampled_from([""] * 17 + ["+", "++", "~"]))
    if prefix == "~":
        return f"~{key}"
    if key in UNKNOWN and draw(st.booleans()):
        prefix = "+"
    return f"{prefix}{key}={value}"


class FastCompose:
    """Hydra compose with the group choices composed once per set (see the module docstring)."""

    def __init__(self, compose_fn) -> None:
        self.compose_fn, self.cache = compose_fn, {}

    def __call__(self, groups: tuple[str, ...], values: list[str]):
        from hydra._internal.config_loader_impl import ConfigLoaderImpl
        from hydra.core.override_parser.overrides_parser import OverridesParser
        from hydra.types import RunMode

        if groups not in self.cache:
            try:
                self.cache[groups] = self.compose_fn(list(groups))
            except Exception as e:  # noqa: BLE001 — replayed for every example of this set
                self.cache[groups] = e
        base = self.cache[groups]
        if isinstance(base, Exception):
            raise base
        parsed = OverridesParser.create().parse_overrides(values)
        ConfigLoaderImpl.validate_sweep_overrides_legal(parsed, RunMode.RUN, from_shell=True)
        cfg = copy.deepcopy(base)
        ConfigLoaderImpl._apply_overrides_to_config(parsed, cfg)
        with read_write(cfg.hydra), open_dict(cfg.hydra):
            for o in parsed:
                (cfg.hydra.overrides.hydra if o.is_hydra_override() else cfg.hydra.overrides.task).append(o.input_line)
        return cfg


def _keys_of(overrides: list[str]) -> set[str]:
    return {o.split("=", 1)[0].lstrip("+~") for o in overrides}


def test_generated_command_lines_pass_or_fail_with_a_config_error(compose_hydra, tmp_path):
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    fast = FastCompose(compose_hydra)
    run_dir = tmp_path / "run"
    outcomes = {"valid": 0, "hydra": 0, "config": 0}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,  # no .hypothesis/ dir: the test writes no file
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(st.sampled_from(GROUP_SETS).flatmap(lambda g: st.tuples(st.just(g), st.lists(override(g), max_size=3))))
    def one(example: tuple[tuple[str, ...], list[str]]) -> None:
        groups, values = example
        line = [*groups, *values]
        try:
            cfg = fast(groups, [*values, f"hydra.run.dir={run_dir}"])
        except (HydraException, OmegaConfBaseException) as e:  # Hydra's usage errors: exit 2 before the task
            msg = str(e) + str(e.__cause__ or "")
            assert any(k.split(".")[0] in msg for k in _keys_of(line)), (line, msg)
            outcomes["hydra"] += 1
            return
        try:
            check_job(cfg, Path(str(cfg.hydra.run.dir)))
            outcomes["valid"] += 1
        except ConfigError as e:
            m = re.match(r"^([\w.\-/\[\]]+): \S", str(e))
            named = m.group(1) if m else ""
            assert named.split(".")[0].split("[")[0] in ROOT_KEYS | {"hydra"} or named in _keys_of(line), (line, str(e))
            outcomes["config"] += 1
        assert not run_dir.exists() and not list(tmp_path.iterdir()), line

    one()
    assert sum(outcomes.values()) >= 200, outcomes
    assert min(outcomes.values()) >= 15, outcomes  # every path was exercised, not only errors


@pytest.mark.parametrize(
    "line",
    [
        ["env=classic/cartpole", "logger=none", "agent.lr=1e-3", "+env.atari.frameskip=2"],
        ["env=atari/phoenix", "logger=none", "agent=dqn_atari", "agent.buffer_size=${seed}", "seed=7"],
        ["env=classic/cartpole", "logger=none", "intervention=[pfo]", "intervention.pfo.coef=3", "~model.min_scale"],
    ],
)
def test_fast_compose_is_hydra_compose(compose_hydra, line):
    groups = tuple(o for o in line if o.split("=", 1)[0] in ("env", "logger", "agent", "intervention"))
    values = [o for o in line if o not in groups]
    try:
        want = OmegaConf.to_container(compose_hydra(line), resolve=False)
    except Exception as e:  # noqa: BLE001
        with pytest.raises(type(e)):
            FastCompose(compose_hydra)(groups, values)
        return
    got = OmegaConf.to_container(FastCompose(compose_hydra)(groups, values), resolve=False)
    for c in (want, got):
        c["hydra"]["runtime"] = c["hydra"]["job"] = None  # cwd, job name and override_dirname: bookkeeping
    assert got == want
