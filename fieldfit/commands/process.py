"""`fieldfit process`: photos or a video -> a posed capture folder (pycolmap)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro

from ..errors import UserError
from ..process import MIN_REGISTERED, SfmSummary, process


@dataclass
class ProcessCommand:
    """Recover camera poses of a folder of photos or a video with COLMAP (pycolmap, CPU) and
    write a capture folder (transforms.json, images/, images_2/4/8/, sparse/0/) that
    `fieldfit nerf` reads."""

    input: tyro.conf.Positional[Path]
    """folder of photos (.png/.jpg) or a video file"""
    out: Path = Path("data/capture")
    """capture folder to write (must not exist or be empty)"""
    frames: int = 100
    """video input: frames to keep (the sharpest of each of this many equal windows)"""
    matching: Literal["auto", "exhaustive", "sequential", "vocab"] = "auto"
    """feature matching: auto = exhaustive up to 200 photos, sequential for videos and more"""
    vocab_tree: Path | None = None
    """--matching vocab: a COLMAP vocabulary-tree file"""
    camera_model: Literal["SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL",
                          "OPENCV"] = "SIMPLE_RADIAL"
    """COLMAP camera model to estimate"""
    single_camera: bool = True
    """all photos come from one camera with one zoom (shared intrinsics)"""
    threads: int = 2
    """CPU threads for COLMAP"""
    min_registered: float = MIN_REGISTERED
    """fail (writing nothing) when fewer than this fraction of the images register"""
    debug: bool = False
    """show tracebacks"""

    def run(self) -> SfmSummary:
        if self.frames < 2 or self.threads < 1:
            raise UserError("--frames must be >= 2 and --threads >= 1")
        if not 0 < self.min_registered <= 1:
            raise UserError(f"--min-registered {self.min_registered}: must be in (0, 1]")
        return process(self.input, self.out, self.frames, self.matching, self.camera_model,
                       self.single_camera, self.vocab_tree, self.threads, self.min_registered)
