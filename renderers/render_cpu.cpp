// Fused ray-marching and volume-rendering kernels for the CPU (the renderer's ``cpp`` backend).
//
// Same rules as the PyTorch reference in renderers/marching.py and renderers/volume.py:
//   march:      interval k of a ray is [near + k * step, near + (k + 1) * step] (float32, no fused
//               multiply-add: build with -ffp-contract=off), kept when the cell holding its
//               midpoint is occupied; the per-ray lattice range comes from the caller.
//   rounds:     the front-to-back visit of render_front_to_back: each round takes ranks [lo, hi)
//               of every ray still alive; a ray's transmittance is the product of
//               max(1 - alpha, 1e-10) over its visited samples (double).
//   composite:  over each ray's visited samples, front to back: a sample is kept when the light
//               reaching it (over all visited samples) is >= early_stop_eps and alpha >= thre;
//               kept samples get w = T * alpha with T the product over kept samples only, as the
//               reference composites the kept samples alone. Backward:
//                 dL/dc_i = w_i g_rgb,
//                 dL/da_i = T_i gw_i - [1 - a_i > 1e-10] / (1 - a_i) * sum_{j > i kept} w_j gw_j,
//               gw_i = g_rgb . c_i + g_opacity + g_depth t_i (the clamp passes no gradient).
// Rays are independent: every kernel splits rays over ATen's intra-op threads (OpenMP), each
// ray's samples are walked by one thread, so results do not depend on the thread count.

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <tuple>
#include <vector>

namespace {

constexpr int64_t kRayGrain = 64;
constexpr double kMinPass = 1e-10;

void check_cpu(const at::Tensor& t, at::ScalarType type, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == type && t.is_contiguous(), "render_cpu: ",
              name, " must be a contiguous CPU tensor of ", at::toString(type));
}

// Exclusive prefix sum of per-ray counts; out has n + 1 entries.
std::vector<int64_t> offsets_of(const int64_t* counts, int64_t n) {
  std::vector<int64_t> out(n + 1, 0);
  for (int64_t r = 0; r < n; ++r) out[r + 1] = out[r] + counts[r];
  return out;
}

// origins, directions (n, 3); near, k_first (n,) float; counts (n,) int64 lattice samples per
// ray; aabb (6,); binaries (R^3,) bool; blocks[b] (C_b^3,) bool, C_b = ceil(R / factors[b]),
// true where any cell of its factors[b]^3 block is occupied (coarsest first).
// -> ray_indices, t_starts, t_ends of the occupied ones.
// A sample inside an empty block skips the largest such block: the samples whose midpoints lie
// before the ray leaves it, less a margin far above the float rounding of midpoints and cell
// indices, are dropped unseen (the reference drops them too); every other sample is tested as
// the reference.
std::tuple<at::Tensor, at::Tensor, at::Tensor> march(
    const at::Tensor& origins, const at::Tensor& directions, const at::Tensor& near,
    const at::Tensor& k_first, const at::Tensor& counts, double step, const at::Tensor& aabb,
    const at::Tensor& binaries, int64_t res, at::TensorList blocks, at::IntArrayRef factors) {
  check_cpu(origins, at::kFloat, "origins");
  check_cpu(directions, at::kFloat, "directions");
  check_cpu(near, at::kFloat, "near");
  check_cpu(k_first, at::kFloat, "k_first");
  check_cpu(counts, at::kLong, "counts");
  check_cpu(aabb, at::kFloat, "aabb");
  check_cpu(binaries, at::kBool, "binaries");
  TORCH_CHECK(blocks.size() == factors.size(), "render_cpu: one factor per block grid");
  const size_t n_levels = blocks.size();
  std::vector<const bool*> block_occ;
  std::vector<int64_t> block_res;
  for (size_t b = 0; b < n_levels; ++b) {
    check_cpu(blocks[b], at::kBool, "blocks");
    const int64_t f = factors[b], c = (res + f - 1) / f;
    TORCH_CHECK(f >= 1 && blocks[b].numel() == c * c * c,
                "render_cpu: blocks[b] must have ceil(R / factors[b])^3 cells");
    block_occ.push_back(blocks[b].data_ptr<bool>());
    block_res.push_back(c);
  }
  const int64_t n = origins.size(0);
  const float* o = origins.data_ptr<float>();
  const float* d = directions.data_ptr<float>();
  const float* nr = near.data_ptr<float>();
  const float* kf = k_first.data_ptr<float>();
  const int64_t* cnt = counts.data_ptr<int64_t>();
  const float* box = aabb.data_ptr<float>();
  const bool* occ = binaries.data_ptr<bool>();
  const float fstep = static_cast<float>(step);
  const double inv_step = 1.0 / step;
  double cell[3], margin = INFINITY;
  for (int a = 0; a < 3; ++a) {
    cell[a] = (static_cast<double>(box[a + 3]) - box[a]) / static_cast<double>(res);
    margin = std::min(margin, 1e-3 * cell[a]);
  }
  // one pass: each block of kRayGrain rays keeps its samples' starts in its own buffer
  const int64_t n_blocks = (n + kRayGrain - 1) / kRayGrain;
  std::vector<int64_t> kept(n, 0);
  std::vector<std::vector<float>> starts(n_blocks);
  auto visit = [&](int64_t r, std::vector<float>& out) {
    const float* orr = o + 3 * r;
    const float* dr = d + 3 * r;
    double inv_d[3];
    for (int a = 0; a < 3; ++a) inv_d[a] = dr[a] == 0.0f ? 0.0 : 1.0 / dr[a];
    const size_t before = out.size();
    for (int64_t j = 0; j < cnt[r];) {
      float k = kf[r] + static_cast<float>(j);
      float t0 = nr[r] + k * fstep;
      float t1 = t0 + fstep;
      float mid = 0.5f * (t0 + t1);
      int64_t ijk[3];
      bool inside = true;
      for (int a = 0; a < 3; ++a) {
        float unit = (orr[a] + mid * dr[a] - box[a]) / (box[a + 3] - box[a]);
        int64_t i = static_cast<int64_t>(std::floor(unit * static_cast<float>(res)));
        inside = inside && i >= 0 && i < res;
        ijk[a] = std::min<int64_t>(std::max<int64_t>(i, 0), res - 1);  // border cells
      }
      ++j;
      int64_t factor = 0;  // of the largest empty block holding the sample, 0 for none
      for (size_t b = 0; inside && b < n_levels; ++b) {
        const int64_t f = factors[b], c = block_res[b];
        if (!block_occ[b][((ijk[0] / f) * c + ijk[1] / f) * c + ijk[2] / f]) {
          factor = f;
          break;
        }
      }
      if (factor == 0) {
        if (occ[(ijk[0] * res + ijk[1]) * res + ijk[2]]) out.push_back(t0);
        continue;
      }
      double t_exit = INFINITY;  // where the ray leaves the empty block
      for (int a = 0; a < 3; ++a) {
        if (dr[a] == 0.0f) continue;
        int64_t face = dr[a] > 0.0f ? std::min((ijk[a] / factor + 1) * factor, res)
                                    : ijk[a] / factor * factor;
        t_exit = std::min(t_exit, (box[a] + face * cell[a] - orr[a]) * inv_d[a]);
      }
      t_exit -= margin + 1e-5 * (1.0 + std::fabs(t_exit));
      // the last sample whose midpoint nr + (kf + j' + 0.5) * step is before t_exit
      double last = std::floor((t_exit - nr[r]) * inv_step - kf[r] - 0.5);
      if (last >= static_cast<double>(j)) {
        j = std::min<int64_t>(static_cast<int64_t>(last) + 1, cnt[r]);
      }
    }
    kept[r] = static_cast<int64_t>(out.size() - before);
  };
  at::parallel_for(0, n_blocks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t blk = lo; blk < hi; ++blk) {
      for (int64_t r = blk * kRayGrain; r < std::min(n, (blk + 1) * kRayGrain); ++r) {
        visit(r, starts[blk]);
      }
    }
  });
  std::vector<int64_t> off = offsets_of(kept.data(), n);
  auto ray_indices = at::empty({off[n]}, origins.options().dtype(at::kLong));
  auto t_starts = at::empty({off[n]}, origins.options());
  auto t_ends = at::empty({off[n]}, origins.options());
  int64_t* ri = ray_indices.data_ptr<int64_t>();
  float* ts = t_starts.data_ptr<float>();
  float* te = t_ends.data_ptr<float>();
  at::parallel_for(0, n_blocks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t blk = lo; blk < hi; ++blk) {
      const int64_t first = blk * kRayGrain, last = std::min(n, first + kRayGrain);
      int64_t i = off[first];
      for (float t0 : starts[blk]) {
        ts[i] = t0;
        te[i] = t0 + fstep;
        ++i;
      }
      for (int64_t r = first; r < last; ++r) std::fill(ri + off[r], ri + off[r + 1], r);
    }
  });
  return {ray_indices, t_starts, t_ends};
}

// Samples of the next round: ranks [lo, hi) of each alive ray (starts, counts (n,) int64).
// -> (k,) packed sample indices, ray by ray, and (n + 1,) offsets of each ray's part.
std::tuple<at::Tensor, at::Tensor> round_select(const at::Tensor& starts, const at::Tensor& counts,
                                                const at::Tensor& alive, int64_t lo, int64_t hi) {
  check_cpu(starts, at::kLong, "starts");
  check_cpu(counts, at::kLong, "counts");
  check_cpu(alive, at::kBool, "alive");
  const int64_t n = starts.size(0);
  const int64_t* st = starts.data_ptr<int64_t>();
  const int64_t* cnt = counts.data_ptr<int64_t>();
  const bool* al = alive.data_ptr<bool>();
  std::vector<int64_t> take(n);
  for (int64_t r = 0; r < n; ++r)
    take[r] = al[r] ? std::max<int64_t>(std::min(cnt[r], hi) - lo, 0) : 0;
  std::vector<int64_t> off = offsets_of(take.data(), n);
  auto chosen = at::empty({off[n]}, starts.options());
  auto offsets = at::empty({n + 1}, starts.options());
  int64_t* ch = chosen.data_ptr<int64_t>();
  std::copy(off.begin(), off.end(), offsets.data_ptr<int64_t>());
  at::parallel_for(0, n, kRayGrain * 16, [&](int64_t a, int64_t b) {
    for (int64_t r = a; r < b; ++r)
      for (int64_t j = 0; j < take[r]; ++j) ch[off[r] + j] = st[r] + lo + j;
  });
  return {chosen, offsets};
}

// After a round: trans (n,) double *= prod max(1 - alpha, 1e-10) over each ray's chosen samples
// (alphas (k,) in the order of round_select); alive &= trans >= eps and counts > hi.
void round_advance(at::Tensor trans, at::Tensor alive, const at::Tensor& offsets,
                   const at::Tensor& alphas, const at::Tensor& counts, int64_t hi, double eps) {
  check_cpu(trans, at::kDouble, "trans");
  check_cpu(alive, at::kBool, "alive");
  check_cpu(offsets, at::kLong, "offsets");
  check_cpu(alphas, at::kFloat, "alphas");
  const int64_t n = trans.size(0);
  double* tr = trans.data_ptr<double>();
  bool* al = alive.data_ptr<bool>();
  const int64_t* off = offsets.data_ptr<int64_t>();
  const float* a = alphas.data_ptr<float>();
  const int64_t* cnt = counts.data_ptr<int64_t>();
  at::parallel_for(0, n, kRayGrain * 16, [&](int64_t lo, int64_t hi_r) {
    for (int64_t r = lo; r < hi_r; ++r) {
      if (!al[r]) continue;
      double t = tr[r];
      for (int64_t i = off[r]; i < off[r + 1]; ++i)
        t *= std::max(1.0 - static_cast<double>(a[i]), kMinPass);
      tr[r] = t;
      al[r] = t >= eps && cnt[r] > hi;
    }
  });
}

template <typename scalar_t>
struct Packed {
  const int64_t* starts;   // (n,) first sample of each ray
  const int64_t* counts;   // (n,) samples of each ray
  const int64_t* where;    // (n_samples,) row of each sample in alphas/rgbs, -1: not visited
  const scalar_t* t_mids;  // (n_samples,)
  const scalar_t* alphas;  // (m,)
  double eps, thre;

  // Calls visit(s, i, T) for each kept sample s (row i, T the kept transmittance before it).
  template <typename Visit>
  void kept(int64_t r, Visit&& visit) const {
    double t_all = 1.0, t_kept = 1.0;
    for (int64_t s = starts[r]; s < starts[r] + counts[r]; ++s) {
      const int64_t i = where[s];
      if (i < 0) break;  // the visited samples of a ray are a prefix of its samples
      const double ai = alphas[i];
      const bool keep = static_cast<scalar_t>(t_all) >= eps && ai >= thre;
      t_all *= std::max(1.0 - ai, kMinPass);
      if (!keep) continue;
      visit(s, i, t_kept);
      t_kept *= std::max(1.0 - ai, kMinPass);
    }
  }
};

void check_packed(const at::Tensor& alphas, const at::Tensor& rgbs, const at::Tensor& t_mids,
                  const at::Tensor& starts, const at::Tensor& counts, const at::Tensor& where) {
  TORCH_CHECK(alphas.scalar_type() == at::kFloat || alphas.scalar_type() == at::kDouble,
              "render_cpu: alphas must be float32 or float64");
  check_cpu(alphas, alphas.scalar_type(), "alphas");
  check_cpu(rgbs, alphas.scalar_type(), "rgbs");
  check_cpu(t_mids, alphas.scalar_type(), "t_mids");
  check_cpu(starts, at::kLong, "starts");
  check_cpu(counts, at::kLong, "counts");
  check_cpu(where, at::kLong, "where");
}

template <typename scalar_t>
Packed<scalar_t> packed(const at::Tensor& alphas, const at::Tensor& t_mids,
                        const at::Tensor& starts, const at::Tensor& counts,
                        const at::Tensor& where, double eps, double thre) {
  return {starts.data_ptr<int64_t>(), counts.data_ptr<int64_t>(), where.data_ptr<int64_t>(),
          t_mids.data_ptr<scalar_t>(), alphas.data_ptr<scalar_t>(), eps, thre};
}

// alphas (m,), rgbs (m, 3) of the visited samples in any order (``where`` maps each packed
// sample to its row). -> rgb (n, 3), opacity (n, 1), depth (n, 1), and kept (n,) samples per ray.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> composite_forward(
    const at::Tensor& alphas, const at::Tensor& rgbs, const at::Tensor& t_mids,
    const at::Tensor& starts, const at::Tensor& counts, const at::Tensor& where, double eps,
    double thre) {
  check_packed(alphas, rgbs, t_mids, starts, counts, where);
  const int64_t n = starts.size(0);
  auto rgb = at::zeros({n, 3}, alphas.options());
  auto opacity = at::zeros({n, 1}, alphas.options());
  auto depth = at::zeros({n, 1}, alphas.options());
  auto kept = at::zeros({n}, starts.options());
  AT_DISPATCH_FLOATING_TYPES(alphas.scalar_type(), "composite_forward", [&] {
    const auto p = packed<scalar_t>(alphas, t_mids, starts, counts, where, eps, thre);
    const scalar_t* c = rgbs.data_ptr<scalar_t>();
    scalar_t* out_rgb = rgb.data_ptr<scalar_t>();
    scalar_t* out_op = opacity.data_ptr<scalar_t>();
    scalar_t* out_d = depth.data_ptr<scalar_t>();
    int64_t* out_k = kept.data_ptr<int64_t>();
    at::parallel_for(0, n, kRayGrain, [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        double acc[5] = {0, 0, 0, 0, 0};
        int64_t k = 0;
        p.kept(r, [&](int64_t s, int64_t i, double t) {
          const double w = t * p.alphas[i];
          for (int ch = 0; ch < 3; ++ch) acc[ch] += w * c[3 * i + ch];
          acc[3] += w;
          acc[4] += w * p.t_mids[s];
          ++k;
        });
        for (int ch = 0; ch < 3; ++ch) out_rgb[3 * r + ch] = static_cast<scalar_t>(acc[ch]);
        out_op[r] = static_cast<scalar_t>(acc[3]);
        out_d[r] = static_cast<scalar_t>(acc[4]);
        out_k[r] = k;
      }
    });
  });
  return {rgb, opacity, depth, kept};
}

// Gradients of composite_forward's outputs -> (m,) alphas and (m, 3) rgbs gradients.
std::tuple<at::Tensor, at::Tensor> composite_backward(
    const at::Tensor& grad_rgb, const at::Tensor& grad_opacity, const at::Tensor& grad_depth,
    const at::Tensor& alphas, const at::Tensor& rgbs, const at::Tensor& t_mids,
    const at::Tensor& starts, const at::Tensor& counts, const at::Tensor& where, double eps,
    double thre) {
  check_packed(alphas, rgbs, t_mids, starts, counts, where);
  check_cpu(grad_rgb, alphas.scalar_type(), "grad_rgb");
  check_cpu(grad_opacity, alphas.scalar_type(), "grad_opacity");
  check_cpu(grad_depth, alphas.scalar_type(), "grad_depth");
  const int64_t n = starts.size(0);
  auto grad_a = at::zeros_like(alphas);
  auto grad_c = at::zeros_like(rgbs);
  AT_DISPATCH_FLOATING_TYPES(alphas.scalar_type(), "composite_backward", [&] {
    const auto p = packed<scalar_t>(alphas, t_mids, starts, counts, where, eps, thre);
    const scalar_t* c = rgbs.data_ptr<scalar_t>();
    const scalar_t* g_rgb = grad_rgb.data_ptr<scalar_t>();
    const scalar_t* g_op = grad_opacity.data_ptr<scalar_t>();
    const scalar_t* g_d = grad_depth.data_ptr<scalar_t>();
    scalar_t* ga = grad_a.data_ptr<scalar_t>();
    scalar_t* gc = grad_c.data_ptr<scalar_t>();
    at::parallel_for(0, n, kRayGrain, [&](int64_t lo, int64_t hi) {
      std::vector<int64_t> rows;
      std::vector<double> trans;
      for (int64_t r = lo; r < hi; ++r) {
        rows.clear();
        trans.clear();
        p.kept(r, [&](int64_t s, int64_t, double t) {
          rows.push_back(s);
          trans.push_back(t);
        });
        double suffix = 0.0;  // sum over later kept samples of w_j gw_j
        for (int64_t q = static_cast<int64_t>(rows.size()) - 1; q >= 0; --q) {
          const int64_t s = rows[q], i = p.where[s];
          const double ai = p.alphas[i], w = trans[q] * ai;
          double gw = static_cast<double>(g_op[r]) + static_cast<double>(g_d[r]) * p.t_mids[s];
          for (int ch = 0; ch < 3; ++ch) {
            gw += static_cast<double>(g_rgb[3 * r + ch]) * c[3 * i + ch];
            gc[3 * i + ch] = static_cast<scalar_t>(w * g_rgb[3 * r + ch]);
          }
          const double pass = 1.0 - ai;
          ga[i] = static_cast<scalar_t>(trans[q] * gw - (pass > kMinPass ? suffix / pass : 0.0));
          suffix += w * gw;
        }
      }
    });
  });
  return {grad_a, grad_c};
}

}  // namespace

TORCH_LIBRARY(fieldfit_render, m) {
  m.def(
      "march(Tensor origins, Tensor directions, Tensor near, Tensor k_first, Tensor counts, "
      "float step, Tensor aabb, Tensor binaries, int res, Tensor[] blocks, int[] factors) -> "
      "(Tensor, Tensor, Tensor)",
      &march);
  m.def(
      "round_select(Tensor starts, Tensor counts, Tensor alive, int lo, int hi) -> "
      "(Tensor, Tensor)",
      &round_select);
  m.def(
      "round_advance(Tensor(a!) trans, Tensor(b!) alive, Tensor offsets, Tensor alphas, "
      "Tensor counts, int hi, float eps) -> ()",
      &round_advance);
  m.def(
      "composite_forward(Tensor alphas, Tensor rgbs, Tensor t_mids, Tensor starts, "
      "Tensor counts, Tensor where, float eps, float thre) -> (Tensor, Tensor, Tensor, Tensor)",
      &composite_forward);
  m.def(
      "composite_backward(Tensor grad_rgb, Tensor grad_opacity, Tensor grad_depth, "
      "Tensor alphas, Tensor rgbs, Tensor t_mids, Tensor starts, Tensor counts, Tensor where, "
      "float eps, float thre) -> (Tensor, Tensor)",
      &composite_backward);
}
