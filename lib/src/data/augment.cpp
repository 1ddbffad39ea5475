// Augmentation on the fly: see mcnn/data/augment.hpp. The random draws are counter-based (a hash
// of seed, epoch, image index and draw number), so no generator state is carried between batches.
#include "mcnn/data/augment.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "../parallel.hpp"
#include "shuffle.hpp"

namespace mcnn::data {
namespace {

/// The key of image `index` in epoch `epoch` of a run seeded `seed` (the alternate flip's coin:
/// epoch coin_epoch, the same in every epoch).
std::uint64_t augment_key(std::uint64_t seed, std::uint64_t epoch, std::size_t index) {
    std::uint64_t k = detail::mix(seed ^ 0x6A09E667F3BCC909ull);  // apart from the shuffle's keys
    k = detail::mix(k ^ epoch);
    return detail::mix(k ^ static_cast<std::uint64_t>(index));
}

/// Draw number `draw` of a key: uniform in [0, n) by multiply-shift of 32 random bits (bias below
/// n / 2^32, nothing for n of a few dozen).
int uniform_below(std::uint64_t key, std::uint64_t draw, int n) {
    const std::uint64_t r = detail::mix(key + (draw + 1) * 0x9E3779B97F4A7C15ull) >> 32;
    return static_cast<int>((r * static_cast<std::uint64_t>(n)) >> 32);
}

constexpr std::uint64_t coin_epoch = ~std::uint64_t{0};  // the alternate flip's per-image coin

/// Index i of a line of n pixels, mirrored at the edges as PyTorch's "reflect" (|shift| < n).
int reflected(int i, int n) {
    if (i < 0) return -i;
    if (i >= n) return 2 * (n - 1) - i;
    return i;
}

void check_shift(int dy, int dx, int height, int width, Padding padding) {
    if (padding == Padding::reflect && (std::abs(dy) >= height || std::abs(dx) >= width))
        fail("translate: a reflected shift must be below the image's side: got ({}, {}) for {} x {} images", dy, dx, height,
             width);
}

}  // namespace

std::string padding_name(Padding p) { return p == Padding::zero ? "zero" : "reflect"; }

std::string flip_mode_name(FlipMode f) {
    switch (f) {
    case FlipMode::none: return "none";
    case FlipMode::random: return "random";
    case FlipMode::alternate: return "alternate";
    }
    return "?";
}

Padding padding_from_name(const std::string& name) {
    if (name == "zero") return Padding::zero;
    if (name == "reflect") return Padding::reflect;
    fail("unknown padding '{}'; known: zero, reflect", name);
}

FlipMode flip_mode_from_name(const std::string& name) {
    for (FlipMode f : {FlipMode::none, FlipMode::random, FlipMode::alternate})
        if (flip_mode_name(f) == name) return f;
    fail("unknown flip mode '{}'; known: none, random, alternate", name);
}

std::string Augmentation::describe() const {
    if (!enabled()) return "none";
    std::vector<std::string> parts;
    if (crop_pad > 0) parts.push_back(fmt::format("crop-pad {} ({})", crop_pad, padding_name(padding)));
    if (flip != FlipMode::none) parts.push_back("flip " + flip_mode_name(flip));
    if (cutout > 0) parts.push_back(fmt::format("cutout {}", cutout));
    return fmt::format("{}", fmt::join(parts, ", "));
}

void Augmentation::check(int height, int width) const {
    if (crop_pad < 0) fail("augmentation: crop padding must be >= 0 pixels, got {}", crop_pad);
    if (cutout < 0) fail("augmentation: cutout side must be >= 0 pixels, got {}", cutout);
    if (padding == Padding::reflect && (crop_pad >= height || crop_pad >= width))
        fail("augmentation: crop padding {} with reflect padding needs images larger than it, got {} x {}", crop_pad, height,
             width);
    if (cutout > height || cutout > width)
        fail("augmentation: cutout side {} is larger than the {} x {} images", cutout, height, width);
}

ImageAugment draw_augment(const Augmentation& a, std::uint64_t seed, int epoch, std::size_t index, int height, int width) {
    if (epoch < 0) fail("draw_augment: epoch must be >= 0, got {}", epoch);
    const std::uint64_t key = augment_key(seed, static_cast<std::uint64_t>(epoch), index);
    ImageAugment out;
    if (a.crop_pad > 0) {
        out.dy = uniform_below(key, 0, 2 * a.crop_pad + 1) - a.crop_pad;
        out.dx = uniform_below(key, 1, 2 * a.crop_pad + 1) - a.crop_pad;
    }
    if (a.flip == FlipMode::random) out.flip = uniform_below(key, 2, 2) == 1;
    if (a.flip == FlipMode::alternate)
        out.flip = (uniform_below(augment_key(seed, coin_epoch, index), 0, 2) == 1) != (epoch % 2 == 1);
    if (a.cutout > 0) {
        out.cutout = a.cutout;
        out.cut_y = uniform_below(key, 3, height - a.cutout + 1);
        out.cut_x = uniform_below(key, 4, width - a.cutout + 1);
    }
    return out;
}

// ---- the transforms ------------------------------------------------------------------------------

void translate_image_plain(const float* in, float* out, int channels, int height, int width, int dy, int dx, Padding padding) {
    check_shift(dy, dx, height, width, padding);
    for (int c = 0; c < channels; ++c)
        for (int y = 0; y < height; ++y)
            for (int x = 0; x < width; ++x) {
                int sy = y + dy, sx = x + dx;
                const bool inside = sy >= 0 && sy < height && sx >= 0 && sx < width;
                float v = 0;
                if (inside || padding == Padding::reflect) {
                    sy = reflected(sy, height);
                    sx = reflected(sx, width);
                    v = in[(static_cast<std::size_t>(c) * height + sy) * width + sx];
                }
                out[(static_cast<std::size_t>(c) * height + y) * width + x] = v;
            }
}

void translate_image(const float* in, float* out, int channels, int height, int width, int dy, int dx, Padding padding) {
    check_shift(dy, dx, height, width, padding);
    // Columns x in [x0, x1) read in-range pixels x + dx: one copy; the rest are border pixels.
    const int x0 = std::clamp(-dx, 0, width), x1 = std::clamp(width - dx, x0, width);
    for (int c = 0; c < channels; ++c)
        for (int y = 0; y < height; ++y) {
            float* row = out + (static_cast<std::size_t>(c) * height + y) * width;
            const int sy = y + dy;
            if ((sy < 0 || sy >= height) && padding == Padding::zero) {
                std::fill(row, row + width, 0.0f);
                continue;
            }
            const float* src = in + (static_cast<std::size_t>(c) * height + reflected(sy, height)) * width;
            if (x1 > x0) std::memcpy(row + x0, src + x0 + dx, static_cast<std::size_t>(x1 - x0) * sizeof(float));
            for (int x = 0; x < x0; ++x) row[x] = padding == Padding::zero ? 0.0f : src[reflected(x + dx, width)];
            for (int x = x1; x < width; ++x) row[x] = padding == Padding::zero ? 0.0f : src[reflected(x + dx, width)];
        }
}

void flip_image(float* image, int channels, int height, int width) {
    for (std::size_t r = 0; r < static_cast<std::size_t>(channels) * height; ++r) std::reverse(image + r * width, image + (r + 1) * width);
}

void cut_out(float* image, int channels, int height, int width, int cut_y, int cut_x, int side) {
    const int y0 = std::clamp(cut_y, 0, height), y1 = std::clamp(cut_y + side, y0, height);
    const int x0 = std::clamp(cut_x, 0, width), x1 = std::clamp(cut_x + side, x0, width);
    for (int c = 0; c < channels; ++c)
        for (int y = y0; y < y1; ++y) {
            float* row = image + (static_cast<std::size_t>(c) * height + y) * width;
            std::fill(row + x0, row + x1, 0.0f);
        }
}

// ---- batches -------------------------------------------------------------------------------------

void augment_batch(const Augmentation& a, std::uint64_t seed, int epoch, const std::size_t* indices, Tensor<float>& batch) {
    if (!a.enabled()) return;
    require_rank("augment_batch (B x C x H x W batch)", batch.shape(), 4);
    if (!indices && batch.dim(0) > 0) fail("augment_batch: no dataset indices given for the batch of {}", batch.shape().str());
    const int channels = batch.dim(1), height = batch.dim(2), width = batch.dim(3);
    a.check(height, width);
    const std::size_t per = static_cast<std::size_t>(channels) * height * width;
    mcnn::detail::parallel_ranges(batch.dim(0), 16, [&](std::ptrdiff_t begin, std::ptrdiff_t end) {
        std::vector<float> scratch(per);
        for (std::ptrdiff_t n = begin; n < end; ++n) {
            float* image = batch.data() + static_cast<std::size_t>(n) * per;
            const ImageAugment g = draw_augment(a, seed, epoch, indices[n], height, width);
            if (g.dy != 0 || g.dx != 0) {
                std::memcpy(scratch.data(), image, per * sizeof(float));
                translate_image(scratch.data(), image, channels, height, width, g.dy, g.dx, a.padding);
            }
            if (g.flip) flip_image(image, channels, height, width);
            if (g.cutout > 0) cut_out(image, channels, height, width, g.cut_y, g.cut_x, g.cutout);
        }
    });
}

Tensor<float> transformed_batch(const Tensor<float>& batch, int dy, int dx, bool flip, Padding padding) {
    require_rank("transformed_batch (B x C x H x W batch)", batch.shape(), 4);
    const int channels = batch.dim(1), height = batch.dim(2), width = batch.dim(3);
    check_shift(dy, dx, height, width, padding);
    Tensor<float> out(batch.shape());
    const std::size_t per = static_cast<std::size_t>(channels) * height * width;
    mcnn::detail::parallel_ranges(batch.dim(0), 16, [&](std::ptrdiff_t begin, std::ptrdiff_t end) {
        for (std::ptrdiff_t n = begin; n < end; ++n) {
            float* image = out.data() + static_cast<std::size_t>(n) * per;
            translate_image(batch.data() + static_cast<std::size_t>(n) * per, image, channels, height, width, dy, dx, padding);
            if (flip) flip_image(image, channels, height, width);
        }
    });
    return out;
}

}  // namespace mcnn::data
