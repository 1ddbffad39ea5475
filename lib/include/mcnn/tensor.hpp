#pragma once
// Tensor<T>: a dense, contiguous, row-major array of rank 0..4 (NCHW for images).
// Storage is owned (std::vector, aligned for SIMD); Eigen maps give the maths a matrix view.
#include <array>
#include <cstddef>
#include <initializer_list>
#include <iosfwd>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "mcnn/error.hpp"

namespace mcnn {

/// Shape of up to four dimensions, outermost first ({B, C, H, W} for an image batch).
class Shape {
public:
    static constexpr int max_rank = 4;

    Shape() = default;
    Shape(std::initializer_list<int> dims);
    explicit Shape(const std::vector<int>& dims);

    int rank() const { return rank_; }
    /// Size of dimension i; negative i counts from the end (-1 is the last).
    int operator[](int i) const;
    std::size_t numel() const;
    std::vector<int> dims() const { return {dims_.begin(), dims_.begin() + rank_}; }
    std::string str() const;  // "[4, 3, 32, 32]"

    bool operator==(const Shape& other) const;
    bool operator!=(const Shape& other) const { return !(*this == other); }

private:
    std::array<int, max_rank> dims_{};
    int rank_ = 0;
};

std::ostream& operator<<(std::ostream& os, const Shape& shape);

template <class T>
using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using MatrixMap = Eigen::Map<Matrix<T>, Eigen::Unaligned>;
template <class T>
using ConstMatrixMap = Eigen::Map<const Matrix<T>, Eigen::Unaligned>;
template <class T>
using VectorMap = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>, Eigen::Unaligned>;
template <class T>
using ConstVectorMap = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>, Eigen::Unaligned>;

/// The allocator of tensor storage: aligned for SIMD (Eigen's), and growing a buffer leaves the new
/// elements uninitialised instead of zeroing them: Tensor::resize is followed by a pass that writes
/// every element, so a zeroing pass before it would only cost a sweep over memory. Every other way
/// to make a tensor (a shape and a fill value, values, a copy) still initialises every element.
template <class T>
struct UninitializedAllocator : Eigen::aligned_allocator<T> {
    template <class U>
    struct rebind {
        using other = UninitializedAllocator<U>;
    };
    UninitializedAllocator() = default;
    template <class U>
    UninitializedAllocator(const UninitializedAllocator<U>&) noexcept {}
    /// Default-initialisation: for float and double, nothing is written.
    template <class U>
    void construct(U* p) noexcept(std::is_nothrow_default_constructible_v<U>) { ::new (static_cast<void*>(p)) U; }
    template <class U, class... Args>
    void construct(U* p, Args&&... args) { ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...); }
};

template <class T>
class Tensor {
public:
    Tensor() = default;
    /// A tensor of the given shape, filled with `fill` (zeros by default).
    explicit Tensor(const Shape& shape, T fill = T(0));
    /// A tensor of the given shape holding `values` (row-major); their count must match.
    Tensor(const Shape& shape, std::vector<T> values);

    const Shape& shape() const { return shape_; }
    int rank() const { return shape_.rank(); }
    int dim(int i) const { return shape_[i]; }
    std::size_t numel() const { return data_.size(); }
    bool empty() const { return data_.empty(); }

    T* data() { return data_.data(); }
    const T* data() const { return data_.data(); }
    T* begin() { return data_.data(); }
    T* end() { return data_.data() + data_.size(); }
    const T* begin() const { return data_.data(); }
    const T* end() const { return data_.data() + data_.size(); }

    T& operator[](std::size_t flat) { return data_[flat]; }
    const T& operator[](std::size_t flat) const { return data_[flat]; }
    /// Element access by index; the number of indices must equal the rank (checked).
    T& at(std::initializer_list<int> index);
    const T& at(std::initializer_list<int> index) const;

    /// Flat (numel x 1) array view, for element-wise maths.
    VectorMap<T> array() { return {data(), static_cast<Eigen::Index>(numel())}; }
    ConstVectorMap<T> array() const { return {data(), static_cast<Eigen::Index>(numel())}; }
    /// Row-major matrix view rows x cols; rows * cols must equal numel (checked).
    MatrixMap<T> matrix(Eigen::Index rows, Eigen::Index cols);
    ConstMatrixMap<T> matrix(Eigen::Index rows, Eigen::Index cols) const;
    /// Matrix view of the first dimension against all others (e.g. B x (C*H*W)).
    MatrixMap<T> matrix() { return matrix(outer(), static_cast<Eigen::Index>(numel()) / outer()); }
    ConstMatrixMap<T> matrix() const { return matrix(outer(), static_cast<Eigen::Index>(numel()) / outer()); }

    /// Same data, another shape with the same element count.
    Tensor reshaped(const Shape& shape) const;
    void reshape(const Shape& shape);
    /// Resize to `shape`, keeping storage when the count allows; contents unspecified (elements
    /// beyond the old count are not initialised: write every element after it).
    void resize(const Shape& shape);
    void fill(T value);
    void set_zero() { fill(T(0)); }

    /// Element-wise conversion to another scalar type (float <-> double).
    template <class U>
    Tensor<U> cast() const {
        Tensor<U> out(shape_);
        for (std::size_t i = 0; i < numel(); ++i) out[i] = static_cast<U>(data_[i]);
        return out;
    }

private:
    Eigen::Index outer() const { return shape_.rank() == 0 ? 1 : std::max(shape_[0], 1); }
    std::size_t offset(std::initializer_list<int> index) const;

    Shape shape_;
    std::vector<T, UninitializedAllocator<T>> data_;
};

/// Throws a clear error unless `a` and `b` have the same shape; `op` names the caller.
void require_same_shape(const char* op, const Shape& a, const Shape& b);
/// Throws unless `shape` has the given rank; `what` names the argument (e.g. "conv2d input").
void require_rank(const char* what, const Shape& shape, int rank);

/// Flat index of the first element of `t` that is NaN or infinite, or -1 when every one is finite.
template <class T>
std::ptrdiff_t first_non_finite(const Tensor<T>& t);

extern template class Tensor<float>;
extern template class Tensor<double>;

}  // namespace mcnn
