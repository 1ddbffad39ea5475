#include "mcnn/tensor.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <ostream>

#include <fmt/format.h>

namespace mcnn {

Shape::Shape(std::initializer_list<int> dims) : Shape(std::vector<int>(dims)) {}

Shape::Shape(const std::vector<int>& dims) {
    if (dims.size() > static_cast<std::size_t>(max_rank))
        fail("Shape: rank {} is more than the supported {}", dims.size(), max_rank);
    for (std::size_t i = 0; i < dims.size(); ++i) {
        if (dims[i] < 0) fail("Shape: dimension {} is negative ({})", i, dims[i]);
        dims_[i] = dims[i];
    }
    rank_ = static_cast<int>(dims.size());
}

int Shape::operator[](int i) const {
    const int j = i < 0 ? rank_ + i : i;
    if (j < 0 || j >= rank_) fail("Shape {}: no dimension {}", str(), i);
    return dims_[j];
}

std::size_t Shape::numel() const {
    std::size_t n = 1;
    for (int i = 0; i < rank_; ++i) n *= static_cast<std::size_t>(dims_[i]);
    return n;
}

std::string Shape::str() const { return fmt::format("[{}]", fmt::join(dims(), ", ")); }

std::ostream& operator<<(std::ostream& os, const Shape& shape) { return os << shape.str(); }

bool Shape::operator==(const Shape& other) const {
    return rank_ == other.rank_ && std::equal(dims_.begin(), dims_.begin() + rank_, other.dims_.begin());
}

template <class T>
Tensor<T>::Tensor(const Shape& shape, T fill_value) : shape_(shape) {
    data_.resize(shape.numel());  // not initialised by the allocator: fill() writes each element once
    fill(fill_value);
}

template <class T>
Tensor<T>::Tensor(const Shape& shape, std::vector<T> values) : shape_(shape), data_(values.begin(), values.end()) {
    if (values.size() != shape.numel())
        fail("Tensor: {} values given for shape {} ({} elements)", values.size(), shape.str(), shape.numel());
}

template <class T>
std::size_t Tensor<T>::offset(std::initializer_list<int> index) const {
    if (static_cast<int>(index.size()) != rank())
        fail("Tensor::at: {} indices for a tensor of shape {}", index.size(), shape_.str());
    std::size_t flat = 0;
    int d = 0;
    for (int i : index) {
        if (i < 0 || i >= shape_[d]) fail("Tensor::at: index {} out of range in dimension {} of shape {}", i, d, shape_.str());
        flat = flat * static_cast<std::size_t>(shape_[d]) + static_cast<std::size_t>(i);
        ++d;
    }
    return flat;
}

template <class T>
T& Tensor<T>::at(std::initializer_list<int> index) { return data_[offset(index)]; }
template <class T>
const T& Tensor<T>::at(std::initializer_list<int> index) const { return data_[offset(index)]; }

template <class T>
MatrixMap<T> Tensor<T>::matrix(Eigen::Index rows, Eigen::Index cols) {
    if (static_cast<std::size_t>(rows * cols) != numel())
        fail("Tensor::matrix: {}x{} view of a tensor of shape {}", rows, cols, shape_.str());
    return {data(), rows, cols};
}

template <class T>
ConstMatrixMap<T> Tensor<T>::matrix(Eigen::Index rows, Eigen::Index cols) const {
    if (static_cast<std::size_t>(rows * cols) != numel())
        fail("Tensor::matrix: {}x{} view of a tensor of shape {}", rows, cols, shape_.str());
    return {data(), rows, cols};
}

template <class T>
Tensor<T> Tensor<T>::reshaped(const Shape& shape) const {
    Tensor out = *this;
    out.reshape(shape);
    return out;
}

template <class T>
void Tensor<T>::reshape(const Shape& shape) {
    if (shape.numel() != numel())
        fail("Tensor::reshape: cannot view shape {} ({} elements) as {} ({} elements)", shape_.str(), numel(),
             shape.str(), shape.numel());
    shape_ = shape;
}

template <class T>
void Tensor<T>::resize(const Shape& shape) {
    shape_ = shape;
    data_.resize(shape.numel());
}

template <class T>
void Tensor<T>::fill(T value) {
    // +0 is all bits zero: memset, the fastest store loop the C library has
    if (value == T(0) && !std::signbit(value)) {
        if (!data_.empty()) std::memset(data_.data(), 0, data_.size() * sizeof(T));
        return;
    }
    std::fill(data_.begin(), data_.end(), value);
}

void require_same_shape(const char* op, const Shape& a, const Shape& b) {
    if (a != b) fail("{}: shapes differ: {} vs {}", op, a.str(), b.str());
}

void require_rank(const char* what, const Shape& shape, int rank) {
    if (shape.rank() != rank) fail("{}: expected a {}-D tensor, got shape {}", what, rank, shape.str());
}

template <class T>
std::ptrdiff_t first_non_finite(const Tensor<T>& t) {
    // Blocks tested without an early exit (a loop the compiler vectorises), then the block that
    // holds one searched element by element. |v| <= max is false exactly for NaN and +-inf.
    constexpr std::size_t block = 1024;
    const T* p = t.data();
    const std::size_t n = t.numel();
    for (std::size_t start = 0; start < n; start += block) {
        const std::size_t end = std::min(n, start + block);
        int bad = 0;
        for (std::size_t i = start; i < end; ++i) bad |= !(std::abs(p[i]) <= std::numeric_limits<T>::max());
        if (!bad) continue;
        for (std::size_t i = start; i < end; ++i)
            if (!std::isfinite(p[i])) return static_cast<std::ptrdiff_t>(i);
    }
    return -1;
}

template class Tensor<float>;
template class Tensor<double>;
template std::ptrdiff_t first_non_finite(const Tensor<float>&);
template std::ptrdiff_t first_non_finite(const Tensor<double>&);

}  // namespace mcnn
