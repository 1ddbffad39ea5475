#include "mcnn/train/metrics.hpp"

#include <chrono>

#include <fmt/format.h>

#include "mcnn/ops/loss.hpp"

namespace mcnn {

std::vector<double> Evaluation::per_class_accuracy() const {
    std::vector<double> out;
    for (std::size_t c = 0; c < confusion.size(); ++c) {
        std::size_t total = 0;
        for (std::size_t n : confusion[c]) total += n;
        out.push_back(total ? 100.0 * static_cast<double>(confusion[c][c]) / static_cast<double>(total) : 0.0);
    }
    return out;
}

std::vector<int> predictions(const Tensor<float>& logits) {
    require_rank("predictions (B x C logits)", logits.shape(), 2);
    std::vector<int> out(static_cast<std::size_t>(logits.dim(0)));
    const auto m = logits.matrix();
    for (Eigen::Index n = 0; n < m.rows(); ++n) {
        Eigen::Index best = 0;
        m.row(n).maxCoeff(&best);
        out[static_cast<std::size_t>(n)] = static_cast<int>(best);
    }
    return out;
}

Evaluation evaluate(Module<float>& model, const data::Dataset& data, int batch) {
    if (batch < 1) fail("evaluate: batch must be >= 1, got {}", batch);
    Evaluation e;
    const auto classes = static_cast<std::size_t>(data.classes());
    e.confusion.assign(classes, std::vector<std::size_t>(classes, 0));
    const auto start = std::chrono::steady_clock::now();
    data::BatchLoader loader(data, batch, false, 0);
    loader.start_epoch(0);
    Tensor<float> images;
    std::vector<int> labels;
    double loss_sum = 0;
    std::size_t correct = 0;
    while (loader.next(images, labels)) {
        Tape<float> tape(Tape<float>::Mode::inference);
        const Var<float> logits = model.forward(tape.constant(images));
        if (logits.shape() != Shape{static_cast<int>(labels.size()), data.classes()})
            fail("evaluate: the model maps a batch of {} to {}; expected [{}, {}]", images.shape().str(), logits.shape().str(),
                 labels.size(), data.classes());
        loss_sum += static_cast<double>(softmax_cross_entropy(logits, labels).value()[0]) * static_cast<double>(labels.size());
        const std::vector<int> predicted = predictions(logits.value());
        for (std::size_t n = 0; n < labels.size(); ++n) {
            ++e.confusion[static_cast<std::size_t>(labels[n])][static_cast<std::size_t>(predicted[n])];
            correct += predicted[n] == labels[n];
        }
        e.count += labels.size();
    }
    e.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (e.count) {
        e.loss = loss_sum / static_cast<double>(e.count);
        e.accuracy = 100.0 * static_cast<double>(correct) / static_cast<double>(e.count);
    }
    return e;
}

std::string format_class_report(const Evaluation& e, const std::vector<std::string>& class_names) {
    const std::vector<double> acc = e.per_class_accuracy();
    auto name = [&](std::size_t c) { return c < class_names.size() ? class_names[c] : std::to_string(c); };
    std::string out = "Accuracy per class:\n";
    for (std::size_t c = 0; c < acc.size(); ++c) out += fmt::format("  {:<12} {:6.2f} %\n", name(c), acc[c]);
    out += "Confusion matrix (rows: true class, columns: predicted):\n" + std::string(13, ' ');
    for (std::size_t c = 0; c < acc.size(); ++c) out += fmt::format("{:>6.5}", name(c));
    out += "\n";
    for (std::size_t t = 0; t < e.confusion.size(); ++t) {
        out += fmt::format("  {:<11}", name(t));
        for (std::size_t n : e.confusion[t]) out += fmt::format("{:>6}", n);
        out += "\n";
    }
    return out;
}

}  // namespace mcnn
