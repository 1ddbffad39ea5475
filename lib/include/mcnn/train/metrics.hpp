#pragma once
// Evaluation of a classifier on a dataset: mean loss, accuracy, per-class accuracy, confusion.
#include <string>
#include <vector>

#include "mcnn/data/dataset.hpp"
#include "mcnn/nn/module.hpp"

namespace mcnn {

struct Evaluation {
    std::size_t count = 0;  // images evaluated
    double loss = 0;        // mean softmax cross-entropy
    double accuracy = 0;    // percent correct
    /// confusion[true][predicted] = number of images
    std::vector<std::vector<std::size_t>> confusion;
    double seconds = 0;

    /// Percent correct per true class.
    std::vector<double> per_class_accuracy() const;
    double images_per_second() const { return seconds > 0 ? static_cast<double>(count) / seconds : 0; }
};

/// Index of the largest logit in each row (the first one on ties).
std::vector<int> predictions(const Tensor<float>& logits);

/// Runs `model` over `data` on an inference tape, `batch` examples at a time (in the model's
/// current train/eval mode: fit() puts it in eval mode first).
Evaluation evaluate(Module<float>& model, const data::Dataset& data, int batch = 500);

/// Per-class accuracy and the confusion matrix as text, rows true class, columns predicted.
std::string format_class_report(const Evaluation& e, const std::vector<std::string>& class_names);

}  // namespace mcnn
