"""Scene loaders and samplers: images, posed photo collections, meshes."""

from .images import (
    ALPHA_MODES,
    AlphaMode,
    ImageTarget,
    SceneError,
    load_image,
    pixel_coords,
    sample_pixels,
)
from .meshes import MeshTransform, SdfMesh, SdfSamples, load_mesh, sample_sdf, to_sdf_mesh
from .nerf_scene import NerfScene, SceneOptions, SceneSplit, load_nerf_scene
from .procedural_image import procedural_image
from .procedural_scene import write_procedural_scene
from .procedural_video import procedural_video
from .video import VideoTarget, load_video

__all__ = [
    "ALPHA_MODES", "AlphaMode", "ImageTarget", "SceneError", "load_image", "pixel_coords",
    "procedural_image", "sample_pixels", "procedural_video", "VideoTarget", "load_video",
    "NerfScene", "SceneOptions", "SceneSplit", "load_nerf_scene", "write_procedural_scene",
    "MeshTransform", "SdfMesh", "SdfSamples", "load_mesh", "sample_sdf", "to_sdf_mesh",
]
