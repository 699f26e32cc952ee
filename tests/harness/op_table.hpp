// The table of ops that tests/harness/test_backend_ops.cpp runs on every
// backend the build has (ggml's test-backend-ops). A row is an op called
// through its public wrapper, written once as a generic expression over the
// inputs x[0], x[1], ...; the harness instantiates it for double, float and bf16.
// Adding an op means adding one row here.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <vit/vit.hpp>

namespace vit::harness {

/// How an input is drawn: normal values; rows that are probability
/// distributions over the last dim (soft targets); values in (0.5, 1.5).
enum class Draw { Normal, Distribution, Positive };

struct Input {
  Shape shape;
  Draw draw = Draw::Normal;
  bool grad = true;  // whether the op's gradient with respect to it is checked
};

template <class T>
using OpFn = std::function<Tensor<T>(const std::vector<Tensor<T>>&)>;

struct OpRow {
  std::string name;  // unique; becomes part of the test names (no ';' or '[')
  std::vector<Input> inputs;
  OpFn<double> f64;
  OpFn<float> f32;
  OpFn<bf16> b16;
  double atol = 2e-5, rtol = 2e-4;  // float32 against the float64 result
  // bf16 against the float64 result of the same (bf16-rounded) inputs: the
  // relative L2 error of every output and gradient (the bar).
  double bf16_rel_l2 = 1e-2;
};

// One generic body, instantiated for every element type.
#define VIT_OP_ROW(NAME, INPUTS, ...)                                                  \
  vit::harness::OpRow {                                                                \
    NAME, INPUTS, [](const std::vector<vit::TensorD>& x) -> vit::TensorD { return __VA_ARGS__; }, \
        [](const std::vector<vit::TensorF>& x) -> vit::TensorF { return __VA_ARGS__; },  \
        [](const std::vector<vit::TensorBF16>& x) -> vit::TensorBF16 { return __VA_ARGS__; } \
  }

/// A fixed generator per call, so a random op (dropout) draws the same mask on
/// every evaluation and every device: finite differences and device
/// comparisons see one function.
inline Generator& fixed_generator(uint64_t seed) {
  thread_local Generator g;
  g.set_state(seed, 0);
  return g;
}

inline std::vector<int64_t> labels_for(int64_t B, int64_t K) {
  std::vector<int64_t> y(B);
  for (int64_t b = 0; b < B; ++b) y[b] = (b * 5 + 3) % K;
  return y;
}

inline std::vector<OpRow> op_table() {
  using S = Shape;
  const Input N35_7{S{3, 5, 7}};
  std::vector<OpRow> rows = {
      VIT_OP_ROW("linear", (std::vector<Input>{N35_7, {S{6, 7}}, {S{6}}}), linear(x[0], x[1], x[2])),
      VIT_OP_ROW("linear_no_bias", (std::vector<Input>{{S{13, 9}}, {S{5, 9}}}), linear(x[0], x[1])),
      VIT_OP_ROW("matmul", (std::vector<Input>{{S{2, 3, 5}}, {S{5, 4}}}), matmul(x[0], x[1])),
      VIT_OP_ROW("matmul_batched", (std::vector<Input>{{S{2, 3, 5}}, {S{2, 5, 4}}}), matmul(x[0], x[1])),
      VIT_OP_ROW("patch_embed", (std::vector<Input>{{S{2, 3, 8, 12}}, {S{5, 3, 4, 4}}, {S{5}}}),
                 patch_embed(x[0], x[1], x[2])),
      VIT_OP_ROW("layer_norm", (std::vector<Input>{{S{3, 5, 24}}, {S{24}}, {S{24}}}),
                 layer_norm(x[0], x[1], x[2], 1e-6)),
      VIT_OP_ROW("layer_norm_odd", (std::vector<Input>{{S{7, 13}}, {S{13}}, {S{13}}}),
                 layer_norm(x[0], x[1], x[2], 1e-5)),
      VIT_OP_ROW("gelu", (std::vector<Input>{{S{3, 37}}}), gelu(x[0])),
      VIT_OP_ROW("gelu_tanh", (std::vector<Input>{{S{5, 11}}}), gelu(x[0], GeluApprox::Tanh)),
      VIT_OP_ROW("softmax", (std::vector<Input>{{S{4, 65}}}), softmax(x[0])),
      VIT_OP_ROW("softmax_odd", (std::vector<Input>{{S{3, 2, 7}}}), softmax(x[0])),
      VIT_OP_ROW("attention_d16", (std::vector<Input>{{S{2, 5, 96}}}), attention(x[0], 2)),
      VIT_OP_ROW("attention_d32", (std::vector<Input>{{S{1, 17, 96}}}), attention(x[0], 1)),
      VIT_OP_ROW("attention_d64", (std::vector<Input>{{S{2, 9, 384}}}), attention(x[0], 2)),
      // timm's attn_drop (p = 0.2, training) with a fixed mask: D = 16, 32, 64.
      VIT_OP_ROW("attention_drop_d16", (std::vector<Input>{{S{2, 6, 96}}}),
                 attention(x[0], 2, 0.2, true, fixed_generator(13))),
      VIT_OP_ROW("attention_drop_d32", (std::vector<Input>{{S{1, 17, 96}}}),
                 attention(x[0], 1, 0.2, true, fixed_generator(17))),
      VIT_OP_ROW("attention_drop_d64", (std::vector<Input>{{S{2, 9, 384}}}),
                 attention(x[0], 2, 0.2, true, fixed_generator(19))),
      VIT_OP_ROW("cross_entropy", (std::vector<Input>{{S{5, 7}}}), cross_entropy(x[0], labels_for(5, 7))),
      VIT_OP_ROW("cross_entropy_smoothing", (std::vector<Input>{{S{6, 10}}}),
                 cross_entropy(x[0], labels_for(6, 10), 0.1)),
      VIT_OP_ROW("cross_entropy_soft", (std::vector<Input>{{S{4, 9}}, {S{4, 9}, Draw::Distribution, false}}),
                 cross_entropy(x[0], x[1])),
      VIT_OP_ROW("add", (std::vector<Input>{N35_7, N35_7}), add(x[0], x[1])),
      VIT_OP_ROW("add_row_broadcast", (std::vector<Input>{N35_7, {S{7}}}), add(x[0], x[1])),
      VIT_OP_ROW("add_general_broadcast", (std::vector<Input>{{S{3, 1, 5}}, {S{4, 1}}}), add(x[0], x[1])),
      VIT_OP_ROW("sub", (std::vector<Input>{N35_7, {S{5, 1}}}), sub(x[0], x[1])),
      VIT_OP_ROW("mul", (std::vector<Input>{N35_7, N35_7}), mul(x[0], x[1])),
      VIT_OP_ROW("mul_broadcast", (std::vector<Input>{{S{2, 3, 4}}, {S{3, 1}}}), mul(x[0], x[1])),
      VIT_OP_ROW("scale", (std::vector<Input>{{S{3, 33}}}), scale(x[0], -0.75)),
      VIT_OP_ROW("tanh", (std::vector<Input>{{S{5, 13}}}), vit::tanh(x[0])),
      VIT_OP_ROW("sum", (std::vector<Input>{N35_7}), sum(x[0])),
      VIT_OP_ROW("mean", (std::vector<Input>{{S{4, 129}}}), mean(x[0])),
      VIT_OP_ROW("sum_dim", (std::vector<Input>{N35_7}), sum(x[0], 1)),
      VIT_OP_ROW("mean_dim_keepdim", (std::vector<Input>{N35_7}), mean(x[0], 2, true)),
      VIT_OP_ROW("permute", (std::vector<Input>{{S{2, 3, 4, 5}}}), permute(x[0], {2, 0, 3, 1})),
      VIT_OP_ROW("transpose", (std::vector<Input>{N35_7}), transpose(x[0], 1, 2)),
      VIT_OP_ROW("reshape", (std::vector<Input>{N35_7}), reshape(x[0], S{5, -1})),
      VIT_OP_ROW("expand", (std::vector<Input>{{S{1, 1, 7}}}), expand(x[0], S{3, 5, 7})),
      VIT_OP_ROW("expand_middle", (std::vector<Input>{{S{3, 1, 4}}}), expand(x[0], S{3, 5, 4})),
      VIT_OP_ROW("concat", (std::vector<Input>{{S{2, 1, 6}}, {S{2, 4, 6}}}), concat(std::vector{x[0], x[1]}, 1)),
      VIT_OP_ROW("select", (std::vector<Input>{N35_7}), select(x[0], 1, 0)),
      VIT_OP_ROW("select_last_dim", (std::vector<Input>{N35_7}), select(x[0], -1, 4)),
      VIT_OP_ROW("dropout", (std::vector<Input>{{S{4, 33}}}), dropout(x[0], 0.3, true, fixed_generator(7))),
      VIT_OP_ROW("drop_path", (std::vector<Input>{{S{6, 3, 5}}}), drop_path(x[0], 0.4, true, fixed_generator(11))),
  };
  // The loss-like rows sum many terms: their float error grows with the count.
  for (auto& r : rows)
    if (r.name.rfind("cross_entropy", 0) == 0 || r.name.rfind("attention", 0) == 0) r.atol = 5e-5;
  return rows;
}

}  // namespace vit::harness
