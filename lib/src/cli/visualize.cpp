// visualize: the notebook's pictures of a model as PNG files: the first conv layer's feature maps
// (forward), the gradients of the loss for the input images and for that layer (backward), its
// kernels, and predictions on test images.
//   visualize --what all --model simple --checkpoint runs/simple-main/checkpoint.safetensors
#include <filesystem>

#include <fmt/format.h>

#include "../util/files.hpp"
#include "common.hpp"
#include "mcnn/cli.hpp"
#include "mcnn/plot/images.hpp"
#include "mcnn/train/checkpoint.hpp"
#include "mcnn/train/trainer.hpp"

namespace mcnn::cli {
namespace {

namespace fs = std::filesystem;

struct VisualizeFlags {
    std::string what = "all", model = "simple", checkpoint, data_dir, out_dir = "plots";
    int images = 4, predictions = 32, columns = 8;
    std::uint64_t seed = 0;
    bool model_given = false;
};

/// Throws unless the pictures asked for can be drawn for `model`: those of images need a model of
/// CIFAR-10's images; all but the predictions a first Conv2d layer with RGB (3-channel) kernels.
void check_pictures_fit(const VisualizeFlags& f, Module<float>& model) {
    const ModelInfo& info = model_info(f.model);
    if (f.what != "kernels" && !detail::takes_cifar(info))
        fail("model '{}' takes examples of shape {} with {} classes, not CIFAR-10's 3 x 32 x 32 images in 10 classes: "
             "only --what kernels can draw it",
             f.model, info.input.str(), info.classes);
    if (f.what == "predictions") return;
    const Conv2d<float>* conv = first_conv(model);
    if (!conv) fail("model '{}' has no Conv2d layer: visualize draws a model's first conv layer", f.model);
    if (conv->weight.value.dim(1) != 3)
        fail("model '{}': its first conv layer ({}) takes {} channels, but its pictures draw kernels as RGB: 3 channels",
             f.model, conv->path(), conv->weight.value.dim(1));
}

/// The model, random from the seed or a run's checkpoint (whose model it is unless --model was
/// given), and a line on where its weights come from.
std::unique_ptr<Module<float>> load_model(VisualizeFlags& f, std::string& about) {
    fs::path ckpt;
    if (!f.checkpoint.empty()) {
        ckpt = f.checkpoint;
        if (fs::is_directory(ckpt)) ckpt /= "checkpoint.safetensors";
        (void)files::regular_file_size(ckpt, "checkpoint");  // missing, a FIFO, a device: named before reading
        if (!f.model_given) {
            const TensorFile file = load_safetensors(ckpt);
            if (const auto it = file.metadata.find("model"); it != file.metadata.end()) f.model = it->second;
        }
    }
    Rng rng(f.seed);
    auto model = detail::checked_model<float>(f.model, rng, model_info(f.model).input);
    check_pictures_fit(f, *model);
    const std::string title = model->type_name() == "Module" ? f.model : model->type_name();
    if (ckpt.empty()) {
        about = fmt::format("{}, random weights (seed {})", title, f.seed);
        return model;
    }
    const auto meta = load_checkpoint(ckpt, *model, nullptr, f.model);
    const auto epochs = meta.find("epochs_done");
    about = fmt::format("{}, trained: {}{}", title, ckpt.string(),
                        epochs == meta.end() ? "" : fmt::format(" ({} epochs)", epochs->second));
    return model;
}

/// CIFAR-10's test set for the pictures that show images (the model must take them: see run).
data::Cifar10 load_images(const VisualizeFlags& f) {
    const fs::path dir = data::find_cifar10(f.data_dir);
    fmt::print("Loading CIFAR-10 from {}\n", dir.string());
    return data::load_cifar10(dir);
}

int run(VisualizeFlags& f) {
    std::string about;
    const auto model = load_model(f, about);
    const bool all = f.what == "all";
    data::Cifar10 cifar;
    if (f.what != "kernels") cifar = load_images(f);
    const fs::path out(f.out_dir);
    fs::create_directories(out);
    const auto draw = [&](const std::string& file, const plot::ImageGrid& grid) {
        const plot::PixelSize size = plot::draw_image_grid(out / file, grid);
        fmt::print("wrote {} ({}x{})\n", (out / file).string(), size.width, size.height);
    };
    if (all || f.what == "forward")
        draw("forward.png", plot::feature_map_grid(*model, plot::test_examples(cifar, f.images), about));
    if (all || f.what == "backward") {
        const plot::Examples examples = plot::test_examples(cifar, f.images);
        const plot::FirstLayerGradients g = plot::first_layer_gradients(*model, examples);
        draw("backward-input.png", plot::input_gradient_grid(examples, g, about));
        draw("backward-conv1.png", plot::kernel_gradient_grid(*model, g, about));
    }
    if (all || f.what == "kernels") draw("kernels.png", plot::kernel_grid(*model, about));
    if (all || f.what == "predictions")
        draw("predictions.png", plot::prediction_grid(*model, plot::test_examples(cifar, static_cast<std::size_t>(f.predictions)),
                                                      f.columns, about));
    return 0;
}

void add_options(CLI::App& app, VisualizeFlags& f) {
    app.add_option("--what", f.what,
                   "forward: the first conv layer's feature maps (forward.png); backward: gradients for the input "
                   "images and the first layer (backward-input.png, backward-conv1.png); kernels: the first layer's "
                   "kernels (kernels.png); predictions: test images with true and predicted classes "
                   "(predictions.png); all: every one")
        ->capture_default_str()
        ->check(CLI::IsMember({"forward", "backward", "kernels", "predictions", "all"}));
    detail::add_model_option(app, f.model, "model with a Conv2d layer (with --checkpoint: the checkpoint's model unless given)")
        ->capture_default_str();
    app.add_option("--checkpoint", f.checkpoint,
                   "a run's checkpoint.safetensors, or its run folder (without it: random weights from --seed)");
    detail::add_integer_flag(app, "--images", f.images, "test images for forward and backward", 1, 64);
    detail::add_integer_flag(app, "--predictions", f.predictions, "test images for predictions", 1, 256);
    detail::add_integer_flag(app, "--columns", f.columns, "images per row of predictions", 1, 100);
    detail::add_data_option(app, f.data_dir);
    app.add_option("--out", f.out_dir, "folder for the PNG files (made if missing)")->capture_default_str();
    detail::add_integer_flag(app, "--seed", f.seed, "seed for random weights (without --checkpoint)", 0);
    app.footer(detail::model_table());
}

}  // namespace

int visualize(int argc, char** argv) {
    CLI::App app{"Draw pictures of a CIFAR-10 model as PNG files: feature maps, gradients, kernels, predictions.", argv[0]};
    VisualizeFlags f;
    add_options(app, f);
    CLI11_PARSE(app, argc, argv);
    f.model_given = app.count("--model") > 0;
    return detail::run_reporting_errors("visualize", 1, [&] { return run(f); });
}

}  // namespace mcnn::cli
