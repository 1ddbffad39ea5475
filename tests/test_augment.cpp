// Augmentation on the fly (data/augment.hpp) and test-time augmentation (train/metrics.hpp): each
// transform's pixels on small images, the fast translation against the formula's loops, the seeded
// draws (per image index, not batch place), the settings' refusals, fit() and config.json.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <map>
#include <memory>
#include <tuple>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mcnn/data/augment.hpp"
#include "mcnn/nn/layers.hpp"
#include "mcnn/ops/loss.hpp"
#include "mcnn/ops/shape.hpp"
#include "mcnn/optim/sgd.hpp"
#include "mcnn/threads.hpp"
#include "mcnn/train/config.hpp"
#include "mcnn/train/trainer.hpp"
#include "support.hpp"

using namespace mcnn;
using namespace mcnn::data;
using mcnn::test::contains;
using mcnn::test::error_of;

namespace {

/// A C x H x W image (or B x C x H x W batch) holding 0, 1, 2, ... in storage order.
Tensor<float> counting(const Shape& shape) {
    Tensor<float> t(shape);
    for (std::size_t i = 0; i < t.numel(); ++i) t[i] = static_cast<float>(i);
    return t;
}

std::vector<float> values(const Tensor<float>& t) { return {t.data(), t.data() + t.numel()}; }

/// Image n of a B x C x H x W batch.
std::vector<float> image(const Tensor<float>& batch, int n) {
    const std::size_t per = batch.numel() / static_cast<std::size_t>(batch.dim(0));
    return {batch.data() + n * per, batch.data() + (n + 1) * per};
}

Tensor<float> random_batch(const Shape& shape, std::uint64_t seed) {
    std::mt19937 rng(static_cast<unsigned>(seed));
    return test::uniform<float>(shape, rng);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(augment)

// One channel of 3 x 4: rows 0 1 2 3 / 4 5 6 7 / 8 9 10 11. out(y, x) = in(y + dy, x + dx).
BOOST_AUTO_TEST_CASE(translate_pixels_reflect_and_zero) {
    const Tensor<float> in = counting(Shape{1, 3, 4});
    Tensor<float> out(Shape{1, 3, 4});
    // dy = 1, dx = -1: row y reads row y + 1 (row 3 mirrors to row 1); column x reads x - 1
    // (column -1 mirrors to column 1).
    translate_image(in.data(), out.data(), 1, 3, 4, 1, -1, Padding::reflect);
    BOOST_TEST(values(out) == (std::vector<float>{5, 4, 5, 6, 9, 8, 9, 10, 5, 4, 5, 6}), boost::test_tools::per_element());
    translate_image(in.data(), out.data(), 1, 3, 4, 1, -1, Padding::zero);
    BOOST_TEST(values(out) == (std::vector<float>{0, 4, 5, 6, 0, 8, 9, 10, 0, 0, 0, 0}), boost::test_tools::per_element());
    // dy = -2, dx = 2: rows -2, -1, 0 -> 2, 1, 0; columns 2, 3, 4, 5 -> 2, 3, 2, 1.
    translate_image(in.data(), out.data(), 1, 3, 4, -2, 2, Padding::reflect);
    BOOST_TEST(values(out) == (std::vector<float>{10, 11, 10, 9, 6, 7, 6, 5, 2, 3, 2, 1}), boost::test_tools::per_element());
    translate_image(in.data(), out.data(), 1, 3, 4, -2, 2, Padding::zero);
    BOOST_TEST(values(out) == (std::vector<float>{0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 0, 0}), boost::test_tools::per_element());
    // A zero shift copies; a zero-padded shift past the image gives zeros.
    translate_image(in.data(), out.data(), 1, 3, 4, 0, 0, Padding::reflect);
    BOOST_TEST(values(out) == values(in), boost::test_tools::per_element());
    translate_image(in.data(), out.data(), 1, 3, 4, 0, 5, Padding::zero);
    BOOST_TEST(values(out) == std::vector<float>(12, 0.0f), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(translate_fast_equals_plain_loops) {
    const int c = 3, h = 5, w = 6;
    const Tensor<float> in = random_batch(Shape{c, h, w}, 7);
    Tensor<float> fast(in.shape()), plain(in.shape());
    for (Padding p : {Padding::reflect, Padding::zero})
        for (int dy = -(h - 1); dy < h; ++dy)
            for (int dx = -(w - 1); dx < w; ++dx) {
                fast.fill(-99.0f);  // every element must be written
                plain.fill(-77.0f);
                translate_image(in.data(), fast.data(), c, h, w, dy, dx, p);
                translate_image_plain(in.data(), plain.data(), c, h, w, dy, dx, p);
                BOOST_TEST(values(fast) == values(plain), padding_name(p) << " shift " << dy << ", " << dx);
            }
}

BOOST_AUTO_TEST_CASE(flip_and_cutout_pixels) {
    Tensor<float> t = counting(Shape{2, 2, 3});
    flip_image(t.data(), 2, 2, 3);
    BOOST_TEST(values(t) == (std::vector<float>{2, 1, 0, 5, 4, 3, 8, 7, 6, 11, 10, 9}), boost::test_tools::per_element());
    Tensor<float> u = counting(Shape{1, 4, 4});
    cut_out(u.data(), 1, 4, 4, 1, 2, 2);  // rows 1-2, columns 2-3
    BOOST_TEST(values(u) == (std::vector<float>{0, 1, 2, 3, 4, 5, 0, 0, 8, 9, 0, 0, 12, 13, 14, 15}),
               boost::test_tools::per_element());
    Tensor<float> v = counting(Shape{1, 3, 3});
    cut_out(v.data(), 1, 3, 3, 2, -1, 2);  // clipped to row 2, column 0
    BOOST_TEST(values(v) == (std::vector<float>{0, 1, 2, 3, 4, 5, 0, 7, 8}), boost::test_tools::per_element());
}

// The draws cover their ranges, about evenly, and the alternate flip turns every epoch.
BOOST_AUTO_TEST_CASE(draws_cover_their_ranges) {
    const Augmentation a{.crop_pad = 2, .padding = Padding::reflect, .flip = FlipMode::random, .cutout = 8};
    std::map<int, int> dy, dx, cut_y;
    int flips = 0;
    const int n = 5000;
    for (int i = 0; i < n; ++i) {
        const ImageAugment g = draw_augment(a, 3, 1, static_cast<std::size_t>(i), 32, 32);
        ++dy[g.dy];
        ++dx[g.dx];
        ++cut_y[g.cut_y];
        flips += g.flip;
        BOOST_TEST(g.cutout == 8);
        BOOST_TEST((g.cut_x >= 0 && g.cut_x <= 24));
    }
    BOOST_TEST(dy.size() == 5u);
    BOOST_TEST(dx.size() == 5u);
    BOOST_TEST((dy.begin()->first == -2 && dy.rbegin()->first == 2));
    for (const auto& [v, count] : dy) BOOST_TEST(std::abs(count - n / 5) < 150, "dy " << v << ": " << count);
    BOOST_TEST((cut_y.begin()->first == 0 && cut_y.rbegin()->first == 24 && cut_y.size() == 25u));
    BOOST_TEST(std::abs(flips - n / 2) < 200);

    const Augmentation alt{.flip = FlipMode::alternate};
    int flipped_first = 0;
    for (std::size_t i = 0; i < 1000; ++i) {
        const bool f0 = draw_augment(alt, 3, 0, i, 32, 32).flip;
        flipped_first += f0;
        for (int e = 1; e < 5; ++e) BOOST_TEST(draw_augment(alt, 3, e, i, 32, 32).flip == (f0 != (e % 2 == 1)));
        const ImageAugment g = draw_augment(alt, 3, 0, i, 32, 32);
        BOOST_TEST((g.dy == 0 && g.dx == 0 && g.cutout == 0));
    }
    BOOST_TEST(std::abs(flipped_first - 500) < 80);
}

// augment_batch = each image's draw applied by hand (plain translation, flip, cutout); the same
// seed gives the same batch, another epoch or seed another.
BOOST_AUTO_TEST_CASE(batch_is_each_images_draw) {
    const Augmentation a{.crop_pad = 3, .padding = Padding::zero, .flip = FlipMode::random, .cutout = 3};
    const Tensor<float> original = random_batch(Shape{6, 2, 7, 8}, 11);
    const std::vector<std::size_t> indices{40, 3, 17, 8, 0, 25};
    Tensor<float> batch = original;
    augment_batch(a, 5, 2, indices.data(), batch);
    for (int n = 0; n < 6; ++n) {
        const ImageAugment g = draw_augment(a, 5, 2, indices[n], 7, 8);
        Tensor<float> expected(Shape{2, 7, 8});
        translate_image_plain(original.data() + n * 112, expected.data(), 2, 7, 8, g.dy, g.dx, Padding::zero);
        Tensor<float> mirrored = expected;
        if (g.flip)
            for (int r = 0; r < 14; ++r)
                for (int x = 0; x < 8; ++x) mirrored[r * 8 + x] = expected[r * 8 + 7 - x];
        for (int c = 0; c < 2; ++c)
            for (int y = g.cut_y; y < g.cut_y + 3; ++y)
                for (int x = g.cut_x; x < g.cut_x + 3; ++x) mirrored[(c * 7 + y) * 8 + x] = 0;
        BOOST_TEST(image(batch, n) == values(mirrored), "image " << n);
    }
    Tensor<float> again = original, other_epoch = original, other_seed = original;
    augment_batch(a, 5, 2, indices.data(), again);
    augment_batch(a, 5, 3, indices.data(), other_epoch);
    augment_batch(a, 6, 2, indices.data(), other_seed);
    BOOST_TEST(values(again) == values(batch));
    BOOST_TEST(values(other_epoch) != values(batch));
    BOOST_TEST(values(other_seed) != values(batch));
    Tensor<float> untouched = original;
    augment_batch(Augmentation{}, 5, 2, indices.data(), untouched);  // none: the batch as filled
    BOOST_TEST(values(untouched) == values(original));
}

// An image's augmentation depends on its dataset index, not its place in the batch, the batch's
// size or the thread count.
BOOST_AUTO_TEST_CASE(batch_composition_and_threads_do_not_matter) {
    const Augmentation a{.crop_pad = 4, .padding = Padding::reflect, .flip = FlipMode::alternate, .cutout = 5};
    const int count = 40;
    const Tensor<float> data = random_batch(Shape{count, 3, 12, 12}, 2);
    std::vector<std::size_t> all(count);
    for (int i = 0; i < count; ++i) all[i] = static_cast<std::size_t>(i);
    Tensor<float> whole = data;
    {
        const ThreadLimit threads(2);
        augment_batch(a, 9, 1, all.data(), whole);
    }
    // Images 31 and 5, alone and in the other order, on one thread.
    Tensor<float> pair(Shape{2, 3, 12, 12});
    const std::size_t per = 3 * 12 * 12;
    std::copy(data.data() + 31 * per, data.data() + 32 * per, pair.data());
    std::copy(data.data() + 5 * per, data.data() + 6 * per, pair.data() + per);
    const std::vector<std::size_t> picked{31, 5};
    const ThreadLimit one(1);
    augment_batch(a, 9, 1, picked.data(), pair);
    BOOST_TEST(image(pair, 0) == image(whole, 31));
    BOOST_TEST(image(pair, 1) == image(whole, 5));
    Tensor<float> serial = data;
    augment_batch(a, 9, 1, all.data(), serial);
    BOOST_TEST(values(serial) == values(whole));
}

BOOST_AUTO_TEST_CASE(refusals_name_the_setting) {
    const std::vector<std::size_t> idx{0};
    Tensor<float> batch(Shape{1, 1, 4, 4});
    const auto refusal = [&](Augmentation a) { return error_of([&] { augment_batch(a, 0, 0, idx.data(), batch); }); };
    BOOST_TEST(contains(refusal({.crop_pad = 4}), "crop padding 4 with reflect padding needs images larger than it, got 4 x 4"));
    BOOST_CHECK_NO_THROW(augment_batch({.crop_pad = 4, .padding = Padding::zero}, 0, 0, idx.data(), batch));  // zeros fill any shift
    BOOST_TEST(contains(refusal({.crop_pad = -1}), "crop padding must be >= 0 pixels, got -1"));
    BOOST_TEST(contains(refusal({.cutout = 5}), "cutout side 5 is larger than the 4 x 4 images"));
    BOOST_TEST(contains(refusal({.cutout = -2}), "cutout side must be >= 0 pixels, got -2"));
    BOOST_TEST(contains(error_of([&] { augment_batch({.cutout = 2}, 0, 0, nullptr, batch); }), "no dataset indices"));
    Tensor<float> flat(Shape{2, 16});
    BOOST_TEST(contains(error_of([&] { augment_batch({.cutout = 2}, 0, 0, idx.data(), flat); }), "augment_batch"));
    BOOST_TEST(contains(error_of([&] { (void)draw_augment({.cutout = 2}, 0, -1, 0, 4, 4); }), "epoch must be >= 0, got -1"));
    Tensor<float> out(Shape{1, 4, 4});
    BOOST_TEST(contains(error_of([&] { translate_image(batch.data(), out.data(), 1, 4, 4, 0, -4, Padding::reflect); }),
                        "got (0, -4) for 4 x 4 images"));
    BOOST_TEST(contains(error_of([] { (void)padding_from_name("mirror"); }), "unknown padding 'mirror'; known: zero, reflect"));
    BOOST_TEST(contains(error_of([] { (void)flip_mode_from_name("yes"); }), "unknown flip mode 'yes'; known: none, random, alternate"));
    BOOST_TEST(contains(error_of([] { (void)tta_from_name("all"); }), "unknown test-time augmentation 'all'"));
    for (FlipMode f : {FlipMode::none, FlipMode::random, FlipMode::alternate}) BOOST_TEST((flip_mode_from_name(flip_mode_name(f)) == f));
    for (Tta t : {Tta::none, Tta::flip, Tta::flip_translate}) BOOST_TEST((tta_from_name(tta_name(t)) == t));
    BOOST_TEST(Augmentation{}.describe() == "none");
    BOOST_TEST((Augmentation{.crop_pad = 2, .flip = FlipMode::alternate, .cutout = 8}.describe() ==
                "crop-pad 2 (reflect), flip alternate, cutout 8"));
}

// ---- test-time augmentation -----------------------------------------------------------------------

namespace {

/// flatten -> linear: 1 x 3 x 4 images, 3 classes; records the batches it trains on (in train
/// mode and larger than one image: fit's model summary runs one image through it).
struct FlatNet : Module<float> {
    Linear<float> fc;
    std::vector<std::vector<float>> seen;  // each training batch's values
    explicit FlatNet(Rng& rng, int features = 12) : fc(features, 3, rng) { this->register_modules({{"fc", fc}}); }
    Var<float> forward(const Var<float>& x) override {
        if (this->is_training() && x.shape()[0] > 1) seen.push_back(values(x.value()));
        return fc(flatten(x));
    }
};

/// The view of a 1 x H x W batch by the formula: out(y, x) = in(y + dy, x + dx) mirrored at the
/// edges (-1 -> 1, H -> H - 2), then x -> W - 1 - x when flipped.
Tensor<float> view_by_hand(const Tensor<float>& batch, int dy, int dx, bool flip) {
    const int b = batch.dim(0), h = batch.dim(2), w = batch.dim(3);
    const auto mirror = [](int i, int n) { return i < 0 ? -i : i >= n ? 2 * n - 2 - i : i; };
    Tensor<float> out(batch.shape());
    for (int n = 0; n < b; ++n)
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x) {
                const int xo = flip ? w - 1 - x : x;
                out[(n * h + y) * w + xo] = batch[(n * h + mirror(y + dy, h)) * w + mirror(x + dx, w)];
            }
    return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(tta_is_the_weighted_mean_of_its_views) {
    double total = 0;
    for (Tta t : {Tta::none, Tta::flip, Tta::flip_translate}) {
        total = 0;
        for (const TtaView& v : tta_views(t)) total += v.weight;
        BOOST_TEST(total == 1.0);
    }
    BOOST_TEST(tta_views(Tta::flip_translate).size() == 6u);
    Rng rng(4);
    FlatNet net(rng);
    net.eval();
    const Tensor<float> images = random_batch(Shape{2, 1, 3, 4}, 3);
    const auto logits_of = [&](const Tensor<float>& x) {
        Tape<float> tape(Tape<float>::Mode::inference);
        return net.forward(tape.constant(x)).value();
    };
    // flip-translate by hand: 1/4 (x + flip x) + 1/8 (each shift by (-1,-1), (1,1), and its flip).
    Tensor<float> expected(Shape{2, 3});
    expected.fill(0.0f);
    const std::vector<std::tuple<int, int, bool, float>> views{{0, 0, false, 0.25f},  {0, 0, true, 0.25f},   {-1, -1, false, 0.125f},
                                                               {-1, -1, true, 0.125f}, {1, 1, false, 0.125f}, {1, 1, true, 0.125f}};
    for (const auto& [dy, dx, flip, weight] : views) {
        const Tensor<float> l = logits_of(view_by_hand(images, dy, dx, flip));
        for (std::size_t i = 0; i < 6; ++i) expected[i] += weight * l[i];
    }
    test::check_close(tta_logits(net, images, Tta::flip_translate), expected, "flip-translate logits");
    Tensor<float> flip_expected = logits_of(images);
    const Tensor<float> mirrored = logits_of(view_by_hand(images, 0, 0, true));
    for (std::size_t i = 0; i < 6; ++i) flip_expected[i] = 0.5f * flip_expected[i] + 0.5f * mirrored[i];
    test::check_close(tta_logits(net, images, Tta::flip), flip_expected, "flip logits");
    test::check_close(tta_logits(net, images, Tta::none), logits_of(images), "plain logits");

    // evaluate(): the loss and the predictions of the combined logits.
    const TensorDataset data(images, {2, 0}, 3);
    const Evaluation e = evaluate(net, data, 1, Tta::flip_translate);
    double loss = 0;
    int correct = 0;
    for (int n = 0; n < 2; ++n) {
        const int label = n == 0 ? 2 : 0;
        double sum = 0;
        int best = 0;
        for (int k = 0; k < 3; ++k) {
            sum += std::exp(static_cast<double>(expected[n * 3 + k]));
            if (expected[n * 3 + k] > expected[n * 3 + best]) best = k;
        }
        loss += std::log(sum) - expected[n * 3 + label];
        correct += best == label;
    }
    BOOST_TEST(e.count == 2u);
    BOOST_TEST(e.loss == loss / 2, boost::test_tools::tolerance(1e-5));
    BOOST_TEST(e.accuracy == 50.0 * correct);
    BOOST_TEST(contains(error_of([&] { (void)tta_logits(net, Tensor<float>(Shape{2, 12}), Tta::flip); }), "tta_logits"));
}

// ---- fit() and the run's settings -----------------------------------------------------------------

namespace {

/// Fits `net` on `data` (12 examples of 1 x 3 x 4) for 2 epochs; returns the batches it trained on.
std::vector<float> trained_on(FlatNet& net, const TensorDataset& data, int batch, const Augmentation& a, Tta tta = Tta::none,
                              TrainResult* result = nullptr) {
    Sgd<float> sgd(net.parameters(), {.lr = 0.1});
    FitOptions o;
    o.epochs = 2;
    o.batch = batch;
    o.seed = 8;
    o.report_every = 1000;
    o.eval_batch = 5;
    o.out = nullptr;
    o.plots = false;
    o.handle_signals = false;
    o.augment = a;
    o.tta = tta;
    const TrainResult r = fit(net, sgd, data, data, o);
    if (result) *result = r;
    std::vector<float> all;
    for (const auto& b : net.seen) all.insert(all.end(), b.begin(), b.end());
    return all;
}

}  // namespace

BOOST_AUTO_TEST_CASE(fit_augments_each_example_by_its_index_and_epoch) {
    std::vector<int> labels(12);
    for (int i = 0; i < 12; ++i) labels[i] = i % 3;
    const Tensor<float> examples = random_batch(Shape{12, 1, 3, 4}, 21);
    const TensorDataset data(examples, labels, 3);
    const Augmentation a{.crop_pad = 1, .padding = Padding::reflect, .flip = FlipMode::random, .cutout = 2};
    // Expected: each epoch's examples in the loader's order, augmented as one batch.
    std::vector<float> plain_expected, augmented_expected;
    BatchLoader loader(data, 12, true, 8);
    for (int epoch = 0; epoch < 2; ++epoch) {
        loader.start_epoch(epoch);
        Tensor<float> batch;
        std::vector<int> l;
        BOOST_TEST_REQUIRE(loader.next(batch, l));
        plain_expected.insert(plain_expected.end(), batch.data(), batch.data() + batch.numel());
        augment_batch(a, 8, epoch, loader.batch_indices(), batch);
        augmented_expected.insert(augmented_expected.end(), batch.data(), batch.data() + batch.numel());
    }
    Rng rng(1);
    FlatNet plain_net(rng), net4(rng), net6(rng), tta_net(rng);
    BOOST_TEST(trained_on(plain_net, data, 4, Augmentation{}) == plain_expected);  // none: the batches as filled
    BOOST_TEST(trained_on(net4, data, 4, a) == augmented_expected);
    BOOST_TEST(trained_on(net6, data, 6, a) == augmented_expected);  // whatever the batch size
    BOOST_TEST(augmented_expected != plain_expected);

    // The final report with test-time augmentation: the model evaluated with it.
    TrainResult r;
    (void)trained_on(tta_net, data, 4, a, Tta::flip, &r);
    tta_net.eval();
    const Evaluation e = evaluate(tta_net, data, 5, Tta::flip);
    BOOST_TEST(r.test.loss == e.loss);
    BOOST_TEST(r.test.accuracy == e.accuracy);
    BOOST_TEST(r.test.loss != evaluate(tta_net, data, 5).loss);  // not the plain evaluation
    FlatNet other(rng);
    Sgd<float> sgd(other.parameters(), {.lr = 0.1});
    FitOptions o;
    o.batch = 4;
    o.out = nullptr;
    o.handle_signals = false;
    o.augment = {.crop_pad = 3};
    BOOST_TEST(contains(error_of([&] { fit(other, sgd, data, data, o); }), "crop padding 3 with reflect padding needs images larger"));
}

BOOST_AUTO_TEST_CASE(config_json_holds_the_augmentation) {
    TrainConfig c;
    c.augment = {.crop_pad = 2, .padding = Padding::zero, .flip = FlipMode::alternate, .cutout = 6};
    c.tta = Tta::flip_translate;
    const TrainConfig back = TrainConfig::from_json(c.to_json());
    BOOST_TEST(back.augment.crop_pad == 2);
    BOOST_TEST((back.augment.padding == Padding::zero));
    BOOST_TEST((back.augment.flip == FlipMode::alternate));
    BOOST_TEST(back.augment.cutout == 6);
    BOOST_TEST((back.tta == Tta::flip_translate));
    // A config.json from before augmentation (none of its fields) reads as none.
    auto j = nlohmann::json::parse(c.to_json());
    for (const char* key : {"crop_pad", "crop_padding", "flip", "cutout", "tta"}) j.erase(key);
    const TrainConfig old = TrainConfig::from_json(j.dump());
    BOOST_TEST(!old.augment.enabled());
    BOOST_TEST((old.tta == Tta::none));
    j["flip"] = "sometimes";
    BOOST_TEST(contains(error_of([&] { TrainConfig::from_json(j.dump()); }), "run config: field 'flip': unknown flip mode 'sometimes'"));
    j["flip"] = "none";
    j["crop_pad"] = -1;
    BOOST_TEST(contains(error_of([&] { TrainConfig::from_json(j.dump()); }), "field 'crop_pad' must be an integer >= 0, got -1"));
    c.run_dir = "x";
    c.augment.crop_pad = 32;
    c.augment.padding = Padding::reflect;
    BOOST_TEST(contains(error_of([&] { c.validate(); }), "crop padding 32 with reflect padding"));
}

BOOST_AUTO_TEST_SUITE_END()
