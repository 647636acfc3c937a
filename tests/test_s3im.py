"""S3IM against a straightforward per-window implementation, its properties, and its wiring into
the loss composition, the image task and the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from fieldfit.losses import S3IM, parse_loss
from fieldfit.losses.s3im import gaussian_taps
from fieldfit.scenes import ImageTarget, procedural_image

from fieldfit.cli import main
from fieldfit.tasks import ImageTask, ImageTaskConfig


def reference_s3im(pred, target, orders, kernel_size, stride, patch_height, sigma=1.5):
    """1 - SSIM written out: the orderings laid row by row into a zero-padded pseudo-image, then
    a Python loop over the strided windows with Gaussian-weighted moments per window."""
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    order = np.concatenate([np.asarray(o) for o in orders])
    n_channels, width = pred.shape[1], len(order) // patch_height
    pad = (kernel_size - 1) // 2

    def padded_image(values):
        image = np.zeros((n_channels, patch_height + 2 * pad, width + 2 * pad))
        for position, ray in enumerate(order):
            row, col = divmod(position, width)
            image[:, row + pad, col + pad] = values[ray]
        return image

    taps = np.array([math.exp(-((x - kernel_size // 2) ** 2) / (2 * sigma**2))
                     for x in range(kernel_size)])
    window = np.outer(taps, taps) / taps.sum() ** 2
    a, b = padded_image(pred), padded_image(target)
    c1, c2 = 0.01**2, 0.03**2
    scores = []
    for ch in range(n_channels):
        for top in range(0, a.shape[1] - kernel_size + 1, stride):
            for left in range(0, a.shape[2] - kernel_size + 1, stride):
                pa = a[ch, top:top + kernel_size, left:left + kernel_size]
                pb = b[ch, top:top + kernel_size, left:left + kernel_size]
                mu_a, mu_b = (window * pa).sum(), (window * pb).sum()
                var_a = (window * (pa - mu_a) ** 2).sum()
                var_b = (window * (pb - mu_b) ** 2).sum()
                cov = (window * (pa - mu_a) * (pb - mu_b)).sum()
                scores.append((2 * mu_a * mu_b + c1) * (2 * cov + c2)
                              / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)))
    return 1.0 - float(np.mean(scores))


def orderings(n, repeats, seed):
    """The documented draw: identity, then repeats - 1 randperm(n) from a generator."""
    g = torch.Generator().manual_seed(seed)
    return [torch.arange(n)] + [torch.randperm(n, generator=g) for _ in range(repeats - 1)]


def noisy_pair(n, channels):
    target = torch.rand(n, channels)
    pred = (target + 0.15 * torch.randn(n, channels)).clamp(0, 1)
    return pred, target


def test_authors_window_taps():
    # gaussian(4, 1.5) of the authors' ssim.py: centred on the third tap, so asymmetric.
    torch.testing.assert_close(gaussian_taps(4, 1.5).float(),
                               torch.tensor([0.136, 0.266, 0.332, 0.266]), atol=5e-4, rtol=0)


@pytest.mark.parametrize("n, channels, kernel_size, stride, repeats, patch_height", [
    (4096, 3, 4, 4, 10, 64),  # the paper's setting
    (96, 1, 4, 4, 4, 16),
    (96, 3, 3, 2, 5, 12),
])
def test_matches_per_window_reference(n, channels, kernel_size, stride, repeats, patch_height):
    pred, target = noisy_pair(n, channels)
    s3im = S3IM(kernel_size=kernel_size, stride=stride, repeats=repeats,
                patch_height=patch_height)
    got = s3im(pred, target, torch.Generator().manual_seed(7))
    want = reference_s3im(pred, target, orderings(n, repeats, 7), kernel_size, stride,
                          patch_height)
    assert 0.05 < want < 0.95  # a non-trivial score
    assert got.item() == pytest.approx(want, abs=2e-6)


def test_identical_inputs_score_zero_and_permutations_matter():
    pred, target = noisy_pair(320, 3)
    s3im = S3IM(patch_height=32)
    assert abs(s3im(target, target, torch.Generator().manual_seed(0)).item()) < 1e-6
    a = s3im(pred, target, torch.Generator().manual_seed(0))
    b = s3im(pred, target, torch.Generator().manual_seed(0))
    c = s3im(pred, target, torch.Generator().manual_seed(1))
    assert a.item() == b.item() and a.item() != c.item()


def test_gradients_match_finite_differences():
    pred, target = noisy_pair(16, 2)
    pred = pred.double().requires_grad_(True)
    s3im = S3IM(repeats=3, patch_height=4)

    def loss(p):
        return s3im(p, target.double(), torch.Generator().manual_seed(3))

    assert torch.autograd.gradcheck(loss, (pred,), fast_mode=True)
    loss(pred).backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_float32_gradients_finite_at_the_paper_setting():
    pred, target = noisy_pair(4096, 3)
    pred.requires_grad_(True)
    S3IM()(pred, target, torch.Generator().manual_seed(0)).backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_blurred_scores_worse_than_sharp_at_equal_mse():
    from kornia.filters import gaussian_blur2d

    image = procedural_image(64, 64)  # (64, 64, 3): 4096 pixels, the paper's batch
    blurred = gaussian_blur2d(image.permute(2, 0, 1)[None], (7, 7), (2.0, 2.0))[0]
    blurred = blurred.permute(1, 2, 0)
    mse_blur = torch.mean((blurred - image) ** 2)
    sharp = image + mse_blur.sqrt()  # a uniform brightness shift: all structure kept
    torch.testing.assert_close(torch.mean((sharp - image) ** 2), mse_blur)
    rays = torch.randperm(4096)  # the batch is a random sample of pixels
    score = {name: S3IM()(x.reshape(-1, 3)[rays], image.reshape(-1, 3)[rays],
                          torch.Generator().manual_seed(0)).item()
             for name, x in (("blurred", blurred), ("sharp", sharp))}
    assert score["blurred"] > 2 * score["sharp"], score


def test_non_tiling_batch_fails_when_the_task_is_built():
    with pytest.raises(ValueError, match=r"--batch-size 1000: .* multiple of 32 \(e\.g\. 992 or "
                                         r"1024\)"):
        parse_loss("mse+s3im", batch_size=1000)
    with pytest.raises(ValueError, match="--batch-size 1000"):
        ImageTask(ImageTarget(procedural_image(16, 16)),
                  ImageTaskConfig(batch_size=1000, loss="mse+s3im"))
    with pytest.raises(ValueError, match="--batch-size 100"):  # also checked on the call
        S3IM()(torch.rand(100, 3), torch.rand(100, 3))
    with pytest.raises(ValueError, match="--batch-size 64: too small"):  # 1 column < window
        S3IM(repeats=1).check_batch(64)
    with pytest.raises(ValueError, match="--s3im-patch-height 1: lower than"):
        S3IM(patch_height=1)
    with pytest.raises(ValueError, match="--s3im-repeats 0"):
        parse_loss("s3im", options=ImageTaskConfig(s3im_repeats=0))
    with pytest.raises(ValueError, match="'s3im' is -1.0"):
        parse_loss("mse+s3im", weights={"s3im": -1.0})
    # the pointwise-only task does not care about S3IM's tiling
    ImageTask(ImageTarget(procedural_image(16, 16)), ImageTaskConfig(batch_size=1000))


def test_composite_adds_weighted_term_on_the_same_rays():
    pred, target = noisy_pair(640, 3)
    options = ImageTaskConfig(s3im_patch_height=32, s3im_repeats=5)
    loss = parse_loss("mse+s3im", weights={"s3im": 2.5}, options=options, batch_size=640)
    total, terms = loss(pred, target, torch.Generator().manual_seed(4))
    s3im = S3IM(repeats=5, patch_height=32)(pred, target, torch.Generator().manual_seed(4))
    torch.testing.assert_close(terms["s3im"], s3im)
    torch.testing.assert_close(total, torch.mean((pred - target) ** 2) + 2.5 * s3im)


def test_cli_logs_each_term(tmp_path, capsys):
    import imageio.v3 as iio

    png = tmp_path / "img.png"
    iio.imwrite(png, (procedural_image(16, 16).numpy() * 255).astype(np.uint8))
    base = ["image", str(png), "--loss", "mse+s3im", "--log2-table", "10", "--steps", "3",
            "--log-every", "1"]
    assert main([*base, "--batch-size", "256", "--s3im-weight", "2", "--out",
                 str(tmp_path / "run")]) == 0
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    train = [r for r in records if "loss" in r]
    assert len(train) == 3
    for r in train:
        assert r["loss"] == pytest.approx(r["mse"] + 2 * r["s3im"], rel=1e-5)
    assert main([*base, "--batch-size", "100", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("fieldfit: error: --batch-size 100:") and "multiple of 32" in err
