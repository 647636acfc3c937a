"""Tasks: image, SDF and NeRF fitting behind one interface."""

from .base import Task
from .image import ImageTask, ImageTaskConfig
from .nerf import NerfTask, NerfTaskConfig

__all__ = ["ImageTask", "ImageTaskConfig", "NerfTask", "NerfTaskConfig", "Task"]
