// Image grids (mcnn/plot/images.hpp): the PNG's size, the errors, and the pictures of a model that
// the visualize app draws, built from small random models and images.
#include <boost/test/unit_test.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "mcnn/error.hpp"
#include "mcnn/nn/registry.hpp"
#include "mcnn/plot/images.hpp"
#include "support.hpp"

using namespace mcnn;
using namespace mcnn::plot;
using mcnn::test::TempDir;
namespace fs = std::filesystem;

namespace {

/// The width and height in the IHDR chunk of a PNG (0 x 0 when it is not a PNG).
PixelSize png_size(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::array<unsigned char, 24> head{};
    in.read(reinterpret_cast<char*>(head.data()), head.size());
    const std::array<unsigned char, 8> signature = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (in.gcount() != 24 || !std::equal(signature.begin(), signature.end(), head.begin()) ||
        std::string(head.begin() + 12, head.begin() + 16) != "IHDR")
        return {};
    const auto be32 = [&](std::size_t at) {
        return static_cast<int>(std::uint32_t(head[at]) << 24 | std::uint32_t(head[at + 1]) << 16 |
                                std::uint32_t(head[at + 2]) << 8 | std::uint32_t(head[at + 3]));
    };
    return {be32(16), be32(20)};
}

/// Draws `grid` into dir/name and checks the PNG is there at the size draw_image_grid returned,
/// which is image_grid_size(grid).
void check_drawn(const fs::path& dir, const std::string& name, const ImageGrid& grid) {
    const fs::path png = dir / name;
    const PixelSize drawn = draw_image_grid(png, grid);
    const PixelSize expected = image_grid_size(grid);
    BOOST_TEST_REQUIRE(fs::exists(png), png << " was not written");
    const PixelSize actual = png_size(png);
    BOOST_TEST(actual.width == expected.width, name);
    BOOST_TEST(actual.height == expected.height, name);
    BOOST_TEST(drawn.width == expected.width);
    BOOST_TEST(drawn.height == expected.height);
}

Tensor<float> random_tensor(const Shape& shape, Rng& rng, double lo = -1, double hi = 1) {
    Tensor<float> t(shape);
    for (float& v : t) v = static_cast<float>(rng.uniform(lo, hi));
    return t;
}

/// A grid of rows x cols random tiles of shape `tile`.
ImageGrid random_grid(int rows, int cols, const Shape& tile, Rng& rng) {
    ImageGrid g(rows, cols);
    for (Tile& t : g.tiles) t.image = random_tensor(tile, rng);
    return g;
}

/// `count` random images with labels 0, 1, 2, ... and class names "class 0" ... "class 9".
Examples random_examples(int count, Rng& rng) {
    Examples e;
    e.images = random_tensor(Shape{count, 3, 32, 32}, rng);
    for (int i = 0; i < count; ++i) e.labels.push_back(i % 10);
    for (int c = 0; c < 10; ++c) e.class_names.push_back(fmt::format("class {}", c));
    return e;
}

/// The message of the mcnn::Error that drawing `grid` into `png` throws.
std::string draw_error(const fs::path& png, const ImageGrid& grid) {
    return test::error_of([&] { (void)draw_image_grid(png, grid); });
}

}  // namespace

BOOST_AUTO_TEST_SUITE(visualize)

BOOST_AUTO_TEST_CASE(rgb_and_grayscale_grids_have_the_expected_size) {
    const TempDir dir("sizes");
    Rng rng(1);

    // 2 x 3 RGB tiles of 8 x 8, bare: tiles only.
    ImageGrid rgb = random_grid(2, 3, Shape{3, 8, 8}, rng);
    rgb.tile_px = 32;
    check_drawn(dir.path, "rgb.png", rgb);
    // Nothing but tiles, margins and gaps: 12 + 3 x 32 + 2 x 4 + 12 wide, 12 + 2 x 32 + 4 + 12 high.
    BOOST_TEST(image_grid_size(rgb).width == 12 + 3 * 32 + 2 * 4 + 12);
    BOOST_TEST(image_grid_size(rgb).height == 12 + 2 * 32 + 4 + 12);

    // The same grid in grayscale, with everything: titles, labels, captions, a shared scale and
    // its colour bar.
    ImageGrid gray = random_grid(2, 3, Shape{8, 8}, rng);
    gray.tile_px = 32;
    gray.title = "a 2 x 3 grid";
    gray.subtitle = "grayscale, shared scale";
    gray.footer = "footer: a legend\non two lines";
    gray.row_labels = {"row 1", "row 2\nsecond line"};
    gray.col_labels = {"a", "b", "c"};
    gray.scaling = Scaling::shared;
    gray.colorbar = true;
    gray.colorbar_label = "value";
    gray.at(0, 0).caption = "right";
    gray.at(0, 0).mark = Mark::right;
    gray.at(1, 2).caption = "wrong\ntwo lines";
    gray.at(1, 2).mark = Mark::wrong;
    check_drawn(dir.path, "gray.png", gray);
    const PixelSize bare = image_grid_size(rgb), full = image_grid_size(gray);
    BOOST_TEST(full.width > bare.width);
    BOOST_TEST(full.height > bare.height);

    // Automatic tiles of 96 pixels; more columns, wider picture.
    ImageGrid wide = random_grid(2, 6, Shape{3, 8, 8}, rng);
    BOOST_TEST(image_grid_size(wide).width > image_grid_size(random_grid(2, 3, Shape{3, 8, 8}, rng)).width);

    // Diverging palette with per-tile scaling, a blank cell, tiles of other shapes (one pixel wide
    // or high, which gnuplot cannot draw as an image grid on its own, and 1 x 1).
    ImageGrid mixed = random_grid(2, 3, Shape{5, 5}, rng);
    mixed.palette = Palette::diverging;
    mixed.at(0, 1).image = Tensor<float>();
    mixed.at(0, 2).image = random_tensor(Shape{1, 7}, rng);
    mixed.at(1, 0).image = random_tensor(Shape{7, 1}, rng);
    mixed.at(1, 1).image = Tensor<float>(Shape{1, 1}, 0.5f);
    mixed.at(1, 2).image = Tensor<float>(Shape{4, 4}, 0.0f);  // constant: its range is empty
    mixed.at(1, 2).palette = Palette::gray;
    mixed.at(0, 0).range = Range{-2, 2};
    check_drawn(dir.path, "mixed.png", mixed);

    // A given size: exactly that, the tiles as large as fit.
    const fs::path sized = dir.path / "sized.png";
    const PixelSize s = draw_image_grid(sized, gray, 500, 300);
    BOOST_TEST(s.width == 500);
    BOOST_TEST(s.height == 300);
    BOOST_TEST(png_size(sized).width == 500);
    BOOST_TEST(png_size(sized).height == 300);

    BOOST_TEST(dir.files() == (std::vector<std::string>{"gray.png", "mixed.png", "rgb.png", "sized.png"}),
               "no temporary file is left");
}

BOOST_AUTO_TEST_CASE(bad_grids_are_errors_naming_the_problem) {
    const TempDir dir("errors");
    Rng rng(2);
    const fs::path png = dir.path / "bad.png";
    const ImageGrid good = random_grid(2, 3, Shape{3, 8, 8}, rng);

    CHECK_MESSAGE_HAS(draw_error(png, ImageGrid()), "empty grid");
    CHECK_MESSAGE_HAS(draw_error(png, ImageGrid(0, 3)), "empty grid");

    ImageGrid count = good;
    count.tiles.pop_back();
    CHECK_MESSAGE_HAS(draw_error(png, count), "5 tiles for a grid of 2 x 3");

    ImageGrid channels = good;
    channels.at(1, 2).image = random_tensor(Shape{4, 8, 8}, rng);
    const std::string channels_msg = draw_error(png, channels);
    CHECK_MESSAGE_HAS(channels_msg, "tile (1, 2)");
    CHECK_MESSAGE_HAS(channels_msg, "[4, 8, 8]");
    CHECK_MESSAGE_HAS(channels_msg, "3 x H x W");

    ImageGrid rank4 = good;
    rank4.at(0, 1).image = random_tensor(Shape{1, 3, 8, 8}, rng);
    CHECK_MESSAGE_HAS(draw_error(png, rank4), "tile (0, 1) has shape [1, 3, 8, 8]");

    ImageGrid nan = good;
    nan.at(0, 0).image[5] = std::numeric_limits<float>::quiet_NaN();
    CHECK_MESSAGE_HAS(draw_error(png, nan), "non-finite");

    ImageGrid blank(2, 2);
    CHECK_MESSAGE_HAS(draw_error(png, blank), "no tile holds an image");

    ImageGrid labels = good;
    labels.row_labels = {"only one"};
    CHECK_MESSAGE_HAS(draw_error(png, labels), "1 row labels for 2 rows");
    labels.row_labels.clear();
    labels.col_labels = {"a", "b"};
    CHECK_MESSAGE_HAS(draw_error(png, labels), "2 column labels for 3 columns");

    ImageGrid bar = good;
    bar.colorbar = true;
    CHECK_MESSAGE_HAS(draw_error(png, bar), "colour bar");

    ImageGrid range = good;
    range.at(0, 0).range = Range{1, -1};
    CHECK_MESSAGE_HAS(draw_error(png, range), "tile (0, 0)'s range");

    const fs::path missing = dir.path / "no" / "such" / "dir" / "grid.png";
    const std::string missing_msg = draw_error(missing, good);
    CHECK_MESSAGE_HAS(missing_msg, "does not exist");
    CHECK_MESSAGE_HAS(missing_msg, (dir.path / "no" / "such" / "dir").string());

    CHECK_MESSAGE_HAS(test::error_of([&] { (void)draw_image_grid(png, good, 30, 30); }), "too small");
    CHECK_MESSAGE_HAS(test::error_of([&] { (void)good.at(2, 0); }), "outside");

    BOOST_TEST(dir.files().empty(), "nothing is written after errors");
}

BOOST_AUTO_TEST_CASE(unnormalised_images_and_test_examples) {
    Rng rng(3);
    Tensor<float> images = random_tensor(Shape{2, 3, 4, 4}, rng);
    images[0] = -1.5f;  // clamped at 0
    const Tensor<float> img = unnormalised(images, 1, data::Normalization::notebook());
    BOOST_TEST(img.shape() == (Shape{3, 4, 4}));
    for (std::size_t k = 0; k < img.numel(); ++k) BOOST_TEST(img[k] == images[48 + k] * 0.5f + 0.5f);
    BOOST_TEST(unnormalised(images, 0, data::Normalization::notebook())[0] == 0.0f);
    CHECK_MESSAGE_HAS(test::error_of([&] { (void)unnormalised(images, 2, data::Normalization::notebook()); }),
                      "out of range");

    // Three records of a hand-made test set: the first two, normalised, with their labels.
    data::Cifar10 cifar;
    for (int i = 0; i < 3; ++i) {
        cifar.test.labels.push_back(static_cast<std::uint8_t>(7 - i));
        for (int k = 0; k < data::image_bytes; ++k) cifar.test.images.push_back(static_cast<std::uint8_t>(i * 100));
    }
    for (int c = 0; c < 10; ++c) cifar.class_names.push_back(fmt::format("c{}", c));
    const Examples e = test_examples(cifar, 2);
    BOOST_TEST(e.images.shape() == (Shape{2, 3, 32, 32}));
    BOOST_TEST(e.labels == (std::vector<int>{7, 6}));
    BOOST_TEST(e.class_names.size() == 10u);
    BOOST_TEST(e.images[0] == -1.0f);
    BOOST_TEST(std::abs(e.images[3072] - (100 / 255.0f - 0.5f) / 0.5f) < 1e-6f);
    CHECK_MESSAGE_HAS(test::error_of([&] { (void)test_examples(cifar, 4); }), "the test set has 3");
}

BOOST_AUTO_TEST_CASE(model_pictures_of_simple_and_manual_models) {
    const TempDir dir("models");
    for (const std::string name : {"simple", "manual"}) {
        BOOST_TEST_CONTEXT(name) {
            Rng rng(4);
            const auto model = make_model<float>(name, rng);
            const Examples examples = random_examples(2, rng);
            const std::string about = model->type_name() + ", random weights";
            BOOST_TEST(&first_conv_layer(*model).weight == model->parameters()[0]);

            // Forward: a row of 6 kernels, then per image the image and 6 feature maps of 28 x 28.
            const ImageGrid forward = feature_map_grid(*model, examples, about);
            BOOST_TEST(forward.rows == 3);
            BOOST_TEST(forward.cols == 7);
            BOOST_TEST(forward.at(0, 1).image.shape() == (Shape{3, 5, 5}));
            BOOST_TEST(forward.at(1, 0).image.shape() == (Shape{3, 32, 32}));
            BOOST_TEST(forward.at(2, 6).image.shape() == (Shape{28, 28}));
            BOOST_TEST(forward.subtitle == about);
            check_drawn(dir.path, name + "-forward.png", forward);

            // Backward: the gradients, and the pictures of them.
            const FirstLayerGradients g = first_layer_gradients(*model, examples);
            BOOST_TEST(std::isfinite(g.loss));
            BOOST_TEST(g.loss > 0);
            BOOST_TEST(g.probabilities.shape() == (Shape{2, 10}));
            BOOST_TEST(g.input.shape() == examples.images.shape());
            BOOST_TEST(g.weight.shape() == (Shape{6, 3, 5, 5}));
            BOOST_TEST(g.bias.shape() == (name == "manual" ? Shape{6, 28, 28} : Shape{6}));
            test::check_equal(g.weight, first_conv_layer(*model).weight.grad, "dL/dK is the parameter's gradient");
            float input_norm = 0;
            for (const float v : g.input) input_norm += v * v;
            BOOST_TEST(input_norm > 0, "a gradient reaches the images");
            // A second call gives the same gradients: parameter gradients are zeroed first.
            const FirstLayerGradients again = first_layer_gradients(*model, examples);
            test::check_equal(again.weight, g.weight, "dL/dK, twice");

            const ImageGrid input = input_gradient_grid(examples, g, about);
            BOOST_TEST(input.rows == 2);
            BOOST_TEST(input.cols == 6);
            BOOST_TEST(input.at(0, 1).image.shape() == (Shape{32, 32}));
            check_drawn(dir.path, name + "-backward-input.png", input);

            const ImageGrid layer = kernel_gradient_grid(*model, g, about);
            BOOST_TEST(layer.rows == 6);
            BOOST_TEST(layer.cols == 6);
            BOOST_TEST(layer.at(5, 0).image.shape() == (name == "manual" ? Shape{28, 28} : Shape{1, 1}));
            check_drawn(dir.path, name + "-backward-conv1.png", layer);

            const ImageGrid kernels = kernel_grid(*model, about);
            BOOST_TEST(kernels.rows == 4);
            BOOST_TEST(kernels.cols == 6);
            check_drawn(dir.path, name + "-kernels.png", kernels);

            // Predictions: 5 images, 3 to a row: 2 rows, the last cell blank; green or red captions.
            const Examples five = random_examples(5, rng);
            const ImageGrid predictions = prediction_grid(*model, five, 3, about);
            BOOST_TEST(predictions.rows == 2);
            BOOST_TEST(predictions.cols == 3);
            BOOST_TEST(predictions.at(1, 2).image.empty());
            BOOST_TEST(predictions.at(0, 0).caption.rfind("class 0 / class ", 0) == 0u, predictions.at(0, 0).caption);
            BOOST_TEST((predictions.at(0, 0).mark != Mark::none));
            check_drawn(dir.path, name + "-predictions.png", predictions);
        }
    }
    BOOST_TEST(dir.files().size() == 10u);
}

BOOST_AUTO_TEST_CASE(model_pictures_check_their_inputs) {
    Rng rng(5);
    const auto model = make_model<float>("simple", rng);
    Examples bad = random_examples(2, rng);
    bad.labels.pop_back();
    CHECK_MESSAGE_HAS(test::error_of([&] { (void)feature_map_grid(*model, bad, ""); }), "1 labels for 2 images");
    Examples unnamed = random_examples(2, rng);
    unnamed.class_names.resize(1);
    CHECK_MESSAGE_HAS(test::error_of([&] { (void)first_layer_gradients(*model, unnamed); }), "label 1 has no class name");
    CHECK_MESSAGE_HAS(test::error_of([&] { (void)prediction_grid(*model, random_examples(2, rng), 0, ""); }),
                      "0 columns");
}

BOOST_AUTO_TEST_SUITE_END()
