"""Field library: encodings, decoders and fields mapping (n, d) points to outputs."""

from .configs import ConfigError, from_dict, register_config, to_dict
from .field import Field, FieldConfig, ParamGroup
from .frequency import FrequencyConfig, FrequencyEncoding
from .hashgrid import HashGrid, HashGridConfig, HashGridLayout, hash_encode_torch, make_layout
from .mlp import MLP, MLPConfig
from .presets import FIELD_PRESETS, PresetContext, field_names, field_preset

for _cfg in (HashGridConfig, FrequencyConfig, MLPConfig):
    register_config(_cfg)

__all__ = [
    "ConfigError", "FIELD_PRESETS", "Field", "FieldConfig", "FrequencyConfig",
    "FrequencyEncoding", "HashGrid", "HashGridConfig", "HashGridLayout", "MLP", "MLPConfig",
    "ParamGroup", "PresetContext", "field_names", "field_preset", "from_dict",
    "hash_encode_torch", "make_layout", "register_config", "to_dict",
]
