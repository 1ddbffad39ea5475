#pragma once
// Data augmentation on the fly, applied to a training batch after it is filled and normalised, and
// the image transforms it is made of (also used by test-time augmentation, train/metrics.hpp).
//
// Per image, in this order: a translation (random crop of the image padded by P pixels: shifts dy,
// dx in [-P, P]), a horizontal flip, a cutout (a S x S square set to 0, the channel mean after
// normalisation). What image i gets in epoch e is drawn from (seed, e, i) alone, i being its index
// in the dataset, never its place in the batch: the same image gets the same augmentation whatever
// the batch size, the shuffle, the thread count, and after a resume.
//
// Flip modes: random (each image flipped with probability 1/2, drawn anew each epoch) and
// alternate (airbench's: image i is flipped in even epochs when its coin, drawn once from (seed, i),
// says so, and in odd epochs when it does not; so each image is seen both ways in every two epochs).
#include <cstdint>
#include <string>
#include <vector>

#include "mcnn/tensor.hpp"

namespace mcnn::data {

/// What fills the border a translation uncovers. reflect: PyTorch's mode "reflect" (the pixels
/// beyond an edge mirror those inside, the edge itself not repeated: index -1 reads 1, index W
/// reads W - 2); zero: 0.
enum class Padding { zero, reflect };
enum class FlipMode { none, random, alternate };

/// "zero", "reflect" / "none", "random", "alternate".
std::string padding_name(Padding p);
std::string flip_mode_name(FlipMode f);
/// The value of a name above; throws listing the names.
Padding padding_from_name(const std::string& name);
FlipMode flip_mode_from_name(const std::string& name);

/// The augmentation of a training run. Default: none (batches as filled).
struct Augmentation {
    int crop_pad = 0;                  // translate by up to this many pixels each way (0: no crop)
    Padding padding = Padding::reflect;
    FlipMode flip = FlipMode::none;
    int cutout = 0;                    // side of the zeroed square (0: no cutout)

    /// Anything asked (a negative setting too: check() refuses it).
    bool enabled() const { return crop_pad != 0 || flip != FlipMode::none || cutout != 0; }
    /// "none" or e.g. "crop-pad 2 (reflect), flip alternate, cutout 8".
    std::string describe() const;
    /// Throws when a setting is negative, or does not fit images of height x width (a pad of at
    /// least the side with reflect padding, a cutout larger than the image).
    void check(int height, int width) const;
};

/// What one image gets: out(y, x) = in(y + dy, x + dx), then flipped when `flip`, then the square
/// of side cutout at (cut_y, cut_x) (top-left corner) set to 0 when cutout > 0.
struct ImageAugment {
    int dy = 0, dx = 0;
    bool flip = false;
    int cut_y = 0, cut_x = 0, cutout = 0;
    bool operator==(const ImageAugment&) const = default;
};

/// The augmentation of the image with dataset index `index` in epoch `epoch` (0-based) of a run
/// seeded `seed`, for images of height x width: dy, dx uniform in [-crop_pad, crop_pad], the flip
/// as the mode says, the cutout's corner uniform over the places where it fits whole.
ImageAugment draw_augment(const Augmentation& a, std::uint64_t seed, int epoch, std::size_t index, int height, int width);

/// Augments `batch` (B x C x H x W) in place: example n is dataset example indices[n]. Images are
/// split between the threads; the result does not depend on their number. Throws when the batch
/// is not 4-D, an index list is missing, or the settings do not fit the images (Augmentation::check).
void augment_batch(const Augmentation& a, std::uint64_t seed, int epoch, const std::size_t* indices, Tensor<float>& batch);

// ---- the transforms, on one image (C x H x W floats, `in` and `out` distinct) ----------------------

/// out(c, y, x) = in(c, y + dy, x + dx), the pixels beyond the edges as `padding` says. Needs
/// |dy| < H and |dx| < W (for reflect; any shift for zero). Fast: rows copied in runs.
void translate_image(const float* in, float* out, int channels, int height, int width, int dy, int dx, Padding padding);
/// The same, one pixel at a time as the formula reads (the reference the fast one is tested against).
void translate_image_plain(const float* in, float* out, int channels, int height, int width, int dy, int dx, Padding padding);
/// Mirrors each row in place: x -> W - 1 - x.
void flip_image(float* image, int channels, int height, int width);
/// Sets image(c, y, x) = 0 for cut_y <= y < cut_y + side and cut_x <= x < cut_x + side (clipped
/// to the image).
void cut_out(float* image, int channels, int height, int width, int cut_y, int cut_x, int side);

/// A batch (B x C x H x W) with every image translated by (dy, dx), then flipped when `flip` (the
/// views of test-time augmentation). Throws when the batch is not 4-D or a shift does not fit.
Tensor<float> transformed_batch(const Tensor<float>& batch, int dy, int dx, bool flip, Padding padding);

}  // namespace mcnn::data
