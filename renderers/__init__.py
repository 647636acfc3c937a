"""Renderers: cameras and rays, ray marching, volume rendering, mesh extraction."""

from .backends import Renderer, get_renderer, renderer_names
from .cameras import (
    Cameras,
    Rays,
    focal_from_fov,
    image_rays,
    look_at,
    make_cameras,
    orbit_path,
    pixel_rays,
    rays_to_ndc,
    spiral_path,
)
from .marching import (
    filter_visible,
    front_to_back,
    march_rays,
    ray_aabb_intersect,
)
from .occupancy import OccupancyConfig, OccupancyGrid
from .packed import RaySamples, accumulate_along_rays, exclusive_cumsum, segment_counts
from .render import MarchOptions, render_front_to_back, render_rays, render_samples
from .volume import (
    RenderOutput,
    composite,
    visible_samples,
    weights_from_alpha,
    weights_from_density,
)

__all__ = [
    "Cameras", "MarchOptions", "OccupancyConfig", "OccupancyGrid", "Rays", "RaySamples",
    "RenderOutput", "Renderer", "accumulate_along_rays", "composite", "exclusive_cumsum",
    "filter_visible", "focal_from_fov", "front_to_back", "get_renderer", "image_rays", "look_at",
    "make_cameras", "march_rays", "orbit_path", "pixel_rays", "ray_aabb_intersect",
    "rays_to_ndc", "render_front_to_back", "render_rays", "render_samples", "renderer_names",
    "segment_counts", "spiral_path", "visible_samples", "weights_from_alpha",
    "weights_from_density",
]
