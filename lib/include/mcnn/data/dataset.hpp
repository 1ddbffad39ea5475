#pragma once
// Datasets behind one small interface, and mini-batches over any of them.
//
// A Dataset is `size()` labelled examples, each a float tensor of `example_shape()` (C x H x W for
// images) with a label below `classes()`. CIFAR-10 is one (CifarDataset, cifar10.hpp); a user's
// tensors in memory are another (TensorDataset); anything else needs only fill().
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "mcnn/tensor.hpp"

namespace mcnn::data {

class Dataset {
public:
    virtual ~Dataset() = default;
    /// Number of examples.
    virtual std::size_t size() const = 0;
    /// Shape of one example (a batch of B is B x example_shape()).
    virtual Shape example_shape() const = 0;
    /// Labels are 0 .. classes() - 1.
    virtual int classes() const = 0;
    /// A name per class (default: "0", "1", ...).
    virtual std::vector<std::string> class_names() const;
    /// Writes examples indices[0 .. count) into `batch` (count x example_shape(), storage reused)
    /// and their labels into `labels`. Indices are checked by the caller (BatchLoader) to be < size().
    virtual void fill(const std::size_t* indices, std::size_t count, Tensor<float>& batch, std::vector<int>& labels) const = 0;
};

/// Examples held in memory: `examples` is N x (example shape), `labels` N values below `classes`.
class TensorDataset : public Dataset {
public:
    /// Throws when the counts differ, a label is out of range, or an example is not finite.
    TensorDataset(Tensor<float> examples, std::vector<int> labels, int classes, std::vector<std::string> class_names = {});
    std::size_t size() const override { return labels_.size(); }
    Shape example_shape() const override;
    int classes() const override { return classes_; }
    std::vector<std::string> class_names() const override;
    void fill(const std::size_t* indices, std::size_t count, Tensor<float>& batch, std::vector<int>& labels) const override;

private:
    Tensor<float> examples_;
    std::vector<int> labels_;
    int classes_;
    std::vector<std::string> names_;
};

/// Examples [begin, end) of another dataset, which must outlive it (a process's share of an
/// evaluation split between processes).
class Subset : public Dataset {
public:
    Subset(const Dataset& data, std::size_t begin, std::size_t end);
    std::size_t size() const override { return end_ - begin_; }
    Shape example_shape() const override { return data_->example_shape(); }
    int classes() const override { return data_->classes(); }
    std::vector<std::string> class_names() const override { return data_->class_names(); }
    void fill(const std::size_t* indices, std::size_t count, Tensor<float>& batch, std::vector<int>& labels) const override;

private:
    const Dataset* data_;
    std::size_t begin_, end_;
    mutable std::vector<std::size_t> shifted_;
};

/// Mini-batches over a dataset. Each epoch visits every example once, in an order that is a
/// function of (seed, epoch) only, so a resumed run sees the same batches. The last batch may be
/// smaller (unless drop_last). The loader keeps a pointer to `data`, which must outlive it. It
/// starts on epoch 0; shuffle=false visits the examples in stored order every epoch.
class BatchLoader {
public:
    BatchLoader(const Dataset& data, int batch_size, bool shuffle, std::uint64_t seed, bool drop_last = false);
    std::size_t batches_per_epoch() const;
    std::size_t size() const { return data_->size(); }
    int batch_size() const { return batch_size_; }
    /// Prepares epoch `epoch` (0-based): the shuffled order is drawn from (seed, epoch).
    void start_epoch(int epoch);
    /// The next batch of the epoch into `batch` (B x example shape) and `labels`; false when the
    /// epoch is done.
    bool next(Tensor<float>& batch, std::vector<int>& labels);
    /// Moves to the next batch without filling it: the dataset indices of its examples, in batch
    /// order (empty when the epoch is done). Rows of it are filled with Dataset::fill (a process
    /// of a data-parallel run fills its share of the batch only).
    std::span<const std::size_t> advance();
    const std::vector<std::size_t>& order() const { return order_; }
    /// The dataset indices of the examples of the batch the last next() returned, in batch order
    /// (as many as the batch holds; for augmentation seeded per example).
    const std::size_t* batch_indices() const { return order_.data() + batch_start_; }

private:
    const Dataset* data_;
    int batch_size_;
    bool shuffle_, drop_last_;
    std::uint64_t seed_;
    std::vector<std::size_t> order_;
    std::size_t position_ = 0;
    std::size_t batch_start_ = 0;
};

}  // namespace mcnn::data
