#include "mcnn/data/dataset.hpp"

#include <cmath>
#include <cstring>

#include "shuffle.hpp"

namespace mcnn::data {

std::vector<std::string> Dataset::class_names() const {
    std::vector<std::string> names;
    for (int c = 0; c < classes(); ++c) names.push_back(std::to_string(c));
    return names;
}

// ---- TensorDataset -------------------------------------------------------------------------------

TensorDataset::TensorDataset(Tensor<float> examples, std::vector<int> labels, int classes, std::vector<std::string> class_names)
    : examples_(std::move(examples)), labels_(std::move(labels)), classes_(classes), names_(std::move(class_names)) {
    if (classes_ < 1) fail("TensorDataset: classes must be >= 1, got {}", classes_);
    if (examples_.rank() < 2) fail("TensorDataset: examples must be N x (example shape), got {}", examples_.shape().str());
    if (static_cast<std::size_t>(examples_.dim(0)) != labels_.size())
        fail("TensorDataset: {} examples ({}) but {} labels", examples_.dim(0), examples_.shape().str(), labels_.size());
    for (std::size_t i = 0; i < labels_.size(); ++i)
        if (labels_[i] < 0 || labels_[i] >= classes_)
            fail("TensorDataset: label {} of example {} is outside 0..{}", labels_[i], i, classes_ - 1);
    for (std::size_t i = 0; i < examples_.numel(); ++i)
        if (!std::isfinite(examples_[i]))
            fail("TensorDataset: example {} holds a non-finite value ({}) at flat index {}", i / (examples_.numel() / labels_.size()),
                 examples_[i], i);
    if (!names_.empty() && names_.size() != static_cast<std::size_t>(classes_))
        fail("TensorDataset: {} class names for {} classes", names_.size(), classes_);
}

Shape TensorDataset::example_shape() const {
    std::vector<int> dims = examples_.shape().dims();
    dims.erase(dims.begin());
    return Shape(dims);
}

std::vector<std::string> TensorDataset::class_names() const {
    return names_.empty() ? Dataset::class_names() : names_;
}

void TensorDataset::fill(const std::size_t* indices, std::size_t count, Tensor<float>& batch, std::vector<int>& labels) const {
    std::vector<int> dims = examples_.shape().dims();
    dims[0] = static_cast<int>(count);
    batch.resize(Shape(dims));
    labels.resize(count);
    const std::size_t per = examples_.numel() / labels_.size();
    for (std::size_t i = 0; i < count; ++i) {
        std::memcpy(batch.data() + i * per, examples_.data() + indices[i] * per, per * sizeof(float));
        labels[i] = labels_[indices[i]];
    }
}

// ---- BatchLoader ---------------------------------------------------------------------------------

BatchLoader::BatchLoader(const Dataset& data, int batch_size, bool shuffle, std::uint64_t seed, bool drop_last)
    : data_(&data), batch_size_(batch_size), shuffle_(shuffle), drop_last_(drop_last), seed_(seed) {
    if (batch_size < 1) fail("BatchLoader: batch size must be at least 1, got {}", batch_size);
    start_epoch(0);
}

std::size_t BatchLoader::batches_per_epoch() const {
    const std::size_t n = data_->size(), b = static_cast<std::size_t>(batch_size_);
    return drop_last_ ? n / b : (n + b - 1) / b;
}

void BatchLoader::start_epoch(int epoch) {
    if (epoch < 0) fail("BatchLoader::start_epoch: epoch must be >= 0, got {}", epoch);
    order_ = detail::iota(data_->size());
    if (shuffle_) {
        std::mt19937_64 engine(detail::mix(seed_ ^ detail::mix(0x5EED0000ull + static_cast<std::uint64_t>(epoch))));
        detail::shuffle(order_, engine);
    }
    position_ = 0;
    batch_start_ = 0;
}

std::span<const std::size_t> BatchLoader::advance() {
    const std::size_t n = order_.size(), b = static_cast<std::size_t>(batch_size_);
    if (position_ >= n) return {};
    const std::size_t count = std::min(b, n - position_);
    if (drop_last_ && count < b) {
        position_ = n;
        return {};
    }
    batch_start_ = position_;
    position_ += count;
    return {order_.data() + batch_start_, count};
}

bool BatchLoader::next(Tensor<float>& batch, std::vector<int>& labels) {
    const std::span<const std::size_t> indices = advance();
    if (indices.empty()) return false;
    data_->fill(indices.data(), indices.size(), batch, labels);
    return true;
}

Subset::Subset(const Dataset& data, std::size_t begin, std::size_t end) : data_(&data), begin_(begin), end_(end) {
    if (begin > end || end > data.size())
        fail("Subset: examples [{}, {}) are not within the dataset's {}", begin, end, data.size());
}

void Subset::fill(const std::size_t* indices, std::size_t count, Tensor<float>& batch, std::vector<int>& labels) const {
    shifted_.resize(count);
    for (std::size_t i = 0; i < count; ++i) shifted_[i] = begin_ + indices[i];
    data_->fill(shifted_.data(), count, batch, labels);
}

}  // namespace mcnn::data
