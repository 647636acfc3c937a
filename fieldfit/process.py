"""Photos or a video -> a posed capture folder, through pycolmap (COLMAP's CPU SIFT features,
matching and incremental mapping).

The folder written holds ``images/`` (the photos or extracted frames), ``images_2``,
``images_4``, ``images_8`` (area-downscaled copies), ``sparse/0/`` (the COLMAP model) and a
nerfstudio-style ``transforms.json`` whose poses are normalised as :mod:`fieldfit.scenes.capture`
describes (the choice is written in ``fieldfit_normalization``). It is written into a temporary
folder and renamed at the end, so a failed run leaves nothing half-written.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from fieldfit.scenes.capture import normalize_capture
from fieldfit.scenes.colmap import frames_from_reconstruction, import_pycolmap

from .errors import UserError
from .io import write_image

log = logging.getLogger("fieldfit")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
DOWNSCALES = (2, 4, 8)
MIN_REGISTERED = 0.9
EXHAUSTIVE_UP_TO = 200  # images; beyond, exhaustive matching costs O(n^2) pairs


@dataclass
class SfmSummary:
    """What the mapping recovered."""

    registered: int
    total: int
    mean_reprojection_error: float
    """pixels"""
    points: int
    seconds: float

    def line(self) -> str:
        return (f"registered {self.registered}/{self.total} images, mean reprojection error "
                f"{self.mean_reprojection_error:.3f} px, {self.points} points "
                f"({self.seconds:.0f} s)")


def list_images(folder: Path) -> list[Path]:
    """The photos of ``folder`` (png/jpg), sorted; UserError when there are fewer than 2."""
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if len(images) < 2:
        raise UserError(f"{folder}: {len(images)} images (.png/.jpg) found; need at least 2")
    return images


def sharpness(frame: np.ndarray) -> float:
    """Variance of the Laplacian of the (H, W, 3) uint8 frame's grey levels: low = blurry."""
    grey = torch.from_numpy(frame[..., :3].astype(np.float32).mean(-1))[None, None]
    kernel = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]])[None, None]
    return float(F.conv2d(grey, kernel).var())


def extract_video_frames(video: Path, out: Path, n_frames: int) -> list[Path]:
    """Write ``n_frames`` PNG frames spread evenly over ``video``: the video is cut into
    ``n_frames`` equal windows and the sharpest frame of each (:func:`sharpness`) is kept,
    so blurry frames are dropped."""
    try:
        import imageio_ffmpeg
    except ImportError:
        raise UserError("video input needs imageio-ffmpeg: pip install 'fieldfit[video]'") from None
    try:
        total, _ = imageio_ffmpeg.count_frames_and_secs(str(video))
        reader = imageio_ffmpeg.read_frames(str(video))
        meta = next(reader)
    except (OSError, RuntimeError, StopIteration) as err:
        raise UserError(f"{video}: not a readable video ({' '.join(str(err).split())[:200]})"
                        ) from None
    if total < n_frames:
        raise UserError(f"{video}: {total} frames, fewer than --frames {n_frames}")
    width, height = meta["size"]
    window = total / n_frames
    best: dict[int, tuple[float, int, np.ndarray]] = {}
    for i, raw in enumerate(tqdm(reader, total=total, desc="reading video", unit="frame")):
        frame = np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3)
        slot = min(int(i / window), n_frames - 1)
        score = sharpness(frame[::2, ::2])
        if slot not in best or score > best[slot][0]:
            best[slot] = (score, i, frame.copy())
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for slot in sorted(best):
        _, index, frame = best[slot]
        paths.append(out / f"frame_{index:05d}.png")  # named by the video frame it comes from
        write_image(paths[-1], frame)
    return paths


def default_matching(n_images: int, video: bool) -> str:
    """sequential for video frames and large collections, else exhaustive."""
    return "sequential" if video or n_images > EXHAUSTIVE_UP_TO else "exhaustive"


def run_sfm(image_dir: Path, work: Path, matching: str, camera_model: str,
            single_camera: bool, vocab_tree: Path | None, threads: int):
    """Features, matches and incremental mapping; the largest reconstruction and its summary."""
    pycolmap = import_pycolmap()
    pycolmap.logging.minloglevel = 2  # COLMAP's per-step log: errors only
    n_images = len(list_images(image_dir))
    database = work / "database.db"
    device = pycolmap.Device.cpu
    start = time.perf_counter()
    bar = tqdm(total=3, desc="features", unit="stage")
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = camera_model
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.num_threads, extraction.use_gpu = threads, False
    mode = pycolmap.CameraMode.SINGLE if single_camera else pycolmap.CameraMode.PER_IMAGE
    pycolmap.extract_features(database, image_dir, camera_mode=mode, reader_options=reader,
                              extraction_options=extraction, device=device)
    bar.update()
    bar.set_description(f"{matching} matching")
    options = pycolmap.FeatureMatchingOptions()
    options.num_threads, options.use_gpu = threads, False
    if matching == "exhaustive":
        pycolmap.match_exhaustive(database, matching_options=options, device=device)
    elif matching == "sequential":
        pycolmap.match_sequential(database, matching_options=options, device=device)
    else:
        if vocab_tree is None or not vocab_tree.exists():
            raise UserError(f"--matching vocab needs --vocab-tree FILE (a COLMAP vocabulary "
                            f"tree, e.g. vocab_tree_flickr100K_words32K.bin); got {vocab_tree}")
        pairing = pycolmap.VocabTreePairingOptions()
        pairing.vocab_tree_path = str(vocab_tree)
        pycolmap.match_vocabtree(database, matching_options=options, pairing_options=pairing,
                                 device=device)
    bar.update()
    bar.set_description("mapping")
    mapping = pycolmap.IncrementalPipelineOptions()
    mapping.num_threads, mapping.random_seed = threads, 0
    registered = tqdm(total=n_images, desc="registered", unit="image", leave=False)
    models = pycolmap.incremental_mapping(database, image_dir, work / "sparse", options=mapping,
                                          next_image_callback=lambda: registered.update())
    registered.close()
    bar.update()
    bar.close()
    if not models:
        raise UserError(f"{image_dir}: too few feature matches to reconstruct any camera pair; "
                        "take photos with more overlap and texture, or try --matching "
                        "exhaustive")
    model = max(models.values(), key=lambda m: m.num_reg_images())
    summary = SfmSummary(model.num_reg_images(), n_images,
                         float(model.compute_mean_reprojection_error()), model.num_points3D(),
                         time.perf_counter() - start)
    return model, summary


def align_similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Umeyama's least-squares similarity (scale s, (3, 3) rotation R, (3,) t) with
    ``dst ~ s R src + t`` for (n, 3) point sets (to compare recovered camera centres with true
    ones, which differ by the gauge freedom of structure from motion)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(b.T @ a / len(src))
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ d @ vt
    scale = float((sig * np.diag(d)).sum() / (a**2).sum(1).mean())
    return scale, rotation, mu_d - scale * rotation @ mu_s


def _downscaled_copies(images: list[Path], out: Path) -> None:
    import imageio.v3 as iio

    for path in tqdm(images, desc="downscaled copies", unit="image"):
        image = torch.from_numpy(iio.imread(path)[..., :3].astype(np.float32) / 255)
        for factor in DOWNSCALES:
            h, w = image.shape[0] // factor, image.shape[1] // factor
            small = F.interpolate(image.permute(2, 0, 1)[None], size=(h, w), mode="area")
            (out / f"images_{factor}").mkdir(exist_ok=True)
            write_image(out / f"images_{factor}" / path.name, small[0].permute(1, 2, 0).numpy())


def transforms_dict(model, image_dir: Path) -> dict:
    """nerfstudio-style ``transforms.json`` content for ``model`` with normalised poses."""
    frames = frames_from_reconstruction(model, image_dir, "reconstruction")
    near_far = (np.array([f.near_far for f in frames])
                if all(f.near_far is not None for f in frames) else None)
    c2w, bounds, record = normalize_capture(np.stack([f.c2w for f in frames]), near_far)
    shared = len({(f.fx, f.fy, f.cx, f.cy, f.distortion, f.width) for f in frames}) == 1

    def intrinsics(f) -> dict:
        k1, k2, p1, p2 = f.distortion
        return {"fl_x": f.fx, "fl_y": f.fy, "cx": f.cx, "cy": f.cy, "w": f.width,
                "h": f.height, "k1": k1, "k2": k2, "p1": p1, "p2": p2}

    meta: dict = {"camera_model": "OPENCV", **(intrinsics(frames[0]) if shared else {}),
                  "fieldfit_normalization": record, "frames": []}
    for i, f in enumerate(frames):
        entry = {"file_path": f"images/{f.image.name}", "transform_matrix": c2w[i].tolist()}
        if not shared:
            entry.update(intrinsics(f))
        if bounds is not None:
            entry["fieldfit_near_far"] = bounds[i].tolist()
        meta["frames"].append(entry)
    return meta


def process(input_path: Path, out: Path, frames: int = 100, matching: str = "auto",
            camera_model: str = "SIMPLE_RADIAL", single_camera: bool = True,
            vocab_tree: Path | None = None, threads: int = 2,
            min_registered: float = MIN_REGISTERED) -> SfmSummary:
    """Run the whole pipeline of the module docstring from a folder of photos or a video."""
    if not input_path.exists():
        raise UserError(f"{input_path}: no such file or folder")
    if out.exists() and any(out.iterdir()):
        raise UserError(f"--out {out}: exists and is not empty; remove it or choose another")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    try:
        images_out = tmp / "images"
        if input_path.is_dir():
            images = list_images(input_path)
            images_out.mkdir()
            for path in images:
                shutil.copy2(path, images_out / path.name)
        else:
            images = extract_video_frames(input_path, images_out, frames)
        images = list_images(images_out)
        chosen = default_matching(len(images), not input_path.is_dir()) if matching == "auto" \
            else matching
        work = tmp / "colmap"
        (work / "sparse").mkdir(parents=True)
        model, summary = run_sfm(images_out, work, chosen, camera_model, single_camera,
                                 vocab_tree, threads)
        print(summary.line())
        if summary.registered < min_registered * summary.total:
            raise UserError(
                f"{input_path}: only {summary.registered} of {summary.total} images registered "
                f"(< {min_registered:.0%}); try --matching exhaustive, or take photos with more "
                "overlap (each spot seen from 3+ nearby views) and less blur; nothing written")
        (tmp / "sparse" / "0").mkdir(parents=True)
        model.write_binary(str(tmp / "sparse" / "0"))
        shutil.rmtree(work)
        meta = transforms_dict(model, images_out)
        registered = {Path(f["file_path"]).name for f in meta["frames"]}
        _downscaled_copies([p for p in images if p.name in registered], tmp)
        meta["fieldfit_process"] = {"input": str(input_path), "matching": chosen,
                                    "camera_model": camera_model, **summary.__dict__}
        (tmp / "transforms.json").write_text(json.dumps(meta, indent=1))
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    kind = meta["fieldfit_normalization"]["kind"]
    print(f"wrote {out} ({kind} capture; fit it with `fieldfit nerf {out}`)")
    return summary
