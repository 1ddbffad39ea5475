#include "mcnn/train/metrics.hpp"

#include <chrono>

#include <fmt/format.h>

#include "mcnn/data/augment.hpp"
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

std::vector<TtaView> tta_views(Tta tta) {
    switch (tta) {
    case Tta::none: return {{0, 0, false, 1.0}};
    case Tta::flip: return {{0, 0, false, 0.5}, {0, 0, true, 0.5}};
    case Tta::flip_translate:
        return {{0, 0, false, 0.25},    {0, 0, true, 0.25},    {-1, -1, false, 0.125},
                {-1, -1, true, 0.125}, {1, 1, false, 0.125}, {1, 1, true, 0.125}};
    }
    fail("tta_views: unknown setting {}", static_cast<int>(tta));
}

std::string tta_name(Tta tta) {
    switch (tta) {
    case Tta::none: return "none";
    case Tta::flip: return "flip";
    case Tta::flip_translate: return "flip-translate";
    }
    return "?";
}

Tta tta_from_name(const std::string& name) {
    for (Tta t : {Tta::none, Tta::flip, Tta::flip_translate})
        if (tta_name(t) == name) return t;
    fail("unknown test-time augmentation '{}'; known: none, flip, flip-translate", name);
}

Tensor<float> tta_logits(Module<float>& model, const Tensor<float>& images, Tta tta) {
    require_rank("tta_logits (B x C x H x W images)", images.shape(), 4);
    Tensor<float> sum;
    for (const TtaView& v : tta_views(tta)) {
        Tape<float> tape(Tape<float>::Mode::inference);
        const bool plain = v.dy == 0 && v.dx == 0 && !v.flip;
        const Var<float> logits =
            model.forward(tape.constant(plain ? images : data::transformed_batch(images, v.dy, v.dx, v.flip, data::Padding::reflect)));
        if (sum.empty()) {
            sum = Tensor<float>(logits.shape());
            sum.fill(0.0f);
        }
        const auto w = static_cast<float>(v.weight);
        for (std::size_t i = 0; i < sum.numel(); ++i) sum[i] += w * logits.value()[i];
    }
    return sum;
}

Evaluation evaluate(Module<float>& model, const data::Dataset& data, int batch, Tta tta) {
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
        const Var<float> logits = tta == Tta::none ? model.forward(tape.constant(images)) : tape.constant(tta_logits(model, images, tta));
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
