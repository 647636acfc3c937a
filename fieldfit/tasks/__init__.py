"""Tasks: image, SDF and NeRF fitting behind one interface."""

from .base import Task
from .image import ImageTask, ImageTaskConfig

__all__ = ["ImageTask", "ImageTaskConfig", "Task"]
