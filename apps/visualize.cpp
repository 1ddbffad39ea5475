// Draws the notebook's pictures of a model as PNG files: the first conv layer's feature maps
// (forward), the gradients of the loss for the input images and for that layer (backward), its
// kernels, and predictions on test images. See --help.
//   visualize --what all --model simple --checkpoint runs/simple-main/checkpoint.safetensors
#include <filesystem>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "mcnn/plot/images.hpp"
#include "mcnn/train/checkpoint.hpp"
#include "mcnn/nn/registry.hpp"
#include "mcnn/train/trainer.hpp"

using namespace mcnn;
namespace fs = std::filesystem;

int main(int argc, char** argv) {
    CLI::App app{"Draw pictures of a CIFAR-10 model as PNG files: feature maps, gradients, kernels, predictions."};
    std::string what = "all", model_name = "simple", checkpoint, data_dir, out_dir = "plots";
    int images = 4, predictions = 32, columns = 8;
    std::uint64_t seed = 0;
    app.add_option("--what", what,
                   "forward: the first conv layer's feature maps (forward.png); backward: gradients for the input "
                   "images and the first layer (backward-input.png, backward-conv1.png); kernels: the first layer's "
                   "kernels (kernels.png); predictions: test images with true and predicted classes "
                   "(predictions.png); all: every one")
        ->capture_default_str()
        ->check(CLI::IsMember({"forward", "backward", "kernels", "predictions", "all"}));
    auto* model_opt = app.add_option("--model", model_name,
                                     "model: " + fmt::format("{}", fmt::join(model_names(), ", ")) +
                                         " (with --checkpoint: the checkpoint's model unless given)")
                          ->capture_default_str()
                          ->check(CLI::IsMember(model_names()));
    app.add_option("--checkpoint", checkpoint,
                   "a run's checkpoint.safetensors, or its run folder (without it: random weights from --seed)");
    app.add_option("--images", images, "test images for forward and backward")->capture_default_str()->check(CLI::Range(1, 64));
    app.add_option("--predictions", predictions, "test images for predictions")
        ->capture_default_str()->check(CLI::Range(1, 256));
    app.add_option("--columns", columns, "images per row of predictions")->capture_default_str()->check(CLI::Range(1, 100));
    app.add_option("--data", data_dir, "CIFAR-10 folder (else $CIFAR10_DIR, ./data/cifar-10-batches-bin, "
                                       "../shared/cifar10/cifar-10-batches-bin)");
    app.add_option("--out", out_dir, "folder for the PNG files (made if missing)")->capture_default_str();
    app.add_option("--seed", seed, "seed for random weights (without --checkpoint)")->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    try {
        // The model: random from the seed, or a run's checkpoint.
        fs::path ckpt;
        std::string about;
        if (!checkpoint.empty()) {
            ckpt = checkpoint;
            if (fs::is_directory(ckpt)) ckpt /= "checkpoint.safetensors";
            if (!fs::is_regular_file(ckpt)) fail("checkpoint {} does not exist", ckpt.string());
            if (model_opt->count() == 0) {
                const TensorFile file = load_safetensors(ckpt);
                if (const auto it = file.metadata.find("model"); it != file.metadata.end()) model_name = it->second;
            }
        }
        Rng rng(seed);
        const auto model = make_model<float>(model_name, rng);
        const std::string title = model->type_name() == "Module" ? model_name : model->type_name();
        if (!ckpt.empty()) {
            const auto meta = load_checkpoint(ckpt, *model, nullptr, model_name);
            const auto epochs = meta.find("epochs_done");
            about = fmt::format("{}, trained: {}{}", title, ckpt.string(),
                                epochs == meta.end() ? "" : fmt::format(" ({} epochs)", epochs->second));
        } else {
            about = fmt::format("{}, random weights (seed {})", title, seed);
        }

        const bool all = what == "all";
        const bool need_data = all || what == "forward" || what == "backward" || what == "predictions";
        data::Cifar10 cifar;
        if (need_data) {
            const fs::path dir = data::find_cifar10(data_dir);
            fmt::print("Loading CIFAR-10 from {}\n", dir.string());
            cifar = data::load_cifar10(dir);
        }
        const fs::path out(out_dir);
        fs::create_directories(out);
        const auto draw = [&](const std::string& file, const plot::ImageGrid& grid) {
            const plot::PixelSize size = plot::draw_image_grid(out / file, grid);
            fmt::print("wrote {} ({}x{})\n", (out / file).string(), size.width, size.height);
        };

        if (all || what == "forward")
            draw("forward.png", plot::feature_map_grid(*model, plot::test_examples(cifar, images), about));
        if (all || what == "backward") {
            const plot::Examples examples = plot::test_examples(cifar, images);
            const plot::FirstLayerGradients g = plot::first_layer_gradients(*model, examples);
            draw("backward-input.png", plot::input_gradient_grid(examples, g, about));
            draw("backward-conv1.png", plot::kernel_gradient_grid(*model, g, about));
        }
        if (all || what == "kernels") draw("kernels.png", plot::kernel_grid(*model, about));
        if (all || what == "predictions")
            draw("predictions.png",
                 plot::prediction_grid(*model, plot::test_examples(cifar, static_cast<std::size_t>(predictions)), columns,
                                       about));
        return 0;
    } catch (const Error& e) {
        fmt::print(stderr, "visualize: error: {}\n", e.what());
        return 1;
    } catch (const fs::filesystem_error& e) {
        fmt::print(stderr, "visualize: error: {}\n", e.what());
        return 1;
    }
}
