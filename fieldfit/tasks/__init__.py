"""Tasks: image, video, SDF, NeRF and NeuS fitting behind one interface, in one registry."""

from .base import Task
from .image import ImageTask, ImageTaskConfig
from .nerf import NerfTask
from .neus import NeusTask
from .rays import NerfTaskConfig, RayTask
from .registry import TASKS, build_task, ray_task_class, task_from_checkpoint
from .sdf import SdfTask, SdfTaskConfig
from .video import VideoTask, VideoTaskConfig

__all__ = ["ImageTask", "ImageTaskConfig", "NerfTask", "NerfTaskConfig", "NeusTask", "RayTask",
           "SdfTask", "SdfTaskConfig", "TASKS", "Task", "build_task", "ray_task_class",
           "task_from_checkpoint", "VideoTask", "VideoTaskConfig"]
