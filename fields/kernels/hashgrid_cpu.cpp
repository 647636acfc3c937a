// Fused multiresolution hash-grid encoding for the CPU (forward and first-order backward).
//
// Same conventions as fieldfit.fields.hashgrid.hash_encode_torch (tiny-cuda-nn's): a level with
// scale s puts x in [0, 1] at pos = x * s + 0.5 (two roundings, no fused multiply-add: build
// with -ffp-contract=off), cell = floor(pos), d-linear weights from pos - cell, corners in binary
// order (dim 0 fastest), dense row-major index when res^d <= size, otherwise the xor-prime hash on
// uint32, both modulo the level size; table (n_entries, F) with levels at their offsets.
//
// Threads come from ATen's intra-op pool: at::parallel_for runs in parallel only when the
// extension is compiled with -fopenmp (otherwise ATen's header falls back to a serial loop); the
// library then needs libgomp.so.1, which resolves to the copy torch has already loaded, so
// torch.set_num_threads sizes our threads too.
//   forward:      points split over threads; each thread takes its points in blocks of
//                 kPointBlock (the block's output rows stay in cache) and sweeps a block one level
//                 at a time, all 2^d corners of a point in registers. The table rows of the point
//                 kPrefetch ahead are prefetched: the lookups are random, so latency dominates.
//   table grads:  one worker per thread, worker w owning levels w, w + T, w + 2T, ... (coarse,
//                 cheap levels and fine, hashed ones alike). Levels own disjoint slices of the
//                 table, so the scatter needs neither atomics nor per-thread copies of the table,
//                 and the summation order (point order) is the same for any thread count: runs
//                 are reproducible. Rows are prefetched kPrefetch points ahead.
//   input grads:  as the forward (only when asked for).
//   grad memory:  table gradients come from a small pool of reused buffers (GradientPool), zeroed
//                 by all threads: a fresh table-sized allocation costs a page fault per page.
// Measured on a 2-core AMD EPYC (3D, 16 levels x 2 features, 2^19 table, 2^18 points, 2
// threads): forward 150 -> 93 ms, table grads 132 -> 88 ms against the same kernels without
// blocks, interleaving and prefetching.

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/from_blob.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

constexpr uint32_t kPrimes[3] = {1u, 2654435761u, 805459861u};
constexpr int64_t kPointGrain = 1024;
constexpr int64_t kPointBlock = 4096;
constexpr int64_t kPrefetch = 16;

struct Level {
  double scale;
  int64_t resolution;
  int64_t size;
  int64_t offset;
  bool dense;
  bool power_of_two;  // hashed levels always are (their size is 2^log2_table)
};

std::vector<Level> make_levels(int64_t dims, at::ArrayRef<double> scales,
                               at::IntArrayRef resolutions, at::IntArrayRef sizes,
                               at::IntArrayRef offsets) {
  TORCH_CHECK(scales.size() == resolutions.size() && scales.size() == sizes.size() &&
                  scales.size() == offsets.size(),
              "hash_encode: per-level lists differ in length");
  std::vector<Level> levels;
  for (size_t l = 0; l < scales.size(); ++l) {
    int64_t cells = 1;
    for (int64_t d = 0; d < dims; ++d) cells *= resolutions[l];
    TORCH_CHECK(sizes[l] > 0, "hash_encode: level sizes must be positive");
    levels.push_back({scales[l], resolutions[l], sizes[l], offsets[l], cells <= sizes[l],
                      (sizes[l] & (sizes[l] - 1)) == 0});
  }
  return levels;
}

// Python-style (non-negative) modulo, as torch's % on int64. The division only for rows
// outside [0, m) (points outside the unit box): a 64-bit division per corner cost more than
// the dense levels' lookups.
inline int64_t floor_mod(int64_t a, int64_t m) {
  if (a >= 0 && a < m) return a;
  const int64_t r = a % m;
  return r < 0 ? r + m : r;
}

// Cell of x at one level: integer corner 0, fractional position, table row of every corner.
template <typename scalar_t, int D>
struct Cell {
  int64_t rows[1 << D];
  scalar_t frac[D];

  Cell(const scalar_t* x, const Level& lv) {
    int64_t cell[D];
    const scalar_t scale = static_cast<scalar_t>(lv.scale);
    for (int d = 0; d < D; ++d) {
      scalar_t pos = x[d] * scale;
      pos = pos + scalar_t(0.5);
      const scalar_t fl = std::floor(pos);
      frac[d] = pos - fl;
      cell[d] = static_cast<int64_t>(fl);
    }
    for (int c = 0; c < (1 << D); ++c) {
      int64_t index;
      if (lv.dense) {
        index = 0;
        int64_t stride = 1;
        for (int d = 0; d < D; ++d) {
          index += (cell[d] + ((c >> d) & 1)) * stride;
          stride *= lv.resolution;
        }
        index = floor_mod(index, lv.size);
      } else {
        uint32_t h = 0;
        for (int d = 0; d < D; ++d) {
          h ^= static_cast<uint32_t>(cell[d] + ((c >> d) & 1)) * kPrimes[d];
        }
        index = lv.power_of_two ? static_cast<int64_t>(h & static_cast<uint32_t>(lv.size - 1))
                                : static_cast<int64_t>(h % static_cast<uint64_t>(lv.size));
      }
      rows[c] = lv.offset + index;
    }
  }

  // prod over dims of frac (offset 1) or 1 - frac (offset 0), multiplied in dim order.
  scalar_t weight(int c) const {
    scalar_t w = (c & 1) ? frac[0] : scalar_t(1) - frac[0];
    for (int d = 1; d < D; ++d) w = w * (((c >> d) & 1) ? frac[d] : scalar_t(1) - frac[d]);
    return w;
  }

  // d weight / d frac[j].
  scalar_t weight_grad(int c, int j) const {
    scalar_t w = ((c >> j) & 1) ? scalar_t(1) : scalar_t(-1);
    for (int d = 0; d < D; ++d) {
      if (d != j) w = w * (((c >> d) & 1) ? frac[d] : scalar_t(1) - frac[d]);
    }
    return w;
  }
};

// Asks for the cache line at `address`. Inline assembly, because GCC 12 deletes a
// __builtin_prefetch whose address it reads back from a local array (dead-code elimination
// treats the builtin as free of side effects), which silently undid the prefetching here.
inline void prefetch(const void* address) {
#if defined(__x86_64__) || defined(__i386__)
  asm volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(address)));
#elif defined(__aarch64__)
  asm volatile("prfm pldl1keep, [%0]" : : "r"(address));
#else
  __builtin_prefetch(address);
#endif
}

// Prefetches the table rows of point p's cell at one level.
template <typename scalar_t, int D>
inline void prefetch_rows(const scalar_t* x, int64_t p, const Level& lv, const scalar_t* table,
                          int64_t n_features) {
  const Cell<scalar_t, D> cell(x + p * D, lv);
  for (int c = 0; c < (1 << D); ++c) prefetch(table + cell.rows[c] * n_features);
}

// Calls fn(p) for points [begin, end) at level lv in order, prefetching the table rows of the
// point kPrefetch ahead.
template <typename scalar_t, int D, typename Fn>
inline void sweep_level(const scalar_t* x, int64_t begin, int64_t end, const Level& lv,
                        const scalar_t* table, int64_t n_features, Fn&& fn) {
  for (int64_t p = begin; p < std::min(end, begin + kPrefetch); ++p) {
    prefetch_rows<scalar_t, D>(x, p, lv, table, n_features);
  }
  for (int64_t p = begin; p < end; ++p) {
    if (p + kPrefetch < end) prefetch_rows<scalar_t, D>(x, p + kPrefetch, lv, table, n_features);
    fn(p);
  }
}

// Calls fn(p, level) for points [begin, end) in blocks of kPointBlock, a block one level at a
// time (sweep_level).
template <typename scalar_t, int D, typename Fn>
inline void sweep_blocks(const scalar_t* x, int64_t begin, int64_t end,
                         const std::vector<Level>& levels, const scalar_t* table,
                         int64_t n_features, Fn&& fn) {
  for (int64_t start = begin; start < end; start += kPointBlock) {
    const int64_t stop = std::min(end, start + kPointBlock);
    for (size_t l = 0; l < levels.size(); ++l) {
      sweep_level<scalar_t, D>(x, start, stop, levels[l], table, n_features,
                               [&](int64_t p) { fn(p, l); });
    }
  }
}

// F > 0: the table's features per row, known at compile time, so a point's sums live in
// registers (through `out` and `table`, which the compiler must assume alias, every += was a
// store and a reload); F = 0: n_features at run time. Same operations in the same order.
template <typename scalar_t, int D, int F>
void forward_impl(const scalar_t* x, const scalar_t* table, scalar_t* out, int64_t n,
                  int64_t n_features, const std::vector<Level>& levels) {
  constexpr int kAcc = F > 0 ? F : 1;
  const int64_t nf = F > 0 ? F : n_features;
  const int64_t width = static_cast<int64_t>(levels.size()) * nf;
  at::parallel_for(0, n, kPointGrain, [&](int64_t begin, int64_t end) {
    sweep_blocks<scalar_t, D>(x, begin, end, levels, table, nf, [&](int64_t p, size_t l) {
      const Cell<scalar_t, D> cell(x + p * D, levels[l]);
      scalar_t* o = out + p * width + static_cast<int64_t>(l) * nf;
      if constexpr (F > 0) {
        scalar_t acc[kAcc] = {};
        for (int c = 0; c < (1 << D); ++c) {
          const scalar_t w = cell.weight(c);
          const scalar_t* row = table + cell.rows[c] * F;
          for (int f = 0; f < F; ++f) acc[f] += w * row[f];
        }
        for (int f = 0; f < F; ++f) o[f] = acc[f];
      } else {
        for (int64_t f = 0; f < nf; ++f) o[f] = 0;
        for (int c = 0; c < (1 << D); ++c) {
          const scalar_t w = cell.weight(c);
          const scalar_t* row = table + cell.rows[c] * nf;
          for (int64_t f = 0; f < nf; ++f) o[f] += w * row[f];
        }
      }
    });
  });
}

template <typename scalar_t, int D, int F>
void table_grad_impl(const scalar_t* grad_out, const scalar_t* x, scalar_t* grad_table,
                     int64_t n, int64_t n_features, const std::vector<Level>& levels) {
  constexpr int kAcc = F > 0 ? F : 1;
  const int64_t nf = F > 0 ? F : n_features;
  const int64_t width = static_cast<int64_t>(levels.size()) * nf;
  const int64_t n_levels = static_cast<int64_t>(levels.size());
  // small batches stay on one thread: waking the pool would cost more than the work
  const int64_t workers =
      n >= kPointGrain ? std::min<int64_t>(at::get_num_threads(), n_levels) : 1;
  at::parallel_for(0, workers, 1, [&](int64_t first, int64_t last) {
    for (int64_t worker = first; worker < last; ++worker) {
      for (int64_t l = worker; l < n_levels; l += workers) {
        sweep_level<scalar_t, D>(x, 0, n, levels[l], grad_table, nf, [&](int64_t p) {
          const Cell<scalar_t, D> cell(x + p * D, levels[l]);
          const scalar_t* g = grad_out + p * width + l * nf;
          if constexpr (F > 0) {
            scalar_t gl[kAcc];
            for (int f = 0; f < F; ++f) gl[f] = g[f];
            for (int c = 0; c < (1 << D); ++c) {
              const scalar_t w = cell.weight(c);
              scalar_t* row = grad_table + cell.rows[c] * F;
              for (int f = 0; f < F; ++f) row[f] += w * gl[f];
            }
          } else {
            for (int c = 0; c < (1 << D); ++c) {
              const scalar_t w = cell.weight(c);
              scalar_t* row = grad_table + cell.rows[c] * nf;
              for (int64_t f = 0; f < nf; ++f) row[f] += w * g[f];
            }
          }
        });
      }
    }
  });
}

// Calls fn(std::integral_constant<int, F>{}) with F = n_features for the common widths, else 0.
template <typename Fn>
void dispatch_features(int64_t n_features, Fn&& fn) {
  switch (n_features) {
    case 1: return fn(std::integral_constant<int, 1>{});
    case 2: return fn(std::integral_constant<int, 2>{});
    case 4: return fn(std::integral_constant<int, 4>{});
    case 8: return fn(std::integral_constant<int, 8>{});
    default: return fn(std::integral_constant<int, 0>{});
  }
}

template <typename scalar_t, int D>
void input_grad_impl(const scalar_t* grad_out, const scalar_t* x, const scalar_t* table,
                     scalar_t* grad_x, int64_t n, int64_t n_features,
                     const std::vector<Level>& levels) {
  const int64_t width = static_cast<int64_t>(levels.size()) * n_features;
  at::parallel_for(0, n, kPointGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin * D; i < end * D; ++i) grad_x[i] = 0;
    sweep_blocks<scalar_t, D>(x, begin, end, levels, table, n_features, [&](int64_t p, size_t l) {
      const Cell<scalar_t, D> cell(x + p * D, levels[l]);
      const scalar_t* g = grad_out + p * width + static_cast<int64_t>(l) * n_features;
      scalar_t level_acc[D] = {};
      for (int c = 0; c < (1 << D); ++c) {
        const scalar_t* row = table + cell.rows[c] * n_features;
        scalar_t dot = 0;
        for (int64_t f = 0; f < n_features; ++f) dot += g[f] * row[f];
        for (int j = 0; j < D; ++j) level_acc[j] += cell.weight_grad(c, j) * dot;
      }
      const scalar_t scale = static_cast<scalar_t>(levels[l].scale);
      for (int j = 0; j < D; ++j) grad_x[p * D + j] += level_acc[j] * scale;
    });
  });
}

// Table gradients are as large as the table (tens of MB), and a training step makes one per
// call of the encoding. A fresh allocation of that size is new memory from the OS, and its
// first touch (one page fault per 4 KiB page) cost more than the gradient itself (18 ms for
// 48 MB on a 2-core EPYC). Buffers freed by autograd (an accumulated gradient, or the
// parameter's .grad when the optimiser drops it) come back here and are reused, zeroed again.
class GradientPool {
 public:
  static GradientPool& instance() {
    static GradientPool* pool = new GradientPool();  // never destroyed: tensors may outlive exit
    return *pool;
  }

  // A zero-filled (rows, cols) tensor with `options`, its memory from the pool.
  at::Tensor zeros(int64_t rows, int64_t cols, const at::TensorOptions& options) {
    const size_t bytes = static_cast<size_t>(rows * cols) * options.dtype().itemsize();
    void* data = take(bytes);
    char* bytes_ptr = static_cast<char*>(data);
    at::parallel_for(0, static_cast<int64_t>(bytes), int64_t{1} << 22, [&](int64_t b, int64_t e) {
      std::memset(bytes_ptr + b, 0, static_cast<size_t>(e - b));
    });
    return at::from_blob(
        data, {rows, cols}, [this, bytes](void* p) { give_back(p, bytes); }, options);
  }

 private:
  static constexpr size_t kKeep = 4;  // buffers kept for reuse (a step holds a few at once)

  void* take(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (size_t i = 0; i < free_.size(); ++i) {
        if (free_[i].second == bytes) {
          void* p = free_[i].first;
          free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(i));
          return p;
        }
      }
    }
    void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    TORCH_CHECK(p != nullptr, "hash_encode: out of memory for a table gradient of ", bytes,
                " bytes");
    return p;
  }

  void give_back(void* p, size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    free_.emplace_back(p, bytes);
    if (free_.size() > kKeep) {  // the oldest go back to the OS
      std::free(free_.front().first);
      free_.erase(free_.begin());
    }
  }

  std::mutex mutex_;
  std::vector<std::pair<void*, size_t>> free_;
};

void check_inputs(const at::Tensor& x, const at::Tensor& table) {
  TORCH_CHECK(x.device().is_cpu() && table.device().is_cpu(), "hash_encode: CPU tensors only");
  TORCH_CHECK(x.dim() == 2 && (x.size(1) == 2 || x.size(1) == 3), "hash_encode: x must be (n, 2|3)");
  TORCH_CHECK(table.dim() == 2, "hash_encode: table must be (n_entries, F)");
  TORCH_CHECK(x.scalar_type() == table.scalar_type(),
              "hash_encode: x and table must share one dtype");
}

// Calls fn(scalar_t{}, std::integral_constant<int, D>{}) for the dtype of `t` and D in {2, 3}.
template <typename Fn>
void dispatch(const at::Tensor& t, int64_t dims, Fn&& fn) {
  AT_DISPATCH_FLOATING_TYPES(t.scalar_type(), "hash_encode", [&] {
    if (dims == 2) {
      fn(scalar_t{}, std::integral_constant<int, 2>{});
    } else {
      fn(scalar_t{}, std::integral_constant<int, 3>{});
    }
  });
}

at::Tensor hash_encode_forward(const at::Tensor& x_in, const at::Tensor& table_in,
                               at::ArrayRef<double> scales, at::IntArrayRef resolutions,
                               at::IntArrayRef sizes, at::IntArrayRef offsets) {
  check_inputs(x_in, table_in);
  const at::Tensor x = x_in.contiguous();
  const at::Tensor table = table_in.contiguous();
  const int64_t dims = x.size(1), n = x.size(0), n_features = table.size(1);
  const auto levels = make_levels(dims, scales, resolutions, sizes, offsets);
  at::Tensor out = at::empty({n, static_cast<int64_t>(levels.size()) * n_features}, table.options());
  dispatch(table, dims, [&](auto scalar, auto dim) {
    using scalar_t = decltype(scalar);
    constexpr int D = decltype(dim)::value;
    dispatch_features(n_features, [&](auto features) {
      forward_impl<scalar_t, D, decltype(features)::value>(
          x.data_ptr<scalar_t>(), table.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), n,
          n_features, levels);
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> hash_encode_backward(
    const at::Tensor& grad_out_in, const at::Tensor& x_in, const at::Tensor& table_in,
    at::ArrayRef<double> scales, at::IntArrayRef resolutions, at::IntArrayRef sizes,
    at::IntArrayRef offsets, bool input_grad) {
  check_inputs(x_in, table_in);
  const at::Tensor x = x_in.contiguous();
  const at::Tensor table = table_in.contiguous();
  const at::Tensor grad_out = grad_out_in.to(table.scalar_type()).contiguous();
  const int64_t dims = x.size(1), n = x.size(0), n_features = table.size(1);
  const auto levels = make_levels(dims, scales, resolutions, sizes, offsets);
  TORCH_CHECK(grad_out.size(0) == n &&
                  grad_out.size(1) == static_cast<int64_t>(levels.size()) * n_features,
              "hash_encode: grad_out has the wrong shape");
  at::Tensor grad_table = GradientPool::instance().zeros(table.size(0), n_features,
                                                         table.options());
  at::Tensor grad_x = input_grad ? at::empty_like(x) : at::Tensor();
  dispatch(table, dims, [&](auto scalar, auto dim) {
    using scalar_t = decltype(scalar);
    constexpr int D = decltype(dim)::value;
    dispatch_features(n_features, [&](auto features) {
      table_grad_impl<scalar_t, D, decltype(features)::value>(
          grad_out.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), grad_table.data_ptr<scalar_t>(),
          n, n_features, levels);
    });
    if (input_grad) {
      input_grad_impl<scalar_t, D>(grad_out.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(),
                                   table.data_ptr<scalar_t>(), grad_x.data_ptr<scalar_t>(), n,
                                   n_features, levels);
    }
  });
  return {grad_table, grad_x};
}

}  // namespace

TORCH_LIBRARY(fieldfit_hashgrid, m) {
  m.def(
      "forward(Tensor x, Tensor table, float[] scales, int[] resolutions, int[] sizes, "
      "int[] offsets) -> Tensor",
      &hash_encode_forward);
  m.def(
      "backward(Tensor grad_out, Tensor x, Tensor table, float[] scales, int[] resolutions, "
      "int[] sizes, int[] offsets, bool input_grad) -> (Tensor, Tensor)",
      &hash_encode_backward);
}
