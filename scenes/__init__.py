"""Scene loaders and samplers: images, posed photo collections, meshes."""

from .images import ALPHA_MODES, ImageTarget, SceneError, load_image, pixel_coords, sample_pixels
from .procedural_image import procedural_image

__all__ = [
    "ALPHA_MODES", "ImageTarget", "SceneError", "load_image", "pixel_coords",
    "procedural_image", "sample_pixels",
]
