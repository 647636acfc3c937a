"""Losses: pointwise terms and batch-level (structural) terms, composed by name."""

from .compose import BATCH_LOSSES, CompositeLoss, LossTerm, loss_names, parse_loss
from .pointwise import POINTWISE_LOSSES, huber, l1, mse, relative_l2
from .s3im import S3IM, S3IMOptions, strided_ssim
from .sdf import SDF_LOSSES, clipped_sdf_bce, eikonal, mape, normal_alignment

__all__ = [
    "BATCH_LOSSES", "CompositeLoss", "LossTerm", "POINTWISE_LOSSES", "S3IM", "S3IMOptions",
    "SDF_LOSSES", "clipped_sdf_bce", "eikonal", "mape", "normal_alignment",
    "huber", "l1", "loss_names", "mse", "parse_loss", "relative_l2", "strided_ssim",
]
