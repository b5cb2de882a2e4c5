// Multi-head scaled dot-product attention in one call: q [batch, Tq, heads * d] and k, v
// [batch, Tk, heads * d], heads side by side (a prefix of the columns is a prefix of the heads,
// so a sliced projection's output is passed as it is, with its own head count). Per
// (sequence, head): S = scale * Q K^T, P = softmax of each row (causal: query i sees the keys
// j <= i + Tk - Tq, which the products skip beyond), O = P V. P is kept for the backward.
#pragma once
#include <cstdint>

namespace modelslice {

// probs: [batch, heads, Tq, Tk] (zeros where a causal query may not look); out: like q.
void attention_forward(int64_t batch, int64_t heads, int64_t Tq, int64_t Tk, int64_t d, float scale,
                       bool causal, const float* q, const float* k, const float* v, float* probs,
                       float* out);

// gq, gk, gv (each nullable) += the gradients of q, k and v given gout, the gradient of out.
// Each (sequence, head) is one thread's work, so the sums do not depend on the thread count.
void attention_backward(int64_t batch, int64_t heads, int64_t Tq, int64_t Tk, int64_t d,
                        float scale, bool causal, const float* q, const float* k, const float* v,
                        const float* probs, const float* gout, float* gq, float* gk, float* gv);

}  // namespace modelslice
