// packed_gemm: the cache-blocked GEMM driver (BLIS/Goto) shared by the CPU
// micro-kernels: AVX2 (sgemm_avx2.hpp), AVX-512 and AVX512-BF16
// (gemm_avx512.hpp). It computes
//
//   C(M,N) = alpha * op(A)(M,K) * op(B)(K,N) + beta * C [+ bias(N) on every row]
//
// with A and B of the kernel's input type (float, or bf16 multiplied with
// float32 accumulation), C, alpha, beta and the bias float32, row-major,
// op(X) = X^T when its trans flag is set, leading dimensions in elements. The
// bias is added where each C tile is first written, so a Linear layer needs no
// separate pass over its output. Optionally a_sums[i] += sum_k op(A)(i,k),
// taken from the packed A panels: a Linear layer's bias gradient falls out of
// its weight-gradient product (A = dout^T) without a second pass over dout.
//
// Scheme: for each NC-wide column block of C and each KC-deep slice of K,
// op(B) is packed into NR-wide micro-panels; for each MC-tall row block, op(A)
// is packed into MR-tall micro-panels; the MR x NR micro-kernel sweeps the
// block with one B micro-panel resident in L1/L2 while A micro-panels stream
// from the packed A block held in L2. Packing lets all four transpose
// combinations share one kernel and turns strided reads into unit-stride ones.
// A packed element is a "word": one float, or for bf16 a pair of consecutive
// k (the operand of vdpbf16ps), so a panel holds ceil(kc / k_per_word) words
// per row.
//
// A Kernel supplies: in_t (the element of A and B), word_t, mr, nr,
// k_per_word, the blocking constants, pack_a, pack_b, micro_kernel<to_c> and
// add_packed_row_sums (see sgemm_avx2.hpp's avx2_f32 for the reference).
//
// Determinism: threads split only the M/N extent of C, never K (a deep-K
// product is cut into two K halves by its shape alone, see gemm_split_k). The
// K slices depend on K alone, and every tile (full or edge) runs the same
// kernel and the same C-update arithmetic, so each C element sees the same
// operation sequence whatever the thread count, the tile position or the
// thread that computes it: results are bitwise identical run to run and
// across thread counts.
//
// Threading: outside a parallel region the OpenMP team packs each B block
// together and then takes (A block x panel group) items dynamically; inside
// one (e.g. attention's per-head products) everything stays on the calling
// thread. Packing buffers are thread_local and only grow, so steady state does
// no allocation.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace vit::ops::detail::packed_gemm {

template <class In, class Out = float>
struct operands {
  bool trans_a, trans_b;
  int64_t m, n, k;
  float alpha, beta;
  const In* a;
  int64_t lda;
  const In* b;
  int64_t ldb;
  Out* c;
  int64_t ldc;
  const float* bias;  // (n), or null
  float* a_sums;      // (m), or null
};

// 64-byte aligned scratch that only grows, so repeated calls never allocate.
template <class T = float>
class aligned_buffer {
 public:
  aligned_buffer() = default;
  aligned_buffer(const aligned_buffer&) = delete;
  aligned_buffer& operator=(const aligned_buffer&) = delete;
  ~aligned_buffer() { release(); }

  T* reserve(std::size_t count) {
    if (count > capacity_) {
      release();
      const std::size_t grown = std::max(count, capacity_ + capacity_ / 2);
      data_ = static_cast<T*>(::operator new(grown * sizeof(T), std::align_val_t{64}));
      capacity_ = grown;
    }
    return data_;
  }

 private:
  void release() {
    if (data_ != nullptr) ::operator delete(data_, std::align_val_t{64});
    data_ = nullptr;
    capacity_ = 0;
  }
  T* data_ = nullptr;
  std::size_t capacity_ = 0;
};

// One set of buffers per kernel and thread.
template <class Kernel, int which>
inline aligned_buffer<typename Kernel::word_t>& pack_buffer() {
  thread_local aligned_buffer<typename Kernel::word_t> buffer;
  return buffer;
}
template <class Kernel>
inline aligned_buffer<float>& split_k_buffer() {
  thread_local aligned_buffer<float> buffer;
  return buffer;
}

inline int64_t round_up(int64_t x, int64_t step) { return (x + step - 1) / step * step; }

template <class Kernel>
inline int64_t words(int64_t kc) {
  return (kc + Kernel::k_per_word - 1) / Kernel::k_per_word;
}

// Equal K slices no deeper than kc_max (or one slice up to kc_single_max),
// whole words each; a function of K only, which is what keeps the summation
// order independent of how threads split C.
template <class Kernel>
inline int64_t k_slice(int64_t k) {
  if (k <= Kernel::kc_single_max) return k;
  const int64_t slices = (k + Kernel::kc_max - 1) / Kernel::kc_max;
  return round_up((k + slices - 1) / slices, Kernel::k_per_word);
}

// A block height for a K slice: MC x KC of A kept at what mc_max x kc_max
// takes, so deep single slices do not crowd C out of L2.
template <class Kernel>
inline int64_t a_block_rows(int64_t kc) {
  constexpr int64_t mr = Kernel::mr;
  return std::clamp(Kernel::mc_max * Kernel::kc_max / std::max<int64_t>(kc, 1) / mr * mr, mr,
                    Kernel::mc_max);
}

// C-update shared by every kernel's vector store and the scalar edge path, so
// that full and edge tiles round identically: the first K slice writes
// alpha*acc (+ beta*C unless beta is 0, in which case old C is never read)
// (+ bias where given, first slice only); later slices accumulate alpha*acc.
// With beta 0 the bias is the FMA's addend: bitwise what prefilling C with it
// and running beta = 1 gives.
inline float update_scalar(float acc, float c, float alpha, float beta, bool first, bool read_c,
                           const float* bias) {
  if (!read_c) return bias != nullptr ? std::fma(acc, alpha, *bias) : acc * alpha;
  float addend = first ? beta * c : c;
  if (bias != nullptr) addend += *bias;
  return std::fma(acc, alpha, addend);
}

// acc: raw MR x NR sums (row stride NR) of an edge tile.
template <class Kernel, class Out>
inline void merge_edge(const float* acc, int64_t rows, int64_t cols, Out* c, int64_t ldc,
                       float alpha, float beta, bool first, const float* bias) {
  const bool read_c = !(first && beta == 0.0f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j)
      c[r * ldc + j] = Out(update_scalar(acc[r * Kernel::nr + j], static_cast<float>(c[r * ldc + j]),
                                         alpha, beta, first, read_c, bias != nullptr ? bias + j : nullptr));
}

// Pulls the source of the next A block, op(A)[i0:i0+mc, p0:p0+kc], towards L2
// a slice at a time while the current block computes: its rows are short
// streams that the hardware prefetchers pick up too late, and without this
// the next pack_a stalls on L3/DRAM.
template <class In>
struct a_prefetcher {
  static constexpr int64_t line = 64 / sizeof(In);
  const In* base = nullptr;
  int64_t segments = 0, segment_elems = 0, stride = 0, next = 0, per_step = 0;

  template <class Out>
  a_prefetcher(const operands<In, Out>& op, int64_t i0, int64_t mc, int64_t p0, int64_t kc, int64_t steps) {
    if (mc <= 0) return;
    if (op.trans_a) {
      base = op.a + p0 * op.lda + i0;
      segments = kc;
      segment_elems = mc;
    } else {
      base = op.a + i0 * op.lda + p0;
      segments = mc;
      segment_elems = kc;
    }
    stride = op.lda;
    per_step = (segments + steps - 1) / steps;
  }

  void step() {
    const int64_t end = std::min(segments, next + per_step);
    for (; next < end; ++next) {
      const In* s = base + next * stride;
      for (int64_t f = 0; f < segment_elems; f += line) __builtin_prefetch(s + f, 0, 2);
      __builtin_prefetch(s + segment_elems - 1, 0, 2);
    }
  }
};

// Updates C[ic:ic+mc, jc+jr0 : jc+jr1] by one K slice [pc, pc+kc): packs the A
// block, then sweeps NR panels of the already packed B block (b_pack holds the
// jc block's panels). jr0/jr1 are offsets into the jc block. add_sums: this
// call's A block is the first packing of its (rows, K slice), so its row sums
// go to op.a_sums.
template <class Kernel, class Out>
inline void compute_block(const operands<typename Kernel::in_t, Out>& op, int64_t ic, int64_t mc,
                          int64_t jc, int64_t jr0, int64_t jr1, int64_t pc, int64_t kc,
                          const typename Kernel::word_t* b_pack, typename Kernel::word_t* a_pack,
                          a_prefetcher<typename Kernel::in_t>& prefetch, bool add_sums) {
  constexpr int64_t mr = Kernel::mr, nr = Kernel::nr;
  const int64_t kw = words<Kernel>(kc);
  Kernel::pack_a(op, ic, mc, pc, kc, a_pack);
  if (add_sums && op.a_sums != nullptr) Kernel::add_packed_row_sums(a_pack, mc, kw, op.a_sums + ic);
  const bool first = pc == 0;
  alignas(64) float edge[mr * nr];
  for (int64_t jr = jr0; jr < jr1; jr += nr) {
    prefetch.step();
    const int64_t cols = std::min(nr, jr1 - jr);
    const auto* b_panel = b_pack + jr * kw;
    const float* bias = first && op.bias != nullptr ? op.bias + jc + jr : nullptr;
    for (int64_t ir = 0; ir < mc; ir += mr) {
      const int64_t rows = std::min(mr, mc - ir);
      const auto* a_panel = a_pack + ir * kw;
      Out* c_tile = op.c + (ic + ir) * op.ldc + jc + jr;
      // Only full tiles inside this block: a neighbour's tile may belong to
      // another thread, and a write-intent prefetch would steal its line.
      const Out* c_next = nullptr;
      if (ir + 2 * mr <= mc && cols == nr) {
        c_next = c_tile + mr * op.ldc;
      } else if (ir + mr >= mc && jr + 2 * nr <= jr1 && mc >= mr) {
        c_next = op.c + ic * op.ldc + jc + jr + nr;
      }
      if (rows == mr && cols == nr) {
        Kernel::template micro_kernel<true>(kw, a_panel, b_panel, c_tile, op.ldc, c_next, op.alpha,
                                            op.beta, first, bias);
      } else {
        Kernel::template micro_kernel<false>(kw, a_panel, b_panel, edge, nr, c_next, op.alpha,
                                             op.beta, first, nullptr);
        merge_edge<Kernel, Out>(edge, rows, cols, c_tile, op.ldc, op.alpha, op.beta, first, bias);
      }
    }
  }
}

// The whole product on the calling thread.
template <class Kernel, class Out>
inline void gemm_serial(const operands<typename Kernel::in_t, Out>& op) {
  constexpr int64_t mr = Kernel::mr, nr = Kernel::nr;
  const int64_t kc_step = k_slice<Kernel>(op.k);
  const int64_t kw_step = words<Kernel>(kc_step);
  const int64_t nc_span = std::min(Kernel::nc_max, round_up(op.n, nr));
  const int64_t mc_step = a_block_rows<Kernel>(kc_step);
  const int64_t mc_span = std::min(mc_step, round_up(op.m, mr));
  auto* const b_pack = pack_buffer<Kernel, 0>().reserve(static_cast<std::size_t>(nc_span * kw_step));
  auto* const a_pack = pack_buffer<Kernel, 1>().reserve(
      static_cast<std::size_t>(mc_span * kw_step + Kernel::pack_slack));
  for (int64_t jc = 0; jc < op.n; jc += Kernel::nc_max) {
    const int64_t nc = std::min(Kernel::nc_max, op.n - jc);
    const int64_t n_panels = (nc + nr - 1) / nr;
    for (int64_t pc = 0; pc < op.k; pc += kc_step) {
      const int64_t kc = std::min(kc_step, op.k - pc);
      Kernel::pack_b(op, pc, kc, jc, nc, b_pack);
      for (int64_t ic = 0; ic < op.m; ic += mc_step) {
        const int64_t mc = std::min(mc_step, op.m - ic);
        a_prefetcher<typename Kernel::in_t> prefetch(op, ic + mc, std::min(mc_step, op.m - ic - mc),
                                                     pc, kc, n_panels);
        compute_block<Kernel, Out>(op, ic, mc, jc, 0, nc, pc, kc, b_pack, a_pack, prefetch, jc == 0);
      }
    }
  }
}

#ifdef _OPENMP
// The team shares one packed B block per (jc, K slice), packed cooperatively,
// and then deals out (A block x panel group) items dynamically, so a thread
// that is slowed down (or preempted) does not hold the others back. Which
// thread computes an item never changes its arithmetic, so this stays
// bitwise deterministic and independent of the thread count.
template <class Kernel, class Out>
inline void gemm_parallel(const operands<typename Kernel::in_t, Out>& op, int threads) {
  constexpr int64_t mr = Kernel::mr, nr = Kernel::nr;
  const int64_t kc_step = k_slice<Kernel>(op.k);
  const int64_t kw_step = words<Kernel>(kc_step);
  const int64_t nc_span = std::min(Kernel::nc_max, round_up(op.n, nr));
  // The caller's buffer; the caller is the team's master and uses no other.
  auto* const b_pack = pack_buffer<Kernel, 0>().reserve(static_cast<std::size_t>(nc_span * kw_step));
#pragma omp parallel num_threads(threads)
  {
    const int64_t team = omp_get_num_threads();
    // A whole number of A blocks per thread, at least two, of near-equal
    // height (2048 rows as 15 blocks of 144 would leave one thread 8 blocks
    // against 7); too few rows for that, and the panels are split into groups
    // too (costs repacking A per group).
    const int64_t mc_cap = a_block_rows<Kernel>(kc_step);
    const int64_t per_thread = std::max<int64_t>(2, (op.m + team * mc_cap - 1) / (team * mc_cap));
    const int64_t target_blocks = per_thread * team;
    const int64_t mc = std::max(mr, round_up((op.m + target_blocks - 1) / target_blocks, mr));
    const int64_t m_blocks = (op.m + mc - 1) / mc;
    auto* const a_pack = pack_buffer<Kernel, 1>().reserve(
        static_cast<std::size_t>(mc * kw_step + Kernel::pack_slack));
    for (int64_t jc = 0; jc < op.n; jc += Kernel::nc_max) {
      const int64_t nc = std::min(Kernel::nc_max, op.n - jc);
      const int64_t n_panels = (nc + nr - 1) / nr;
      const int64_t groups = std::min(n_panels, (2 * team + m_blocks - 1) / m_blocks);
      const int64_t items = m_blocks * groups;
      for (int64_t pc = 0; pc < op.k; pc += kc_step) {
        const int64_t kc = std::min(kc_step, op.k - pc);
        const int64_t kw = words<Kernel>(kc);
#pragma omp for schedule(static)
        for (int64_t p = 0; p < n_panels; ++p)
          Kernel::pack_b(op, pc, kc, jc + p * nr, std::min(nr, nc - p * nr), b_pack + p * nr * kw);
#pragma omp for schedule(dynamic, 1)
        for (int64_t item = 0; item < items; ++item) {
          const int64_t block = item / groups, group = item % groups;
          const int64_t ic = block * mc;
          const int64_t rows = std::min(mc, op.m - ic);
          const int64_t jr0 = group * n_panels / groups * nr;
          const int64_t jr1 = std::min(nc, (group + 1) * n_panels / groups * nr);
          // Threads take blocks roughly round-robin: warm the block this
          // thread is likely to get next, once its last group is under way.
          const int64_t next_ic = (block + team) * mc;
          const bool last_group = group == groups - 1;
          a_prefetcher<typename Kernel::in_t> prefetch(
              op, next_ic, last_group ? std::min(mc, op.m - next_ic) : 0, pc, kc,
              (jr1 - jr0 + nr - 1) / nr);
          compute_block<Kernel, Out>(op, ic, rows, jc, jr0, jr1, pc, kc, b_pack, a_pack, prefetch,
                                jc == 0 && group == 0);
        }
      }
    }
  }
}
#endif

// Deep K under a small C (a Linear layer's weight gradient: K is every token
// of the batch, C is out x in, e.g. 192 x 192 x 8320). Split over M/N, such a
// product gives the team a handful of thin items per K slice and two barriers
// per slice: 107 GFLOP/s (54% of peak) on 2 threads for 192 x 192 x 8320 (AVX2).
// Instead K is cut in two halves that run as independent serial products (no
// barrier until the end; 129 GFLOP/s on the same shape), the second into
// scratch that is then added to C. Whether and where K is cut depends on the
// shape alone, so results stay bitwise identical on any thread count.
inline constexpr int64_t split_k_min = 2048;
template <class In, class Out>
inline bool splits_k(const operands<In, Out>& op) {
  return op.k >= split_k_min && op.k >= 4 * std::max(op.m, op.n);
}

template <class Kernel>
inline void gemm_split_k(const operands<typename Kernel::in_t>& op, int threads) {
  constexpr int64_t nr = Kernel::nr;
  const int64_t k_low = op.k / 2 / nr * nr;  // nr is a whole number of words
  // Scratch: the upper half's C (m x n), then its row sums (m) when asked for.
  const int64_t sums_at = round_up(op.m * op.n, 16);
  float* const scratch = split_k_buffer<Kernel>().reserve(
      static_cast<std::size_t>(sums_at + (op.a_sums != nullptr ? op.m : 0)));
  operands<typename Kernel::in_t> low = op, high = op;
  low.k = k_low;
  high.k = op.k - k_low;
  high.a = op.a + (op.trans_a ? k_low * op.lda : k_low);
  high.b = op.b + (op.trans_b ? k_low : k_low * op.ldb);
  high.beta = 0.0f;
  high.c = scratch;
  high.ldc = op.n;
  high.bias = nullptr;
  high.a_sums = op.a_sums != nullptr ? scratch + sums_at : nullptr;
  if (high.a_sums != nullptr) std::fill_n(high.a_sums, op.m, 0.0f);
  const auto add_high_row = [&](int64_t i) {
    float* row = op.c + i * op.ldc;
    const float* add = scratch + i * op.n;
    for (int64_t j = 0; j < op.n; ++j) row[j] += add[j];
  };
#ifdef _OPENMP
  if (threads >= 4) {
    // Enough threads to share each half's C after all.
    gemm_parallel<Kernel, float>(low, threads);
    gemm_parallel<Kernel, float>(high, threads);
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t i = 0; i < op.m; ++i) add_high_row(i);
  } else if (threads > 1) {
#pragma omp parallel num_threads(2)
    {
#pragma omp for schedule(static, 1)
      for (int half = 0; half < 2; ++half) gemm_serial<Kernel, float>(half == 0 ? low : high);
#pragma omp for schedule(static)
      for (int64_t i = 0; i < op.m; ++i) add_high_row(i);
    }
  } else
#endif
  {
    (void)threads;
    gemm_serial<Kernel, float>(low);
    gemm_serial<Kernel, float>(high);
    for (int64_t i = 0; i < op.m; ++i) add_high_row(i);
  }
  if (op.a_sums != nullptr)
    for (int64_t i = 0; i < op.m; ++i) op.a_sums[i] += high.a_sums[i];
}

template <class In, class Out>
inline float elem_a(const operands<In, Out>& op, int64_t i, int64_t k) {
  return static_cast<float>(op.trans_a ? op.a[k * op.lda + i] : op.a[i * op.lda + k]);
}

// a_sums[i] += sum_k op(A)(i,k) by plain loops (where nothing is packed).
template <class In, class Out>
inline void add_row_sums_plain(const operands<In, Out>& op) {
  if (op.a_sums == nullptr) return;
  for (int64_t i = 0; i < op.m; ++i) {
    float t = 0.0f;
    for (int64_t k = 0; k < op.k; ++k) t += elem_a(op, i, k);
    op.a_sums[i] += t;
  }
}

// Plain loop for trivial sizes (see Kernel::small_work).
template <class In, class Out>
inline void gemm_small(const operands<In, Out>& op) {
  add_row_sums_plain(op);
  for (int64_t i = 0; i < op.m; ++i) {
    for (int64_t j = 0; j < op.n; ++j) {
      float acc = 0.0f;
      for (int64_t k = 0; k < op.k; ++k) {
        const float b = static_cast<float>(op.trans_b ? op.b[j * op.ldb + k] : op.b[k * op.ldb + j]);
        acc = std::fma(elem_a(op, i, k), b, acc);
      }
      Out& c = op.c[i * op.ldc + j];
      c = Out(update_scalar(acc, static_cast<float>(c), op.alpha, op.beta, true, op.beta != 0.0f,
                            op.bias != nullptr ? op.bias + j : nullptr));
    }
  }
}

// C = beta*C (+ bias): the whole result when K is 0 or alpha is 0.
template <class In, class Out>
inline void scale_c(const operands<In, Out>& op) {
  for (int64_t i = 0; i < op.m; ++i) {
    Out* row = op.c + i * op.ldc;
    for (int64_t j = 0; j < op.n; ++j) {
      const float scaled = op.beta == 0.0f ? 0.0f : op.beta * static_cast<float>(row[j]);
      row[j] = Out(op.bias != nullptr ? scaled + op.bias[j] : scaled);
    }
  }
}

/// Whether the product runs as one pass over C (one K slice, K not split):
/// then C is written once, and may be bf16 (rounded once from float32 sums).
template <class Kernel, class In, class Out>
inline bool single_pass(const operands<In, Out>& op) {
  return k_slice<Kernel>(op.k) >= op.k && !splits_k(op);
}

/// The product with Kernel. bias: N floats added to every row of C, or null.
/// a_sums: M floats that get the row sums of op(A) added (sum over K, alpha
/// not applied), or null. Out: float, or (only where single_pass) bf16.
template <class Kernel, class Out = float>
inline void run(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                const typename Kernel::in_t* A, int64_t lda, const typename Kernel::in_t* B,
                int64_t ldb, float beta, Out* C, int64_t ldc, const float* bias, float* a_sums) {
  if (M <= 0) return;
  const operands<typename Kernel::in_t, Out> op{trans_a, trans_b, M, N,  K,    alpha, beta, A,
                                                lda,     B,       ldb, C, ldc, bias,  a_sums};
  if (N <= 0 || K <= 0 || alpha == 0.0f) {
    add_row_sums_plain(op);
    if (N > 0) scale_c(op);
    return;
  }
  const int64_t work = M * N * K;
  if (work < Kernel::small_work) {
    gemm_small(op);
    return;
  }
  int threads = 1;
#ifdef _OPENMP
  if (work >= Kernel::thread_work && !omp_in_parallel()) threads = omp_get_max_threads();
#endif
  if constexpr (std::is_same_v<Out, float>) {
    if (splits_k(op)) {
      gemm_split_k<Kernel>(op, threads);
      return;
    }
  }
#ifdef _OPENMP
  if (threads > 1) {
    gemm_parallel<Kernel, Out>(op, threads);
    return;
  }
#endif
  gemm_serial<Kernel, Out>(op);
}

}  // namespace vit::ops::detail::packed_gemm
