"""Field library: encodings, decoders and fields mapping (n, d) points to outputs."""

from .budget import check_budget, count_parameters, fit_budget
from .cam import CAMConfig, CAMDecoder, direction_to_unit_square
from .concat import ConcatConfig, ConcatEncoding
from .configs import ConfigError, from_dict, register_config, to_dict
from .dense import DenseGridConfig
from .dynamic import DeformationConfig, DynamicRadianceField
from .field import Field, FieldConfig, ParamGroup
from .fourier import FourierFeatureConfig, FourierFeatures
from .frequency import FrequencyConfig, FrequencyEncoding
from .hashgrid import HashGrid, HashGridConfig, HashGridLayout, hash_encode_torch, make_layout
from .kernels import BackendName
from .mlp import MLP, MLPConfig
from .presets import FIELD_PRESETS, FieldName, PresetContext, field_names, field_preset
from .radiance import RadianceConfig, RadianceField, trunc_exp
from .rbf import RBFConfig, RBFEncoding
from .rbf_init import image_weights, sdf_weights, weighted_kmeans
from .sdf_radiance import SdfGeometryConfig, SdfRadianceField
from .sh import SHEncoding, sh_encode
from .triplane import TriPlane, TriPlaneConfig

for _cfg in (HashGridConfig, FrequencyConfig, MLPConfig, DenseGridConfig, TriPlaneConfig,
             RBFConfig, CAMConfig, FourierFeatureConfig, ConcatConfig):
    register_config(_cfg)

__all__ = [
    "ConfigError", "FIELD_PRESETS", "Field", "FieldConfig", "FrequencyConfig",
    "FrequencyEncoding", "HashGrid", "HashGridConfig", "HashGridLayout", "MLP", "MLPConfig",
    "ParamGroup", "PresetContext", "FieldName", "BackendName", "field_names", "field_preset",
    "from_dict", "hash_encode_torch", "make_layout", "register_config", "to_dict",
    "DeformationConfig", "DynamicRadianceField",
    "RadianceConfig", "RadianceField", "SdfGeometryConfig", "SdfRadianceField", "SHEncoding",
    "sh_encode", "trunc_exp",
    "CAMConfig", "CAMDecoder", "ConcatConfig", "ConcatEncoding", "DenseGridConfig",
    "FourierFeatureConfig", "FourierFeatures", "RBFConfig", "RBFEncoding", "TriPlane",
    "TriPlaneConfig", "check_budget", "count_parameters", "direction_to_unit_square", "fit_budget",
    "image_weights", "sdf_weights", "weighted_kmeans",
]
