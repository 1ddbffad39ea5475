#pragma once
// Element-wise activations. Each saves nothing but its output y and differentiates through it:
//   relu        y = x <= 0 ? 0 : x             dx += y <= 0 ? 0 : dy
//   leaky_relu  y = x > 0 ? x : slope * x      dx += dy * (y > 0 ? 1 : slope)      (slope >= 0)
//   tanh        y = tanh(x)                    dx += dy * (1 - y^2)
//   sigmoid     y = 1 / (1 + exp(-x))          dx += dy * y * (1 - y)
// At x = 0 relu's derivative is taken as 0 (PyTorch's choice). NaN and inf go through as in
// PyTorch: relu(NaN) = NaN with its gradient passed on; a NaN upstream gradient at a unit that relu
// switched off gives 0 (a select), while leaky_relu multiplies it by the slope (see activation.cpp).
// relu and leaky_relu bend at x = 0: with a branch log on the tape they log each input's side,
// x > 0 or not (see tape.hpp).
// gelu, the erf form (PyTorch's default nn.GELU(), not its tanh approximation), saves its input x:
//   gelu        y = x Phi(x),  Phi(x) = (1 + erf(x / sqrt 2)) / 2
//               dx += dy * (Phi(x) + x phi(x)),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
// gelu(NaN) = NaN, gelu(inf) = inf, gelu(-inf) = -inf * 0 = NaN (as PyTorch's formula gives).
// In float gelu runs Eigen's vectorised erf (a rational approximation, a few ulp on [-4, 4], +-1
// beyond) and exp, ~25x faster than std::erf per element; double runs the plain loops below with
// std::erf and std::exp, and the tests compare the two.
#include <cstddef>

#include "mcnn/tape.hpp"

namespace mcnn {

template <class T>
Var<T> relu(const Var<T>& x);
/// relu of a temporary: writes y over x's storage when nothing else holds x (Var::take_value).
template <class T>
Var<T> relu(Var<T>&& x);
template <class T>
Var<T> leaky_relu(const Var<T>& x, T slope = T(0.01));
template <class T>
Var<T> tanh(const Var<T>& x);
template <class T>
Var<T> sigmoid(const Var<T>& x);
/// GELU, erf form: y = x Phi(x), any shape. Saves x.
template <class T>
Var<T> gelu(const Var<T>& x);

namespace activation {
/// gelu's maths one element at a time (std::erf, std::exp): y[i] = gelu(x[i]).
template <class T>
void gelu_plain(const T* x, T* y, std::ptrdiff_t n);
/// gx[i] += gy[i] * gelu'(x[i]), one element at a time.
template <class T>
void gelu_backward_plain(const T* x, const T* gy, T* gx, std::ptrdiff_t n);
/// The same two with Eigen's vectorised erf and exp (float's path in gelu()).
void gelu_fast(const float* x, float* y, std::ptrdiff_t n);
void gelu_backward_fast(const float* x, const float* gy, float* gx, std::ptrdiff_t n);
}  // namespace activation

}  // namespace mcnn
