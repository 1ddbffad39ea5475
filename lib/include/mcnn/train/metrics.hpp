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

/// Test-time augmentation: an image's logits are a weighted mean of the model's logits on views of it.
enum class Tta { none, flip, flip_translate };

/// One view: the image translated by (dy, dx) (out(y, x) = in(y + dy, x + dx), reflect padding),
/// then mirrored when `flip`; its logits count with `weight`.
struct TtaView {
    int dy = 0, dx = 0;
    bool flip = false;
    double weight = 1;
};

/// The views of each setting (weights sum to 1):
///   none            the image, 1
///   flip            the image 1/2, its mirror 1/2
///   flip_translate  airbench94's: the image 1/4, its mirror 1/4; translated by (-1, -1) 1/8 and its
///                   mirror 1/8; translated by (+1, +1) 1/8 and its mirror 1/8.
std::vector<TtaView> tta_views(Tta tta);
/// "none", "flip", "flip-translate".
std::string tta_name(Tta tta);
/// The setting named `name`; throws listing the names.
Tta tta_from_name(const std::string& name);

/// The logits (B x classes) of `images` (B x C x H x W) under test-time augmentation: the sum over
/// tta_views(tta) of weight x model(view), each on an inference tape (in the model's current mode).
Tensor<float> tta_logits(Module<float>& model, const Tensor<float>& images, Tta tta);

/// Runs `model` over `data` on an inference tape, `batch` examples at a time (in the model's
/// current train/eval mode: fit() puts it in eval mode first). With `tta`, the loss and the
/// predictions are those of tta_logits (the model runs once per view).
Evaluation evaluate(Module<float>& model, const data::Dataset& data, int batch = 500, Tta tta = Tta::none);

/// Per-class accuracy and the confusion matrix as text, rows true class, columns predicted.
std::string format_class_report(const Evaluation& e, const std::vector<std::string>& class_names);

}  // namespace mcnn
