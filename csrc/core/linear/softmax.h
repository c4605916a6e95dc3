// Multinomial logistic regression (softmax) over a float32 design matrix: the loss, its gradient
// and Hessian-vector products, the inner loop of a Newton-CG fit (pyimgcls/jobs/_softmax_head.py).
//
// Indices: X (n, d) holds the rows x_i; W (K, d) and b (K) are the weights, z_i = W x_i + b the K
// logits of row i; y (n) holds class indices in [0, K). Every array is C-contiguous.
// Sums are unscaled (no 1/n, no penalty: the caller adds those):
//   loss   = sum_i [logsumexp(z_i) - z_{i, y_i}]
//   grad_w = sum_i (p_i - e_{y_i}) x_i^T  (K, d),  grad_b = sum_i (p_i - e_{y_i})  (K)
//   with p_i = softmax(z_i), written to p (n, K) float32 for the Hessian products;
//   hv_w = sum_i r_i x_i^T,  hv_b = sum_i r_i,  where u_i = V x_i + vb and
//   r_i = p_i * (u_i - <p_i, u_i>)  (elementwise), i.e. the Hessian of the loss at p applied to (V, vb).
// Numerics: products and sums in float32 within a block of 64 rows (fused multiply-adds on the
// AVX2 path, so its last bits differ from the scalar path's), the blocks' sums added in double
// (moving them costs K d additions a block, under 1% of its products); the loss is summed in double. A NaN in X
// or the weights propagates to the results (the caller checks its inputs).
// Cost: 2 n d K multiply-adds a call; each block of rows is read from memory once (its second pass
// runs from cache). Threads split the rows (threads == 0: every usable core).
#pragma once

#include <cstdint>

namespace pyimgcls::core {

// Which inner loops run: the portable ones, AVX2 + FMA (only where cpu_has_avx2_fma()), or the
// best this CPU and build have (automatic).
enum class LinearKernel : int { automatic = 0, scalar = 1, avx2 = 2 };

// Whether `k` can run here (automatic and scalar always can).
bool linear_kernel_available(LinearKernel k);

// Returns the loss; fills grad_w (K * d), grad_b (K) and p (n * K). Throws std::invalid_argument
// naming the first label outside [0, K).
double softmax_loss_grad(const float* x, std::int64_t n, std::int64_t d, const float* w, const float* b,
                         std::int64_t k, const std::int64_t* y, double* grad_w, double* grad_b, float* p,
                         int threads, LinearKernel kernel);

// Fills hv_w (K * d) and hv_b (K).
void softmax_hessp(const float* x, std::int64_t n, std::int64_t d, const float* p, std::int64_t k, const float* v,
                   const float* vb, double* hv_w, double* hv_b, int threads, LinearKernel kernel);

}  // namespace pyimgcls::core
