"""Dense grid, tri-plane, NeuRBF, CAM and the decoder pieces against direct computations
written here: explicit loops over points, texels, kernels and layers."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from fieldfit.fields import (
    CAMConfig,
    ConcatConfig,
    DenseGridConfig,
    FieldConfig,
    FourierFeatureConfig,
    FrequencyConfig,
    HashGridConfig,
    MLPConfig,
    RBFConfig,
    TriPlaneConfig,
    direction_to_unit_square,
    from_dict,
    to_dict,
)
from fieldfit.fields.grid_interp import level_resolution

pytestmark = pytest.mark.usefixtures("one_thread")


def grads(out, weight, *tensors):
    """Gradients of sum(out * weight) with respect to ``tensors``."""
    return torch.autograd.grad((out * weight).sum(), tensors)


# -- dense grid --------------------------------------------------------------------------
def dense_loop(x, table, layout):
    """Each level as an array of (res,)*d vertices; d-linear interpolation per point and
    corner, with the tiny-cuda-nn convention pos = x * scale + 0.5."""
    dims, n_feat = layout.dims, layout.n_features
    out = []
    for p in range(len(x)):
        row = []
        for spec in layout.levels:
            res = spec.resolution
            vertices = table[spec.offset:spec.offset + res**dims].reshape(*[res] * dims, n_feat)
            pos = [float(x[p, j]) * spec.scale + 0.5 for j in range(dims)]
            cell = [math.floor(v) for v in pos]
            acc = torch.zeros(n_feat, dtype=table.dtype)
            for corner in itertools.product((0, 1), repeat=dims):
                w = 1.0
                for j in range(dims):
                    frac = pos[j] - cell[j]
                    w *= frac if corner[j] else 1.0 - frac
                # vertex arrays are indexed [..., y, x] (dim 0 fastest in the flat table)
                acc = acc + w * vertices[tuple(cell[j] + corner[j] for j in reversed(range(dims)))]
            row.append(acc)
        out.append(torch.cat(row))
    return torch.stack(out)


@pytest.mark.parametrize("dims", [2, 3])
def test_dense_grid_matches_explicit_loop(dims):
    cfg = DenseGridConfig(n_levels=3, n_features=2, base_res=4, max_res=9 if dims == 3 else 20,
                          backend="torch")
    grid = cfg.build(dims).double()
    layout = grid.layout
    for spec in layout.levels:  # every vertex has its own entry: nothing hashed or shared
        assert spec.resolution == level_resolution(spec.scale)
        assert spec.resolution**dims <= spec.size < spec.resolution**dims + 8
    with torch.no_grad():
        grid.table.normal_()
    # tiny-cuda-nn's convention (its DenseGrid too) has res = ceil(scale) + 1 vertices, so
    # corners past the last vertex wrap around for x >= (ceil(scale) - 0.5) / scale: stay below
    top = min((math.ceil(s.scale) - 0.5) / s.scale for s in layout.levels)
    x = (torch.rand(9, dims, dtype=torch.float64) * top).requires_grad_(True)
    out = grid(x)
    want = dense_loop(x.detach(), grid.table.detach(), layout)
    torch.testing.assert_close(out, want)
    g = torch.randn_like(out)
    (got_table,) = grads(out, g, grid.table)
    table = grid.table.detach().clone().requires_grad_(True)
    (want_table,) = grads(dense_loop(x.detach(), table, layout), g, table)
    torch.testing.assert_close(got_table, want_table)


def test_dense_grid_rejects_oversized_levels():
    with pytest.raises(ValueError, match="dense"):
        DenseGridConfig(max_res=2048).build(3)


# -- tri-plane ---------------------------------------------------------------------------
def texel(plane, i, j, padding):
    """plane (F, R, R) at integer column i and row j, with the padding rule."""
    r = plane.shape[-1]
    if padding == "border":
        i, j = min(max(i, 0), r - 1), min(max(j, 0), r - 1)
    elif not (0 <= i < r and 0 <= j < r):
        return torch.zeros(plane.shape[0], dtype=plane.dtype)
    return plane[:, j, i]


def bilinear(plane, u, v, align_corners, padding):
    """Bilinear sample of plane (F, R, R) at (u, v) in [0, 1] (u along the width)."""
    r = plane.shape[-1]
    if align_corners:
        pu, pv = u * (r - 1), v * (r - 1)
    else:
        pu, pv = u * r - 0.5, v * r - 0.5
    i0, j0 = math.floor(pu.detach()), math.floor(pv.detach())
    fu, fv = pu - i0, pv - j0
    return ((1 - fu) * (1 - fv) * texel(plane, i0, j0, padding)
            + fu * (1 - fv) * texel(plane, i0 + 1, j0, padding)
            + (1 - fu) * fv * texel(plane, i0, j0 + 1, padding)
            + fu * fv * texel(plane, i0 + 1, j0 + 1, padding))


def triplane_loop(x, planes_per_level, aggregation, align_corners, padding):
    dims = x.shape[1]
    pairs = list(itertools.combinations(range(dims), 2))
    rows = []
    for p in range(len(x)):
        feats = []
        for planes in planes_per_level:
            samples = [bilinear(planes[k], x[p, a], x[p, b], align_corners, padding)
                       for k, (a, b) in enumerate(pairs)]
            if aggregation == "sum":
                feats.append(sum(samples))
            elif aggregation == "product":
                feats.append(math.prod(samples))
            else:
                feats.append(torch.cat(samples))
        rows.append(torch.cat(feats))
    return torch.stack(rows)


@pytest.mark.parametrize("dims,aggregation,align_corners,padding", [
    (3, "sum", False, "zeros"), (3, "product", True, "border"), (3, "concat", False, "border"),
    (2, "sum", True, "zeros"),
])
def test_triplane_matches_explicit_bilinear(dims, aggregation, align_corners, padding):
    cfg = TriPlaneConfig(resolution=8, n_levels=2, n_features=3, aggregation=aggregation,
                         init_std=1.0, init_mean=0.5, align_corners=align_corners,
                         padding=padding)
    enc = cfg.build(dims).double()
    x = torch.rand(7, dims, dtype=torch.float64)
    x[0] = 0.0  # borders, where the padding matters
    x[1] = 1.0
    x.requires_grad_(True)
    out = enc(x)
    assert out.shape == (7, enc.n_output_dims)
    want = triplane_loop(x.detach(), list(enc.planes), aggregation, align_corners, padding)
    torch.testing.assert_close(out, want)
    g = torch.randn_like(out)
    got = grads(out, g, x, *enc.planes)
    x2 = x.detach().clone().requires_grad_(True)
    planes = [p.detach().clone().requires_grad_(True) for p in enc.planes]
    want_grads = grads(triplane_loop(x2, planes, aggregation, align_corners, padding), g, x2,
                       *planes)
    # the two border points sit on kinks of the padding, where x has no derivative
    torch.testing.assert_close(got[0][2:], want_grads[0][2:])
    for a, b in zip(got[1:], want_grads[1:], strict=True):
        torch.testing.assert_close(a, b)


# -- NeuRBF ------------------------------------------------------------------------------
def random_rbf(kernel, dims, n_kernels, k, frequencies=(0.5, 64.0)):
    """An RBF encoding with random centres, shapes and weights (float64)."""
    cfg = RBFConfig(n_kernels=n_kernels, n_features=5, kernel=kernel, n_neighbours=k,
                    frequencies=frequencies)
    enc = cfg.build(dims).double()
    with torch.no_grad():
        enc.centres.uniform_(0, 1)
        enc.weights.normal_()
        enc.bias.normal_()
        if kernel == "ivq":  # random lower-triangular factors with a positive diagonal
            factor = torch.randn(n_kernels, dims, dims, dtype=torch.float64).tril() * 2
            factor.diagonal(dim1=-2, dim2=-1).copy_(torch.rand(n_kernels, dims) * 4 + 1)
            enc.shapes.copy_(factor[:, enc.tril_rows, enc.tril_cols])
        else:
            enc.shapes.uniform_(1.0, 3.0)
    return enc


def rbf_explicit(enc, x, neighbours):
    """Sum over each point's kernels ``neighbours[p]`` of sin(phi~ * m) * w + b, with the
    full precision matrix P = L L^T and a detached normaliser."""
    cfg, dims = enc.config, enc.dims
    rows = []
    for p in range(len(x)):
        phis = []
        for i in neighbours[p]:
            delta = x[p] - enc.centres[i]
            if cfg.kernel == "ivq":
                factor = torch.zeros(dims, dims, dtype=x.dtype)
                factor[enc.tril_rows, enc.tril_cols] = enc.shapes[i]
                precision = factor @ factor.T
                phis.append(1.0 / (1.0 + delta @ precision @ delta))
            else:
                phis.append(torch.prod(torch.clamp(1 - delta.abs() * enc.shapes[i, 0], 0, 1)))
        total = sum(phi.detach() for phi in phis) + 1e-8
        feature = enc.bias.clone()
        for i, phi in zip(neighbours[p], phis, strict=True):
            phi = phi / total
            basis = torch.sin(phi * enc.freqs) if cfg.frequencies else phi
            feature = feature + basis * enc.weights[i]
        rows.append(feature)
    return torch.stack(rows)


@pytest.mark.parametrize("kernel,dims", [("ivq", 2), ("ivq", 3), ("nlin", 2), ("nlin", 3)])
def test_rbf_with_all_kernels_matches_explicit_sum(kernel, dims):
    enc = random_rbf(kernel, dims, n_kernels=6, k=6)
    x = torch.rand(8, dims, dtype=torch.float64, requires_grad=True)
    out = enc(x)
    want = rbf_explicit(enc, x, [range(6)] * len(x))
    torch.testing.assert_close(out, want)
    g = torch.randn_like(out)
    got = grads(out, g, x, enc.weights, enc.bias)
    expected = grads(want, g, x, enc.weights, enc.bias)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("kernel", ["ivq", "nlin"])
def test_rbf_nearest_kernels_match_brute_force(kernel):
    enc = random_rbf(kernel, 2, n_kernels=40, k=4, frequencies=None)
    enc.config.chunk = 5  # several chunks
    x = torch.rand(13, 2, dtype=torch.float64)
    nearest = torch.cdist(x, enc.centres.detach()).topk(4, largest=False).indices
    torch.testing.assert_close(enc(x), rbf_explicit(enc, x, nearest.tolist()))


def test_rbf_fixed_point_table_and_reload():
    torch.manual_seed(3)
    points = torch.rand(500, 2)
    weights = torch.rand(500)
    enc = RBFConfig(n_kernels=30, n_features=4).build(2)
    enc.init_from_samples(points, weights, training_points=True)
    assert enc.search._fixed_keys is not None and len(enc.search._fixed_keys) == 500
    fresh = RBFConfig(n_kernels=30, n_features=4).build(2)
    fresh.load_state_dict(enc.state_dict())
    assert fresh.search._fixed_keys is None  # no table: every query goes to the tree
    mixed = torch.cat([points[:50], torch.rand(20, 2)])  # remembered and new points
    torch.testing.assert_close(enc(mixed), fresh(mixed))
    # loading other centres into ``enc`` invalidates its tree and its table
    other = RBFConfig(n_kernels=30, n_features=4).build(2)
    other.init_from_samples(torch.rand(500, 2), weights)
    enc.load_state_dict(other.state_dict())
    torch.testing.assert_close(enc(mixed), other(mixed))


def blob_image(size=64):
    """Four flat discs (radius 5 px) on black, and their centres in [0, 1]^2 as (x, y)."""
    centres = torch.tensor([[0.2, 0.25], [0.75, 0.2], [0.3, 0.8], [0.7, 0.7]])
    coords = (torch.arange(size) + 0.5) / size
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    image = torch.zeros(size, size, 3)
    for cx, cy in centres.tolist():
        image[((x - cx) ** 2 + (y - cy) ** 2).sqrt() < 5 / size] = 1.0
    return image, centres


def test_weighted_kmeans_centres_land_on_blobs():
    from fieldfit.fields import image_weights
    from fieldfit.scenes import pixel_coords

    image, blobs = blob_image()
    weights = image_weights(image)
    points = pixel_coords(64, 64)
    enc = RBFConfig(n_kernels=8, n_features=4).build(2)
    enc.init_from_samples(points, weights)
    dist = torch.cdist(enc.centres.detach(), blobs)  # (8 centres, 4 blobs)
    on_blob = dist.min(dim=1).values < 6 / 64  # within a blob's edge ring
    # Lloyd's local minima may strand a centre between blobs (its cluster then empties)
    assert on_blob.sum() >= 7
    assert set(dist[on_blob].argmin(dim=1).tolist()) == {0, 1, 2, 3}  # every blob is covered
    # kernels of on-blob centres cover part of a ring: far narrower than the blob spacing
    widths = torch.linalg.inv(enc_precisions(enc)).diagonal(dim1=-2, dim2=-1).sqrt()
    assert (widths[on_blob] < 8 / 64).all()


def enc_precisions(enc):
    factor = torch.zeros(enc.config.n_kernels, 2, 2)
    factor[:, enc.tril_rows, enc.tril_cols] = enc.shapes.detach()
    return factor @ factor.transpose(1, 2)


def test_image_weights_are_sobel_magnitude():
    from fieldfit.fields import image_weights

    image = torch.rand(9, 11, 3)
    sobel_x = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]) / 8  # kornia's normalised
    want = torch.zeros(9, 11)
    for y in range(1, 8):
        for x in range(1, 10):
            patch = image[y - 1:y + 2, x - 1:x + 2]  # (3, 3, C)
            gx = (patch * sobel_x[..., None]).sum((0, 1))
            gy = (patch * sobel_x.T[..., None]).sum((0, 1))
            want[y, x] = (gx.square().sum() + gy.square().sum()).sqrt()
    got = image_weights(image).reshape(9, 11)
    torch.testing.assert_close(got[1:-1, 1:-1], want[1:-1, 1:-1])


def test_kernel_shapes_from_one_gaussian_cluster():
    torch.manual_seed(1)
    cov = torch.tensor([[4e-3, 1.5e-3], [1.5e-3, 2e-3]], dtype=torch.float64)
    samples = torch.distributions.MultivariateNormal(torch.tensor([0.5, 0.5]).double(), cov)
    points = samples.sample((20000,)).float()
    enc = RBFConfig(n_kernels=1, n_features=2, n_neighbours=1, alpha=0.5).build(2)
    enc.init_from_samples(points, torch.ones(20000))
    torch.testing.assert_close(enc.centres[0].double(), torch.tensor([0.5, 0.5]).double(),
                               atol=3e-3, rtol=0)
    torch.testing.assert_close(enc_precisions(enc)[0].double(), torch.linalg.inv(cov / 0.5),
                               rtol=0.05, atol=0)
    # clipping: a degenerate cluster (all points on a line) gets the minimum width across it
    line = torch.stack([torch.linspace(0.2, 0.8, 100), torch.full((100,), 0.5)], dim=-1)
    enc = RBFConfig(n_kernels=1, n_features=2, n_neighbours=1, data_res=100).build(2)
    enc.init_from_samples(line, torch.ones(100))
    var = torch.linalg.inv(enc_precisions(enc)[0].double()).diagonal()
    torch.testing.assert_close(var[1], torch.tensor(1 / 200 / 100).double() ** 2, rtol=1e-3,
                               atol=0)
    assert var[0] == pytest.approx(0.1**2)  # 0.6^2/12/0.5 = 0.06 > 0.1^2: clipped


def test_flat_rotated_cluster_gets_clipped_width_across_its_plane():
    # three points span a tilted plane through the centre in 3-D: the covariance is singular
    # with no zero on its diagonal, so the std bound must hold along its principal directions
    from fieldfit.fields.rbf_init import clipped_precision_factors

    basis = torch.linalg.qr(torch.tensor([[1.0, 2, 3], [-2, 1, 0.5], [0.3, -1, 2]]).double()).Q
    cov = basis @ torch.diag(torch.tensor([4e-3, 1e-4, 0.0]).double()) @ basis.T
    factor = clipped_precision_factors(cov[None], 1e-6, 2e-3)[0]
    torch.testing.assert_close(factor @ factor.T, basis @ torch.diag(
        1 / torch.tensor([2e-3, 1e-4, 1e-6]).double()) @ basis.T, rtol=1e-7, atol=0)
    torch.testing.assert_close(torch.linalg.cholesky(factor @ factor.T), factor)  # lower, L L^T
    torch.manual_seed(0)  # 519 kernels on 256 points: many clusters of one to three points
    enc = RBFConfig(n_kernels=519, n_features=2, n_neighbours=8).build(3)
    enc.init_from_samples(torch.rand(256, 3), torch.rand(256))
    assert torch.isfinite(enc.shapes).all()


def test_nlin_width_from_cluster_spread():
    points = torch.tensor([[0.48, 0.5], [0.52, 0.5]])
    enc = RBFConfig(n_kernels=1, n_features=2, n_neighbours=1, kernel="nlin").build(2)
    enc.init_from_samples(points, torch.ones(2))
    # squared width = trace of cov / alpha * 4 = 0.02^2 / 0.5 * 4, so phi = 1/2 at half of it
    width = math.sqrt(0.02**2 / 0.5 * 4)
    torch.testing.assert_close(enc.shapes[0, 0], torch.tensor(1 / width), rtol=1e-5, atol=0)
    phi = enc.kernel_values(torch.tensor([[0.5 + width / 2, 0.5]]), torch.tensor([[0]]))
    torch.testing.assert_close(phi, torch.tensor([[0.5]]))


def test_mlp_under_mixed_precision_runs_bfloat16_and_returns_float32():
    from fieldfit.fields.mlp import mixed_precision_mlps

    torch.manual_seed(0)
    mlp = MLPConfig(width=64, n_hidden=2, output_activation="sigmoid").build(32, 3)
    x = torch.randn(500, 32, requires_grad=True)
    want = mlp(x)
    (grad_want,) = torch.autograd.grad(want.square().sum(), x)
    with mixed_precision_mlps(torch.bfloat16):
        got = mlp(x)
    (grad_got,) = torch.autograd.grad(got.square().sum(), x)
    assert got.dtype == grad_got.dtype == torch.float32
    assert not torch.equal(got, want)  # the products did run in bfloat16 (8-bit mantissa)
    torch.testing.assert_close(got, want, atol=1e-2, rtol=0)
    # bfloat16's 2^-9 relative rounding grows where the backward's sums of mixed-sign terms
    # cancel (and a few ReLUs flip near 0): 7% here; a wrong gradient would be ~100% off
    assert (grad_got - grad_want).norm() < 0.15 * grad_want.norm()
    assert torch.equal(mlp(x), want)  # float32 again after the block


# -- CAM ---------------------------------------------------------------------------------
def interp_grid(grid, c):
    """grid (C, R1, R0) at c = (c0, c1) in [0, 1]: bilinear, align_corners, border."""
    r1, r0 = grid.shape[1:]
    u = min(max(c[0], 0.0), 1.0) * (r0 - 1)
    v = min(max(c[1], 0.0), 1.0) * (r1 - 1)
    i0, j0 = min(math.floor(u), r0 - 2), min(math.floor(v), r1 - 2)
    fu, fv = u - i0, v - j0
    return ((1 - fu) * (1 - fv) * grid[:, j0, i0] + fu * (1 - fv) * grid[:, j0, i0 + 1]
            + (1 - fu) * fv * grid[:, j0 + 1, i0] + fu * fv * grid[:, j0 + 1, i0 + 1])


def cam_explicit(decoder, h, c, modulate=True, output=torch.sigmoid):
    """Per point: h <- act(gamma(c) * (z - mean) / sqrt(var + eps) + beta(c)), z = W h + b."""
    linears = [m for m in decoder.mlp.net if isinstance(m, torch.nn.Linear)]
    rows = []
    for p in range(len(h)):
        f = h[p]
        for i, linear in enumerate(linears[:-1]):
            z = linear.weight @ f + linear.bias
            z = (z - z.mean()) / torch.sqrt(z.var(unbiased=False) + decoder.config.eps)
            if modulate:
                z = interp_grid(decoder.gamma[i], c[p].tolist()) * z \
                    + interp_grid(decoder.beta[i], c[p].tolist())
            f = torch.relu(z)
        rows.append(output(linears[-1].weight @ f + linears[-1].bias))
    return torch.stack(rows)


@pytest.mark.parametrize("per_channel", [False, True])
def test_cam_layers_match_formula(per_channel):
    cfg = CAMConfig(mlp=MLPConfig(width=6, n_hidden=2, output_activation="sigmoid"),
                    grid_shape=(4, 3), per_channel=per_channel)
    dec = cfg.build(5, 2).double()
    h, c = torch.randn(7, 5, dtype=torch.float64), torch.rand(7, 2, dtype=torch.float64)
    c[0] = torch.tensor([1.0, 0.0])
    c[1] = torch.tensor([1.3, -0.2])  # outside: border padding
    # at init gamma = 1 and beta = 0: the plain normalised MLP
    torch.testing.assert_close(dec(h, c), cam_explicit(dec, h, c, modulate=False))
    with torch.no_grad():
        dec.gamma.normal_()
        dec.beta.normal_()
    out = dec(h, c)
    want = cam_explicit(dec, h, c)
    torch.testing.assert_close(out, want)
    g = torch.randn_like(out)
    params = [dec.gamma, dec.beta, *dec.mlp.parameters()]
    for a, b in zip(grads(out, g, *params), grads(want, g, *params), strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("grid_shape", [(5,), (3, 4, 2)])
def test_cam_1d_and_3d_grids_interpolate_linearly(grid_shape):
    """gamma = an affine function of c on the grid vertices is reproduced exactly inside."""
    dims = len(grid_shape)
    dec = CAMConfig(mlp=MLPConfig(width=4, n_hidden=1), grid_shape=grid_shape).build(3, 1)
    slope = torch.tensor([0.7, -0.4, 0.25][:dims])
    axes = [torch.linspace(0, 1, r) for r in grid_shape]
    vertices = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)  # (*grid_shape, dims)
    with torch.no_grad():  # stored (L, C, *reversed(grid_shape))
        dec.gamma.copy_((1 + vertices @ slope).permute(*reversed(range(dims)))[None, None])
    c = torch.rand(9, dims)
    gamma, beta = dec.modulation(c)
    torch.testing.assert_close(gamma[0, :, 0], 1 + c @ slope)
    torch.testing.assert_close(beta, torch.zeros_like(beta))


def test_cam_direction_coordinate_and_lr_groups():
    dirs = F.normalize(torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [-1.0, -1e-6, 0], [0, 0, 1.0]]),
                       dim=-1)
    uv = direction_to_unit_square(dirs)
    torch.testing.assert_close(uv, torch.tensor([[0.5, 0.5], [0.75, 0.5], [0.0, 0.5],
                                                 [0.5, 0.0]]), atol=1e-6, rtol=0)
    cfg = CAMConfig(mlp=MLPConfig(width=8, n_hidden=2), grid_shape=(10, 3),
                    coordinate="direction")
    field = FieldConfig(FrequencyConfig(n_frequencies=2), cfg).build(3, 4).double()
    with torch.no_grad():
        field.decoder.gamma.normal_()
        field.decoder.beta.normal_()
    x = torch.rand(5, 3, dtype=torch.float64)
    d = F.normalize(torch.randn(5, 3, dtype=torch.float64), dim=-1)
    # the frequency encoding of the point, modulated at the direction's unit-square coordinate
    want = cam_explicit(field.decoder, field.encoding(field.normalize(x)),
                        direction_to_unit_square(d), output=lambda z: z)
    torch.testing.assert_close(field(x, d), want)
    groups = {g.name: g for g in field.param_groups()}
    assert groups["modulation"].lr_mult == 10.0 and groups["modulation"].lr_key == "decoder"
    assert sum(p.numel() for p in groups["modulation"].params) == 2 * 2 * 10 * 3
    with pytest.raises(ValueError, match="coordinate"):
        CAMConfig(grid_shape=(4, 4, 4), coordinate="direction")


# -- decoders and features ---------------------------------------------------------------
def test_siren_and_sine_composition():
    mlp = MLPConfig(width=16, n_hidden=2, activation="sine", omega=30.0).build(5, 2)
    linears = [m for m in mlp.net if isinstance(m, torch.nn.Linear)]
    assert linears[0].weight.abs().max() <= 1 / 5
    assert linears[0].weight.abs().max() > 0.8 / 5  # drawn over the whole range
    bound = math.sqrt(6 / 16) / 30
    assert bound * 0.8 < linears[1].weight.abs().max() <= bound
    h = torch.randn(4, 5)
    z = torch.sin(30 * linears[0](h))
    z = torch.sin(30 * linears[1](z))
    torch.testing.assert_close(mlp(h), linears[2](z))

    msc = MLPConfig(width=8, n_hidden=2, sine_composition=(1.0, 1000.0)).build(3, 1)
    linears = [m for m in msc.net if isinstance(m, torch.nn.Linear)]
    m0 = torch.tensor([1000 ** (i / 7) for i in range(8)])
    z = linears[0](h[:, :3])
    z = torch.relu(linears[1](z + torch.sin(z * m0)))
    torch.testing.assert_close(msc(h[:, :3]), linears[2](z))


def test_fourier_features_formula():
    enc = FourierFeatureConfig(n_frequencies=4, sigma=3.0).build(2)
    x = torch.rand(5, 2)
    angles = 2 * math.pi * torch.stack([x @ b for b in enc.B], dim=-1)
    torch.testing.assert_close(enc(x), torch.cat([angles.cos(), angles.sin()], dim=-1))
    assert "B" in enc.state_dict()  # the random matrix is saved with the field


def test_concat_and_nested_configs_round_trip():
    cfg = FieldConfig(
        ConcatConfig((HashGridConfig(n_levels=2, log2_table=8), RBFConfig(n_kernels=8),
                      TriPlaneConfig(resolution=8), FourierFeatureConfig(n_frequencies=3))),
        CAMConfig(mlp=MLPConfig(width=8, sine_composition=(1.0, 10.0))),
        lr={"decoder": 1e-3})
    assert from_dict(FieldConfig, to_dict(cfg)) == cfg
    field = cfg.build(2, 3)
    assert field.encoding.n_output_dims == 4 + 32 + 16 + 6
    assert field(torch.rand(6, 2)).shape == (6, 3)
