#include "mcnn/ops/shape.hpp"

namespace mcnn {

template <class T>
Var<T> reshape(const Var<T>& x, const Shape& shape) {
    if (shape.numel() != x.value().numel())
        fail("reshape: cannot view {} ({} elements) as {} ({} elements)", x.shape().str(), x.value().numel(), shape.str(), shape.numel());
    return record<T>("reshape", x.value().reshaped(shape), {x}, [](const Tensor<T>&, const Tensor<T>& gy, auto g) {
        if (g[0]) g[0]->array() += gy.array();  // same elements in the same order
    });
}

template <class T>
Var<T> flatten(const Var<T>& x) {
    if (x.shape().rank() < 2) fail("flatten: input {} needs a batch dimension and at least one more", x.shape().str());
    const int batch = x.shape()[0];
    return reshape(x, Shape{batch, batch == 0 ? 0 : static_cast<int>(x.value().numel() / batch)});
}

template Var<float> reshape(const Var<float>&, const Shape&);
template Var<double> reshape(const Var<double>&, const Shape&);
template Var<float> flatten(const Var<float>&);
template Var<double> flatten(const Var<double>&);

}  // namespace mcnn
