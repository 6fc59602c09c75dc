"""The run config: JSON schema, defaults, and checks that fail before any training starts.

A run config is YAML with the sections ``task``, ``seed``, ``data``, ``model``, ``optim``, ``train``
and ``eval``; every key is documented in ``docs/models_training.md``.  Unknown keys, wrong types
and values outside their choices are rejected with the key's dotted path and the valid values.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import types
import typing
from pathlib import Path

import jsonschema
import yaml

from normlab.models import ModelOptions, check_norm_scope
from normlab.models.crf_tagger import CRFOptions
from normlab.models.options import (
    ACTIVATIONS,
    FAMILY_MODEL_OPTIONS,
    FINAL_NORMS,
    MODEL_INITS,
    NORM_SCOPES,
    NORM_SITES,
    PLACEMENTS,
    POOLINGS,
    POSITIONS,
)
from normlab.models.transformer_xl import XLConfig
from normlab.norms import NORMS, build_norm

from .errors import ConfigError
from .families import FAMILIES
from .objectives import BATCH_STATS_MODES
from .runtime import DEVICES, PRECISIONS, PROGRESS
from .schedules import SCHEDULES
from .tasks import SOURCES, check_data_options, data_options
from .tensorboard_log import check_installed as check_tensorboard_installed

__all__ = ["ConfigError", "config_hash", "describe_error", "load", "merge", "schema", "validate"]


def _obj(properties: dict, required: tuple = ()) -> dict:
    return {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        "required": list(required),
    }


_INT, _NUM, _BOOL, _STR = {"type": "integer"}, {"type": "number"}, {"type": "boolean"}, {"type": "string"}
_POS_INT = {"type": "integer", "minimum": 1}
_NONNEG_INT = {"type": "integer", "minimum": 0}
_NONNEG = {"type": "number", "minimum": 0}
_PROB = {"type": "number", "minimum": 0, "maximum": 1}


def _enum(values) -> dict:
    return {"enum": list(values)}


_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}


def _dataclass_schema(cls) -> dict:
    """The schema of a mapping of ``cls``'s fields (their types; the values the class checks itself)."""
    def one(tp) -> dict:
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            return {"anyOf": [one(t) for t in typing.get_args(tp)]}
        if typing.get_origin(tp) is tuple:
            return {"type": "array", "items": one(typing.get_args(tp)[0])}
        return {"type": _TYPES[tp]}

    hints = typing.get_type_hints(cls)
    return _obj({f.name: one(hints[f.name]) for f in dataclasses.fields(cls)})


def schema() -> dict:
    """The JSON schema of a run config (built on each call: a family registered later is a valid task)."""
    return _obj(
        {
            "task": _enum(FAMILIES),
            "seed": _INT,
            "data": _obj(
                {"source": _enum(SOURCES), "name": _STR, "options": {"type": "object"}},
                required=("source",),
            ),
            "model": _obj(
                {
                    "d_model": _POS_INT,
                    "n_heads": _POS_INT,
                    "d_ff": _POS_INT,
                    "n_layers": _POS_INT,
                    "n_decoder_layers": {"type": ["integer", "null"], "minimum": 1},
                    "dropout": _PROB,
                    "attention_dropout": _PROB,
                    "activation_dropout": _PROB,
                    "activation": _enum(ACTIVATIONS),
                    "norm": _enum(NORMS),
                    "norm_options": {"type": "object"},
                    "placement": _enum(PLACEMENTS),
                    "norm_scope": _enum(NORM_SCOPES),
                    "norm_sites": _enum(NORM_SITES),
                    "final_norm": _enum(FINAL_NORMS),
                    "final_norm_options": {"type": "object"},
                    "positions": _enum(POSITIONS),
                    "max_positions": _POS_INT,
                    "pooling": _enum(POOLINGS),
                    "patch_size": _POS_INT,
                    "init": _enum(MODEL_INITS),
                    "xl": _dataclass_schema(XLConfig),  # task lm_stream
                    "crf": _BOOL,  # task tagging
                    "crf_options": _dataclass_schema(CRFOptions),
                }
            ),
            "optim": _obj(
                {
                    "lr": {"type": "number", "exclusiveMinimum": 0},
                    "betas": {"type": "array", "items": _PROB, "minItems": 2, "maxItems": 2},
                    "eps": {"type": "number", "exclusiveMinimum": 0},
                    "weight_decay": _NONNEG,
                    "schedule": _enum(SCHEDULES),
                    "warmup_steps": _NONNEG_INT,
                    "warmup_init_lr": _NONNEG,
                    "min_lr": _NONNEG,
                    "clip_norm": _NONNEG,
                    "label_smoothing": {"type": "number", "minimum": 0, "maximum": 1, "exclusiveMaximum": 1},
                }
            ),
            "train": _obj(
                {
                    "max_steps": _POS_INT,
                    "update_freq": _POS_INT,
                    "max_tokens": _POS_INT,
                    "max_sentences": {"type": ["integer", "null"], "minimum": 1},
                    "batch_size": _POS_INT,
                    "log_every": _POS_INT,
                    "eval_every": _NONNEG_INT,
                    "checkpoint_every": _NONNEG_INT,
                    "average_last": _POS_INT,
                    "tid_every": _NONNEG_INT,
                    "device": _enum(DEVICES),
                    "precision": _enum(PRECISIONS),
                    "progress": _enum(PROGRESS),
                    "threads": {"type": ["integer", "null"], "minimum": 1},
                    "tensorboard": _BOOL,
                }
            ),
            "eval": _obj(
                {
                    "beam": _POS_INT,
                    "lenpen": _NUM,
                    "max_len_a": _NONNEG,
                    "max_len_b": _NONNEG_INT,
                    "max_tokens": {"type": ["integer", "null"], "minimum": 1},
                    "batch_stats": _enum(BATCH_STATS_MODES),
                    "bleu_tokenize": _STR,
                    "decode_valid": _BOOL,
                }
            ),
        },
        required=("task", "data"),
    )


DEFAULTS: dict = {
    "seed": 1,
    # the family-specific options only where a config gives them (FAMILY_MODEL_OPTIONS)
    "model": {k: v for k, v in ModelOptions().to_dict().items() if k not in FAMILY_MODEL_OPTIONS},
    "optim": {
        "lr": 5e-4,
        "betas": [0.9, 0.98],
        "eps": 1e-8,
        "weight_decay": 1e-4,
        "schedule": "inverse_sqrt",
        "warmup_steps": 4000,
        "warmup_init_lr": 0.0,
        "min_lr": 0.0,
        "clip_norm": 0.0,
        "label_smoothing": 0.1,
    },
    "train": {
        "max_steps": 1000,
        "update_freq": 1,
        "max_tokens": 4096,
        "max_sentences": None,
        "batch_size": 128,
        "log_every": 50,
        "eval_every": 0,
        "checkpoint_every": 0,
        "average_last": 1,
        "tid_every": 0,
        "device": "auto",
        "precision": "auto",
        "progress": "auto",
        "threads": None,
        "tensorboard": False,
    },
    "eval": {
        "beam": 5,
        "lenpen": 1.0,
        "max_len_a": 1.0,
        "max_len_b": 50,
        "max_tokens": None,
        "batch_stats": "auto",
        "bleu_tokenize": "13a",
        "decode_valid": False,
    },
}


def _path(error: jsonschema.ValidationError, prefix: str = "") -> str:
    return ".".join([prefix] * bool(prefix) + [str(p) for p in error.absolute_path]) or "(top level)"


def describe_error(error: jsonschema.ValidationError, prefix: str = "") -> str:
    """One line for a schema error, naming the key by its dotted path (below ``prefix``, if given)."""
    where, schema, value = _path(error, prefix), error.schema, error.instance
    if error.validator == "additionalProperties":
        valid = sorted(schema.get("properties", {}))
        unknown = sorted(set(value) - set(valid))
        prefix = f"{where}." if where != "(top level)" else ""
        return f"unknown key(s) {', '.join(prefix + k for k in unknown)}; valid keys: {', '.join(valid)}"
    if error.validator == "enum":
        return f"{where}: {value!r} is not valid; valid values: {', '.join(map(str, error.validator_value))}"
    if error.validator == "type":
        return f"{where}: {value!r} has the wrong type; expected {error.validator_value}"
    if error.validator == "required":
        return f"{where}: {error.message}"
    return f"{where}: {error.message}"


def merge(defaults: dict, given: dict) -> dict:
    """A deep copy of ``defaults`` with ``given`` merged in (nested mappings merged, other values replaced)."""
    out = copy.deepcopy(defaults)
    for key, value in given.items():
        out[key] = (
            merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def validate(config: dict, *, to_train: bool = True) -> dict:
    """Check a run config and return it with defaults filled in; raises ConfigError naming the problem.
    ``to_train``: the config is about to be trained (or a workflow cell checked), so the optional packages
    it asks for must be installed (``train.tensorboard``); False for a finished run read back."""
    if not isinstance(config, dict):
        raise ConfigError(f"a run config is a mapping of sections; got {type(config).__name__}")
    _check_finite(config)
    _check_schema(config, schema())
    cfg = merge(DEFAULTS, config)
    _check_data(cfg)
    _check_semantics(cfg)
    if to_train and cfg["train"]["tensorboard"]:
        check_tensorboard_installed()  # an optional package: missing is a config error, before any training
    _fill_norm_defaults(cfg)
    _check_model(cfg)
    return cfg


def _check_schema(instance, schema: dict, prefix: str = "") -> None:
    errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(instance), key=lambda e: list(e.absolute_path)
    )
    if errors:
        raise ConfigError("invalid run config: " + "; ".join(describe_error(e, prefix) for e in errors))


def _check_finite(value, where: str = "") -> None:
    """No inf or NaN anywhere (YAML's .inf / .nan): a JSON schema's "number" accepts them."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_finite(item, f"{where}[{i}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: {value} is not a finite number; give a finite value")


def _check_data(cfg: dict) -> None:
    """``data``: a registered dataset of the config's task, and the options that source and family take."""
    data, family = cfg["data"], cfg["task"]
    if data["source"] == "normlab":
        if "name" not in data:
            raise ConfigError("data.name is required when data.source is 'normlab' (the dataset to load)")
        from normlab.data import DATASETS  # here: the data layer's import is only paid by runs that use it

        if data["name"] not in DATASETS:
            raise ConfigError(
                f"data.name: {data['name']!r} is not a registered dataset; valid values: {', '.join(DATASETS)}"
            )
        kind = DATASETS[data["name"]].family
        if kind not in FAMILIES[family]().reads():  # e.g. lm_stream reads the stream of an lm corpus
            raise ConfigError(
                f"task: {family!r}, but data.name {data['name']!r} is a {kind!r} dataset: set task: {kind}"
            )
    options = data.get("options", {})
    check_data_options(data["source"], family, options)
    _check_schema(options, {"type": "object", "properties": data_options(data["source"], family)}, "data.options")


# Norm options whose defaults follow from the rest of the run, filled in by `validate` (so a run's
# config.yaml states them): PowerNorm groups its scaling by attention head and ends its warm-up with
# the LR warm-up, as its authors set them.  An explicit option wins.
RUN_NORM_DEFAULTS = {
    "powernorm": lambda cfg: {"groups": cfg["model"]["n_heads"], "warmup_iters": cfg["optim"]["warmup_steps"]},
}


def _fill_norm_defaults(cfg: dict) -> None:
    model = cfg["model"]
    norms = {"norm_options": model["norm"]}
    if model["final_norm"] != "same":
        norms["final_norm_options"] = model["final_norm"]
    for options_key, name in norms.items():
        if name in RUN_NORM_DEFAULTS:
            model[options_key] = {**RUN_NORM_DEFAULTS[name](cfg), **model[options_key]}


def _check_semantics(cfg: dict) -> None:
    model = cfg["model"]
    if model["final_norm"] == "same" and model["final_norm_options"]:
        raise ConfigError("model.final_norm_options apply to a named model.final_norm; with 'same' the final "
                          "norm takes model.norm_options")
    if cfg["train"]["eval_every"] and cfg["train"]["eval_every"] % cfg["train"]["log_every"]:
        raise ConfigError("train.eval_every must be a multiple of train.log_every")
    if cfg["train"]["checkpoint_every"] and cfg["train"]["checkpoint_every"] % cfg["train"]["log_every"]:
        raise ConfigError("train.checkpoint_every must be a multiple of train.log_every")


def _check_model(cfg: dict) -> None:
    """The model options (ModelOptions' checks, the norm scope of the task's model) and the norms,
    built once so that a bad option or a norm that cannot take this width fails now."""
    model, family = cfg["model"], cfg["task"]
    for key in FAMILY_MODEL_OPTIONS:
        readers = [name for name, cls in FAMILIES.items() if key in cls.model_keys]
        if key in model and family not in readers:
            raise ConfigError(f"model.{key} applies to task {' or '.join(readers)}, not {family!r}; remove it")
    try:
        check_norm_scope(model["norm_scope"], FAMILIES[family].model_class, family)
        opts = ModelOptions(**model)
        FAMILIES[family]().check_config(cfg)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    for key, spec in (
        ("model.norm_options", opts.studied_norm()),
        ("model.final_norm", opts.studied_final_norm()),
    ):
        try:
            build_norm(spec.name, model["d_model"], **spec.options)
        except (ValueError, TypeError) as err:
            raise ConfigError(f"{key}: {err}") from None


def load(path: str | Path, *, to_train: bool = True) -> dict:
    """Read and validate a YAML run config (``to_train``: as :func:`validate`)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"run config {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"run config {path} is a folder; give the YAML file (e.g. results/configs/...yaml)") from None
    except PermissionError:
        raise ConfigError(f"run config {path} cannot be read (permission denied)") from None
    except UnicodeDecodeError:
        raise ConfigError(f"run config {path} is not a text file; give the YAML run config") from None
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"run config {path} is not valid YAML{at}: {problem}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"run config {path} is not a mapping of sections (task, data, model, ...); "
                          f"it holds {'nothing' if raw is None else type(raw).__name__}")
    return validate(raw, to_train=to_train)


def config_hash(cfg: dict) -> str:
    """sha256 of the validated config in canonical JSON (defaults filled in)."""
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
