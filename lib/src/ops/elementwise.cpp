#include "mcnn/ops/elementwise.hpp"

#include <cmath>

namespace mcnn {

template <class T>
Var<T> add(const Var<T>& a, const Var<T>& b) {
    require_same_shape("add", a.shape(), b.shape());
    Tensor<T> y(a.shape());
    y.array() = a.value().array() + b.value().array();
    return record<T>("add", std::move(y), {a, b}, [](const Tensor<T>&, const Tensor<T>& gy, auto g) {
        if (g[0]) g[0]->array() += gy.array();
        if (g[1]) g[1]->array() += gy.array();
    });
}

template <class T>
Var<T> weighted_sum(const Var<T>& x, const Tensor<T>& weights) {
    require_same_shape("weighted_sum (input vs weights)", x.shape(), weights.shape());
    Tensor<T> y(Shape{}, (x.value().array() * weights.array()).sum());
    return record<T>("weighted_sum", std::move(y), {x}, [w = weights](const Tensor<T>&, const Tensor<T>& gy, auto g) {
        if (g[0]) g[0]->array() += gy[0] * w.array();
    });
}

template <class T>
Var<T> scale(const Var<T>& x, double s) {
    if (!std::isfinite(s)) fail("scale: the factor must be finite, got {}", s);
    const T factor = static_cast<T>(s);
    Tensor<T> y(x.shape());
    y.array() = factor * x.value().array();
    return record<T>("scale", std::move(y), {x}, [factor](const Tensor<T>&, const Tensor<T>& gy, auto g) {
        if (g[0]) g[0]->array() += factor * gy.array();
    });
}

template Var<float> add(const Var<float>&, const Var<float>&);
template Var<double> add(const Var<double>&, const Var<double>&);
template Var<float> weighted_sum(const Var<float>&, const Tensor<float>&);
template Var<double> weighted_sum(const Var<double>&, const Tensor<double>&);
template Var<float> scale(const Var<float>&, double);
template Var<double> scale(const Var<double>&, double);

}  // namespace mcnn
