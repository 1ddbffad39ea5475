#pragma once
// Grids of small images drawn with gnuplot to PNG, and the notebook's pictures of a CNN built from
// them: what the first conv layer does to images (forward), the gradients backward sends to the
// images and to that layer (backward), its kernels, and predictions on test images.
//
// Building a picture is separate from drawing it: the *_grid functions compute an ImageGrid (pure
// data, easy to test), draw_image_grid turns any ImageGrid into a PNG.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "mcnn/data/cifar10.hpp"
#include "mcnn/nn/layers.hpp"
#include "mcnn/tensor.hpp"

namespace mcnn::plot {

// ---------------------------------------------------------------------------------------------
// Image grids

/// Values from lo to hi span the palette; values outside are clamped.
struct Range {
    float lo = 0, hi = 1;
};

/// How values become colours.
///   gray       grayscale tiles: lo black, hi white. RGB tiles: each channel lo 0, hi full.
///   diverging  for signed values (gradients): automatic ranges are symmetric about 0; grayscale
///              tiles go blue (negative) - white (0) - red (positive), RGB tiles put 0 at mid-grey.
enum class Palette { gray, diverging };

/// Where automatic ranges come from: each tile's own min/max, or the min/max over every tile
/// (that has no range of its own).
enum class Scaling { per_tile, shared };

/// A caption's colour: neutral, right (green) or wrong (red), e.g. for predictions.
enum class Mark { none, right, wrong };

/// One cell of a grid.
struct Tile {
    Tensor<float> image;         // H x W (grayscale) or 3 x H x W (RGB); empty: a blank cell
    std::string caption;         // under the tile; '\n' starts a new line
    Mark mark = Mark::none;
    std::optional<Range> range;  // this tile's own range, instead of the grid's
    std::optional<Palette> palette;  // this tile's own palette, instead of the grid's
};

/// rows x cols tiles with labels. Each tile is drawn in a square box of tile_px pixels, keeping its
/// aspect ratio, pixels as blocks (no smoothing).
struct ImageGrid {
    ImageGrid() = default;
    /// A grid of rows x cols blank tiles.
    ImageGrid(int rows, int cols);

    std::string title, subtitle;          // above the grid; either may be empty
    std::string footer;                   // under the grid (a legend, say); may be empty
    int rows = 0, cols = 0;
    std::vector<Tile> tiles;              // rows * cols, row by row
    std::vector<std::string> row_labels;  // none, or one per row (left of it); '\n' starts a line
    std::vector<std::string> col_labels;  // none, or one per column (above it)
    Palette palette = Palette::gray;
    Scaling scaling = Scaling::per_tile;
    std::optional<Range> range;           // one range for every tile without its own (overrides scaling)
    bool colorbar = false;                // a colour bar for the grid's range: needs `range` or shared scaling
    std::string colorbar_label;
    int tile_px = 0;                      // side of a tile's box in pixels, 4..1024; 0: 96, or 72 past 10 columns

    /// The tile at (row, col), checked.
    Tile& at(int row, int col);
    const Tile& at(int row, int col) const;
};

struct PixelSize {
    int width = 0, height = 0;
};

/// The size draw_image_grid picks for `grid` when none is given. Throws as draw_image_grid does
/// for a malformed grid.
PixelSize image_grid_size(const ImageGrid& grid);

/// Draws `grid` into a PNG of image_grid_size(grid) pixels; returns that size. Written to a
/// temporary file and renamed into place. Throws mcnn::Error naming the file and the problem: an
/// empty grid, a tile count that is not rows x cols, a tile that is neither H x W nor 3 x H x W or
/// holds a NaN or infinity, label counts that do not match, a colour bar without a common range,
/// a missing directory, gnuplot failing.
PixelSize draw_image_grid(const std::filesystem::path& png, const ImageGrid& grid);

/// The same at a given size: the tiles are made as large as fits, the grid centred. Throws when
/// even 4-pixel tiles do not fit.
PixelSize draw_image_grid(const std::filesystem::path& png, const ImageGrid& grid, int width, int height);

// ---------------------------------------------------------------------------------------------
// Pictures of a model

/// Labelled images as a model sees them.
struct Examples {
    Tensor<float> images;                  // B x 3 x H x W, normalised by `norm`
    std::vector<int> labels;               // B, each < class_names.size()
    std::vector<std::string> class_names;
    data::Normalization norm;
};

/// The first `count` images of the test set of `cifar`, normalised by `norm`.
Examples test_examples(const data::Cifar10& cifar, std::size_t count,
                       const data::Normalization& norm = data::Normalization::notebook());

/// Image `b` of `images` (B x 3 x H x W, normalised by `norm`) back in [0, 1]: 3 x H x W.
Tensor<float> unnormalised(const Tensor<float>& images, int b, const data::Normalization& norm);

/// The model's first Conv2d in registration order (mcnn::first_conv); throws naming the model's
/// type when it has none (the pictures of the first layer need a conv there).
Conv2d<float>& first_conv_layer(Module<float>& model);

/// Forward pass, the notebook's "effect of the first layer": a header row with the first conv
/// layer's D kernels (RGB, each scaled to its min/max), then a row per image: the image itself and
/// its D feature maps after conv + bias, before relu (grayscale, each scaled to its min/max).
/// `about` (model, weights) becomes the subtitle.
ImageGrid feature_map_grid(Module<float>& model, const Examples& examples, const std::string& about);

/// What one backward pass sends to the images and to the first conv layer.
struct FirstLayerGradients {
    double loss = 0;                // mean softmax cross-entropy over the batch
    Tensor<float> probabilities;    // B x classes
    Tensor<float> input;            // dL/d(images), B x 3 x H x W
    Tensor<float> weight;           // dL/d(conv1.weight), D x 3 x F x F
    Tensor<float> bias;             // dL/d(conv1.bias), [D] (tied) or D x Ho x Wo (untied)
};

/// Records forward + softmax cross-entropy on a training tape with the images as tape.input() and
/// runs backward, the model in eval mode (batch norm on its running statistics; its mode is restored). The model's parameter gradients are zeroed first and hold this batch's after.
FirstLayerGradients first_layer_gradients(Module<float>& model, const Examples& examples);

/// Backward, the images' side: a row per image: the image, |dL/dx| (max over R, G, B: a saliency
/// map, grayscale), dL/dx as signed RGB (0 at grey), and dL/dx of each channel (blue-white-red,
/// one range for the three).
ImageGrid input_gradient_grid(const Examples& examples, const FirstLayerGradients& gradients, const std::string& about);

/// Backward, the first layer's side: a column per kernel; rows: the kernel (RGB), dL/dK as signed
/// RGB, dL/dK of each input channel (blue-white-red, one range per kernel), and the bias gradient:
/// a tied bias's dL/db[d] as a one-colour tile with its value under it, an untied bias's
/// Ho x Wo map of dL/db[d].
ImageGrid kernel_gradient_grid(Module<float>& model, const FirstLayerGradients& gradients, const std::string& about);

/// The first conv layer's kernels: a column per kernel; rows: RGB (scaled to the kernel's min/max),
/// then the R, G and B channels (blue-white-red, one symmetric range per kernel).
ImageGrid kernel_grid(Module<float>& model, const std::string& about);

/// Test images with their true and predicted classes (caption "true / predicted", green when right,
/// red when wrong), `cols` to a row. The model predicts in eval mode (its mode is restored).
ImageGrid prediction_grid(Module<float>& model, const Examples& examples, int cols, const std::string& about);

}  // namespace mcnn::plot
