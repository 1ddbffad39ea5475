// Image grids drawn by gnuplot, and the notebook's pictures of a model built from them.
//
// A grid is laid out in pixels here (title, column labels, tiles with captions, row labels, an
// optional colour bar, a footer), then drawn as one gnuplot multiplot: a first, empty plot carries
// every text as a label at screen coordinates, then each tile is a plot whose margins are set at
// screen coordinates to its box, drawn `with rgbimage` from inline data. Colours are computed here
// (palette, range), so every tile is RGB to gnuplot and tiles can each have their own scale.
// Running gnuplot and the atomic rename are shared with the charts (gnuplot.hpp).
#include "mcnn/plot/images.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <sstream>

#include <fmt/format.h>

#include "gnuplot.hpp"
#include "mcnn/error.hpp"
#include "mcnn/ops/loss.hpp"

namespace mcnn::plot {
namespace {

// ---------------------------------------------------------------------------------------------
// Text

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    if (text.empty()) return lines;
    std::string line;
    std::istringstream in(text);
    while (std::getline(in, line)) lines.push_back(line);
    if (text.back() == '\n') lines.emplace_back();
    return lines;
}

/// Code points of UTF-8 text.
std::size_t chars_of(const std::string& text) {
    return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), [](char c) {
        return (static_cast<unsigned char>(c) & 0xc0) != 0x80;
    }));
}

/// A generous estimate of the width in pixels of `text` in a Sans font of `font` points (pngcairo
/// draws a point as a pixel; a character of mixed text is about two thirds of the size wide).
int text_width(const std::string& text, int font) {
    std::size_t widest = 0;
    for (const std::string& line : lines_of(text)) widest = std::max(widest, chars_of(line));
    return static_cast<int>(std::ceil(static_cast<double>(widest) * 0.7 * font));
}

int line_count(const std::string& text) { return static_cast<int>(lines_of(text).size()); }

// ---------------------------------------------------------------------------------------------
// Checks

bool is_rgb(const Tensor<float>& t) { return t.rank() == 3; }
int height_of(const Tensor<float>& t) { return t.dim(-2); }
int width_of(const Tensor<float>& t) { return t.dim(-1); }

/// Throws naming `where` and the problem unless `grid` can be drawn.
void check_grid(const ImageGrid& g, const std::string& where) {
    if (g.rows < 1 || g.cols < 1) fail("{}: empty grid ({} rows x {} columns)", where, g.rows, g.cols);
    if (g.rows > 1000 || g.cols > 1000) fail("{}: grid of {} x {} tiles is too large (1,000 at most each way)", where, g.rows, g.cols);
    const auto cells = static_cast<std::size_t>(g.rows) * static_cast<std::size_t>(g.cols);
    if (g.tiles.size() != cells)
        fail("{}: {} tiles for a grid of {} x {} = {} cells", where, g.tiles.size(), g.rows, g.cols, cells);
    if (!g.row_labels.empty() && g.row_labels.size() != static_cast<std::size_t>(g.rows))
        fail("{}: {} row labels for {} rows", where, g.row_labels.size(), g.rows);
    if (!g.col_labels.empty() && g.col_labels.size() != static_cast<std::size_t>(g.cols))
        fail("{}: {} column labels for {} columns", where, g.col_labels.size(), g.cols);
    if (g.tile_px != 0 && (g.tile_px < 4 || g.tile_px > 1024))
        fail("{}: tile_px {} out of range (4 to 1024, or 0 for automatic)", where, g.tile_px);
    if (g.colorbar && !g.range && g.scaling != Scaling::shared)
        fail("{}: a colour bar needs one range for the grid (a fixed range or shared scaling), not per-tile scaling",
             where);
    const auto check_range = [&](const Range& r, const std::string& what) {
        if (!std::isfinite(r.lo) || !std::isfinite(r.hi) || r.lo > r.hi)
            fail("{}: {} range [{}, {}] is not a finite range with lo <= hi", where, what, r.lo, r.hi);
    };
    if (g.range) check_range(*g.range, "the grid's");
    bool any = false;
    for (int r = 0; r < g.rows; ++r)
        for (int c = 0; c < g.cols; ++c) {
            const Tile& t = g.at(r, c);
            if (t.range) check_range(*t.range, fmt::format("tile ({}, {})'s", r, c));
            if (t.image.empty() && t.image.rank() == 0) continue;
            const Shape& s = t.image.shape();
            const bool gray = s.rank() == 2, rgb = s.rank() == 3 && s[0] == 3;
            if ((!gray && !rgb) || s[-1] < 1 || s[-2] < 1)
                fail("{}: tile ({}, {}) has shape {}; expected H x W (grayscale) or 3 x H x W (RGB)", where, r, c,
                     s.str());
            if (s[-1] > 4096 || s[-2] > 4096) fail("{}: tile ({}, {}) of shape {} is too large", where, r, c, s.str());
            for (const float v : t.image)
                if (!std::isfinite(v)) fail("{}: tile ({}, {}) holds a non-finite value ({})", where, r, c, v);
            any = true;
        }
    if (!any) fail("{}: no tile holds an image", where);
}

// ---------------------------------------------------------------------------------------------
// Layout, in pixels from the top left

struct Layout {
    int tile = 96, font = 11, title_font = 15, line_h = 16, pad = 12, gap = 6;
    int title_h = 0, subtitle_h = 0, col_label_h = 0, footer_h = 0;
    std::vector<int> row_top;    // top of each row's tiles, from the top of the first row
    std::vector<int> caption_h;  // room for each row's captions
    int row_label_w = 0, cell_w = 0, colorbar_w = 0;
    int grid_w = 0, grid_h = 0;
    int width = 0, height = 0;  // the canvas, margins included
    int ox = 0, oy = 0;         // once placed: left of the grid (its row labels), top of the title
};

std::optional<Range> grid_range(const ImageGrid& g);

/// Room for the colour bar's tic labels ("%.3g" of values in its range), in pixels.
int colorbar_tics_w(const ImageGrid& g, int font) {
    const std::optional<Range> r = grid_range(g);
    std::size_t chars = 4;
    if (r) chars = std::max({chars, fmt::format("{:.3g}", r->lo).size(), fmt::format("{:.3g}", r->hi).size()});
    return static_cast<int>(std::ceil(static_cast<double>(chars + 1) * 0.7 * font));
}

int auto_tile(const ImageGrid& g) { return g.tile_px > 0 ? g.tile_px : g.cols > 10 ? 72 : 96; }

Layout layout_for(const ImageGrid& g, int tile) {
    Layout L;
    L.tile = tile;
    L.font = std::clamp(static_cast<int>(std::lround(tile / 8.5)), 9, 12);
    L.title_font = L.font + 4;
    L.line_h = static_cast<int>(std::lround(L.font * 1.5));
    L.gap = std::clamp(tile / 12, 4, 10);
    L.pad = 12;
    if (!g.title.empty()) L.title_h = line_count(g.title) * static_cast<int>(std::lround(L.title_font * 1.6)) + 4;
    if (!g.subtitle.empty()) L.subtitle_h = line_count(g.subtitle) * L.line_h + 4;
    if (!g.footer.empty()) L.footer_h = line_count(g.footer) * L.line_h + 8;
    int widest_caption = 0, label_lines = 0, widest_label = 0;
    L.caption_h.assign(static_cast<std::size_t>(g.rows), 0);
    for (std::size_t k = 0; k < g.tiles.size(); ++k) {
        const Tile& t = g.tiles[k];
        int& h = L.caption_h[k / static_cast<std::size_t>(g.cols)];
        if (!t.caption.empty()) h = std::max(h, line_count(t.caption) * L.line_h + 4);
        widest_caption = std::max(widest_caption, text_width(t.caption, L.font));
    }
    for (const std::string& l : g.col_labels) {
        label_lines = std::max(label_lines, line_count(l));
        widest_label = std::max(widest_label, text_width(l, L.font));
    }
    if (label_lines > 0) L.col_label_h = label_lines * L.line_h + 4;
    for (const std::string& l : g.row_labels) L.row_label_w = std::max(L.row_label_w, text_width(l, L.font) + 12);
    L.cell_w = std::max({tile, widest_caption + 8, widest_label + 8});
    if (g.colorbar)
        L.colorbar_w = 16 + 14 + 8 + colorbar_tics_w(g, L.font - 1) +
                       (g.colorbar_label.empty() ? 0 : L.line_h + 6);
    L.grid_w = L.row_label_w + g.cols * L.cell_w + (g.cols - 1) * L.gap + L.colorbar_w;
    int y = 0;
    for (int r = 0; r < g.rows; ++r) {
        L.row_top.push_back(y);
        y += tile + L.caption_h[static_cast<std::size_t>(r)] + (r + 1 < g.rows ? L.gap : 0);
    }
    L.grid_h = L.col_label_h + y;
    const int text_w = std::max({text_width(g.title, L.title_font), text_width(g.subtitle, L.font),
                                 text_width(g.footer, L.font)});
    L.width = 2 * L.pad + std::max(L.grid_w, text_w);
    L.height = 2 * L.pad + L.title_h + L.subtitle_h + L.grid_h + L.footer_h;
    return L;
}

/// Places the content on a canvas of width x height (at least the layout's size), centred.
void place(Layout& L, int width, int height) {
    L.ox = (width - L.grid_w) / 2;
    L.oy = (height - L.height) / 2 + L.pad;
    L.width = width;
    L.height = height;
}

// ---------------------------------------------------------------------------------------------
// Colours

struct Rgb {
    int r, g, b;
};

Rgb diverging(double t) {  // t in [0, 1]: blue, white at 0.5, red
    const double u = 2 * t - 1;
    const auto mix = [](int from, int to, double a) { return static_cast<int>(std::lround(from + (to - from) * a)); };
    if (u < 0) return {mix(255, 33, -u), mix(255, 102, -u), mix(255, 172, -u)};
    return {mix(255, 178, u), mix(255, 24, u), mix(255, 43, u)};
}

double unit(float v, const Range& r) {
    if (!(r.hi > r.lo)) return 0.5;
    return std::clamp((static_cast<double>(v) - r.lo) / (static_cast<double>(r.hi) - r.lo), 0.0, 1.0);
}

Rgb colour_of(double t, Palette p) {
    if (p == Palette::diverging) return diverging(t);
    const int v = static_cast<int>(std::lround(255 * t));
    return {v, v, v};
}

Range min_max(const Tensor<float>& t) {
    Range r{std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()};
    for (const float v : t) r.lo = std::min(r.lo, v), r.hi = std::max(r.hi, v);
    return r;
}

Range automatic(Range r, Palette p) {
    if (p == Palette::diverging) {
        const float m = std::max(std::abs(r.lo), std::abs(r.hi));
        return {-m, m};
    }
    return r;
}

/// The grid's common range (a fixed one, or shared scaling), if it has one.
std::optional<Range> grid_range(const ImageGrid& g) {
    if (g.range) return g.range;
    if (g.scaling != Scaling::shared) return std::nullopt;
    Range all{std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()};
    for (const Tile& t : g.tiles)
        if (!t.image.empty() && !t.range) {
            const Range r = min_max(t.image);
            all.lo = std::min(all.lo, r.lo), all.hi = std::max(all.hi, r.hi);
        }
    if (!(all.lo <= all.hi)) all = {0, 1};  // every image has its own range
    return automatic(all, g.palette);
}

// ---------------------------------------------------------------------------------------------
// The script

class Script {
public:
    Script(Gnuplot& gp, const Layout& L) : gp_(gp), L_(L) {}

    double sx(double x) const { return x / L_.width; }
    double sy(double y) const { return 1.0 - y / L_.height; }

    /// A text block whose lines are centred (vertically) at y, y + line_h, ...
    void text(const std::string& text, double x, double y, const char* justify, int font, const char* colour,
              int line_h, bool rotate = false) {
        int i = 0;
        for (const std::string& line : lines_of(text)) {
            gp_ << fmt::format("set label {} {} at screen {:.6f}, screen {:.6f} {} font ',{}' textcolor rgb '{}'{}\n",
                               ++label_, detail::quote(line), sx(rotate ? x + i * line_h : x),
                               sy(rotate ? y : y + i * line_h), justify, font, colour, rotate ? " rotate by 90" : "");
            ++i;
        }
    }

    /// Sets the plot area to the box [x0, x1] x [y0, y1] (pixels, y down).
    void box(double x0, double y0, double x1, double y1) {
        gp_ << fmt::format("set lmargin at screen {:.6f}\nset rmargin at screen {:.6f}\n"
                           "set tmargin at screen {:.6f}\nset bmargin at screen {:.6f}\n",
                           sx(x0), sx(x1), sy(y0), sy(y1));
    }

    /// Plots an h x w image of colours (row 0 on top) into the current box. Images with a side of
    /// one pixel are sent as 2 x 2 blocks per pixel: gnuplot needs a grid of 2 x 2 at least.
    void image(int h, int w, const std::function<Rgb(int, int)>& colour) {
        const int ky = h < 2 ? 2 : 1, kx = w < 2 ? 2 : 1;
        gp_ << fmt::format("set xrange [-0.5:{}]\nset yrange [{}:-0.5]\n", w - 0.5, h - 0.5);
        gp_ << "plot '-' using 1:2:3:4:5 with rgbimage notitle\n";
        std::string data;
        for (int i = 0; i < h; ++i)
            for (int si = 0; si < ky; ++si) {
                const double y = i + (si + 0.5) / ky - 0.5;
                for (int j = 0; j < w; ++j) {
                    const Rgb c = colour(i, j);
                    for (int sj = 0; sj < kx; ++sj)
                        data += fmt::format("{} {} {} {} {}\n", j + (sj + 0.5) / kx - 0.5, y, c.r, c.g, c.b);
                }
                data += '\n';
            }
        gp_ << data << "e\n";
    }

private:
    Gnuplot& gp_;
    const Layout& L_;
    int label_ = 0;
};

const char* caption_colour(Mark m) {
    switch (m) {
        case Mark::right: return "#1b7e1b";
        case Mark::wrong: return "#c62828";
        case Mark::none: break;
    }
    return "#202020";
}

void write_grid_script(Gnuplot& gp, const std::string& terminal, const std::string& output, const ImageGrid& g,
                       const Layout& L) {
    Script s(gp, L);
    gp << "set encoding utf8\n";
    gp << fmt::format("set terminal {} size {},{} noenhanced font 'Sans,{}' background rgb 'white'\n", terminal,
                      L.width, L.height, L.font);
    gp << detail::set_output(output);
    gp << "set multiplot\nunset key\nunset tics\nunset border\nunset colorbox\n";

    const int cells_w = g.cols * L.cell_w + (g.cols - 1) * L.gap;
    const int grid_left = L.ox + L.row_label_w;
    const double centre = L.width / 2.0;

    // Every text, as labels of one empty plot over the whole canvas.
    double y = L.oy;
    if (!g.title.empty()) {
        const int title_line = static_cast<int>(std::lround(L.title_font * 1.6));
        s.text(g.title, centre, y + title_line / 2.0 + 2, "center", L.title_font, "#000000", title_line);
        y += L.title_h;
    }
    if (!g.subtitle.empty()) {
        s.text(g.subtitle, centre, y + L.line_h / 2.0, "center", L.font, "#404040", L.line_h);
        y += L.subtitle_h;
    }
    if (!g.col_labels.empty()) {
        for (int c = 0; c < g.cols; ++c) {
            const std::string& label = g.col_labels[static_cast<std::size_t>(c)];
            const int lines = line_count(label);
            // bottom-aligned, just above the tiles
            const double top = y + L.col_label_h - 4 - lines * L.line_h;
            s.text(label, grid_left + c * (L.cell_w + L.gap) + L.cell_w / 2.0, top + L.line_h / 2.0, "center",
                   L.font, "#000000", L.line_h);
        }
        y += L.col_label_h;
    }
    const double tiles_top = y;
    const auto tile_top = [&](int r) { return tiles_top + L.row_top[static_cast<std::size_t>(r)]; };
    const auto cell_left = [&](int c) { return static_cast<double>(grid_left + c * (L.cell_w + L.gap)); };
    for (int r = 0; r < g.rows; ++r) {
        if (!g.row_labels.empty()) {
            const std::string& label = g.row_labels[static_cast<std::size_t>(r)];
            const double mid = tile_top(r) + L.tile / 2.0 - (line_count(label) - 1) * L.line_h / 2.0;
            s.text(label, grid_left - 8, mid, "right", L.font, "#000000", L.line_h);
        }
        for (int c = 0; c < g.cols; ++c) {
            const Tile& t = g.at(r, c);
            if (!t.caption.empty())
                s.text(t.caption, cell_left(c) + L.cell_w / 2.0, tile_top(r) + L.tile + 2 + L.line_h / 2.0, "center",
                       L.font, caption_colour(t.mark), L.line_h);
        }
    }
    const double tiles_bottom = tile_top(g.rows - 1) + L.tile;
    const double bar_left = grid_left + cells_w + 16, bar_right = bar_left + 14;
    if (g.colorbar && !g.colorbar_label.empty()) {
        const double x = bar_right + 8 + colorbar_tics_w(g, L.font - 1) + L.line_h / 2.0 + 2;
        s.text(g.colorbar_label, x, (tiles_top + tiles_bottom) / 2, "center", L.font, "#000000", L.line_h, true);
    }
    if (!g.footer.empty())
        s.text(g.footer, centre, tiles_bottom + L.caption_h.back() + 8 + L.line_h / 2.0, "center", L.font, "#404040",
               L.line_h);
    s.box(0, 0, L.width, L.height);
    gp << "plot [0:1][0:1] NaN notitle\nunset label\n";

    // The tiles.
    gp << "set border 15 lw 1 lc rgb '#a0a0a0'\n";
    const std::optional<Range> common = grid_range(g);
    for (int r = 0; r < g.rows; ++r)
        for (int c = 0; c < g.cols; ++c) {
            const Tile& t = g.at(r, c);
            if (t.image.empty()) continue;
            const Palette palette = t.palette.value_or(g.palette);
            const Range range = t.range ? *t.range : common ? *common : automatic(min_max(t.image), palette);
            const int h = height_of(t.image), w = width_of(t.image);
            const double scale = static_cast<double>(L.tile) / std::max(h, w);
            const double x0 = cell_left(c) + (L.cell_w - w * scale) / 2, y0 = tile_top(r) + (L.tile - h * scale) / 2;
            s.box(x0, y0, x0 + w * scale, y0 + h * scale);
            const float* v = t.image.data();
            const std::size_t plane = static_cast<std::size_t>(h) * static_cast<std::size_t>(w);
            if (is_rgb(t.image)) {
                s.image(h, w, [&](int i, int j) {
                    const std::size_t k = static_cast<std::size_t>(i) * w + j;
                    const auto ch = [&](std::size_t p) { return static_cast<int>(std::lround(255 * unit(v[p * plane + k], range))); };
                    return Rgb{ch(0), ch(1), ch(2)};
                });
            } else {
                s.image(h, w, [&](int i, int j) { return colour_of(unit(v[static_cast<std::size_t>(i) * w + j], range), palette); });
            }
        }

    // The colour bar: a column of 256 colours from lo (bottom) to hi, with tics on its right.
    if (g.colorbar && common) {
        Range r = *common;
        if (!(r.hi > r.lo)) r = {r.lo - 0.5f, r.hi + 0.5f};
        s.box(bar_left, tiles_top, bar_right, tiles_bottom);
        gp << fmt::format("set y2range [{}:{}]\nset y2tics out nomirror scale 0.5 font ',{}' textcolor rgb '#000000'\nset format y2 '%.3g'\n",
                          r.lo, r.hi, L.font - 1);
        constexpr int steps = 256;
        s.image(steps, 1, [&](int i, int) {
            return colour_of(1.0 - (i + 0.5) / steps, g.palette);
        });
        gp << "unset y2tics\n";
    }
    gp << "unset multiplot\nunset output\nexit\n";
}

Layout fitted_layout(const ImageGrid& g, int width, int height, const std::string& where) {
    // The layout grows with the tile size: the largest tile that fits, by bisection.
    const auto fits = [&](int tile) {
        const Layout L = layout_for(g, tile);
        return L.width <= width && L.height <= height;
    };
    if (fits(4)) {
        int lo = 4, hi = 1025;  // fits(lo), and hi does not (or is past the largest tile)
        while (hi - lo > 1) {
            const int mid = (lo + hi) / 2;
            (fits(mid) ? lo : hi) = mid;
        }
        Layout L = layout_for(g, lo);
        place(L, width, height);
        return L;
    }
    const Layout smallest = layout_for(g, 4);
    fail("{}: {}x{} pixels is too small for this grid of {} x {} tiles (it needs {}x{} at least)", where, width, height,
         g.rows, g.cols, smallest.width, smallest.height);
}

PixelSize render(const std::filesystem::path& png, const ImageGrid& g, std::optional<PixelSize> size) {
    const std::string where = "draw_image_grid " + png.string();
    check_grid(g, where);
    Layout L;
    if (size) {
        if (size->width < 16 || size->height < 16 || size->width > 20000 || size->height > 20000)
            fail("{}: size {}x{} out of range (16 to 20000 pixels)", where, size->width, size->height);
        L = fitted_layout(g, size->width, size->height, where);
    } else {
        L = layout_for(g, auto_tile(g));
        if (L.width > 20000 || L.height > 20000)
            fail("{}: the grid would be {}x{} pixels, more than 20000; use smaller tiles", where, L.width, L.height);
        place(L, L.width, L.height);
    }
    detail::check_png_path(png, "draw_image_grid");
    detail::render_png(png, "draw_image_grid", [&](Gnuplot& gp, const std::string& terminal, const std::string& output) {
        write_grid_script(gp, terminal, output, g, L);
    });
    return {L.width, L.height};
}

// ---------------------------------------------------------------------------------------------
// Tensors for the model pictures

/// t[i] (the sub-tensor of the dimensions after the first), e.g. image i of a batch.
Tensor<float> part(const Tensor<float>& t, int i) {
    std::vector<int> dims = t.shape().dims();
    const int n = dims.front();
    if (i < 0 || i >= n) fail("part: index {} out of range for shape {}", i, t.shape().str());
    dims.erase(dims.begin());
    const Shape shape(dims);
    const std::size_t size = shape.numel();
    std::vector<float> values(t.data() + static_cast<std::size_t>(i) * size,
                              t.data() + static_cast<std::size_t>(i + 1) * size);
    return Tensor<float>(shape, std::move(values));
}

Tensor<float> part(const Tensor<float>& t, int i, int j) { return part(part(t, i), j); }

float max_abs(const Tensor<float>& t) {
    float m = 0;
    for (const float v : t) m = std::max(m, std::abs(v));
    return m;
}

Range symmetric(float m) { return {-m, m}; }

std::string g2(double v) { return fmt::format("{:.2g}", v); }

void check_examples(const Examples& e, const char* what) {
    const Shape& s = e.images.shape();
    if (s.rank() != 4 || s[1] != 3)
        fail("{}: images of shape {}; expected B x 3 x H x W", what, s.str());
    if (e.labels.size() != static_cast<std::size_t>(s[0]))
        fail("{}: {} labels for {} images", what, e.labels.size(), s[0]);
    for (const int l : e.labels)
        if (l < 0 || static_cast<std::size_t>(l) >= e.class_names.size())
            fail("{}: label {} has no class name ({} names)", what, l, e.class_names.size());
}

const std::string& class_name(const Examples& e, int label) { return e.class_names.at(static_cast<std::size_t>(label)); }

}  // namespace

// ---------------------------------------------------------------------------------------------
// Image grids

ImageGrid::ImageGrid(int rows_, int cols_) : rows(rows_), cols(cols_) {
    if (rows_ < 0 || cols_ < 0) fail("ImageGrid: negative size {} x {}", rows_, cols_);
    tiles.resize(static_cast<std::size_t>(rows_) * static_cast<std::size_t>(cols_));
}

Tile& ImageGrid::at(int row, int col) { return const_cast<Tile&>(static_cast<const ImageGrid&>(*this).at(row, col)); }

const Tile& ImageGrid::at(int row, int col) const {
    if (row < 0 || row >= rows || col < 0 || col >= cols)
        fail("ImageGrid::at: tile ({}, {}) is outside the {} x {} grid", row, col, rows, cols);
    const std::size_t k = static_cast<std::size_t>(row) * static_cast<std::size_t>(cols) + static_cast<std::size_t>(col);
    if (k >= tiles.size()) fail("ImageGrid::at: tile ({}, {}) missing: {} tiles for {} x {}", row, col, tiles.size(), rows, cols);
    return tiles[k];
}

PixelSize image_grid_size(const ImageGrid& grid) {
    check_grid(grid, "image_grid_size");
    const Layout L = layout_for(grid, auto_tile(grid));
    return {L.width, L.height};
}

PixelSize draw_image_grid(const std::filesystem::path& png, const ImageGrid& grid) {
    return render(png, grid, std::nullopt);
}

PixelSize draw_image_grid(const std::filesystem::path& png, const ImageGrid& grid, int width, int height) {
    return render(png, grid, PixelSize{width, height});
}

// ---------------------------------------------------------------------------------------------
// Pictures of a model

Examples test_examples(const data::Cifar10& cifar, std::size_t count, const data::Normalization& norm) {
    if (count < 1 || count > cifar.test.size())
        fail("test_examples: {} images asked for, the test set has {}", count, cifar.test.size());
    Examples e;
    e.norm = norm;
    e.class_names = cifar.class_names;
    data::fill_batch(cifar.test, 0, count, norm, e.images, e.labels);
    return e;
}

Tensor<float> unnormalised(const Tensor<float>& images, int b, const data::Normalization& norm) {
    if (images.rank() != 4 || images.dim(1) != 3)
        fail("unnormalised: images of shape {}; expected B x 3 x H x W", images.shape().str());
    Tensor<float> img = part(images, b);
    const std::size_t plane = img.numel() / 3;
    for (std::size_t c = 0; c < 3; ++c)
        for (std::size_t k = 0; k < plane; ++k) {
            float& v = img[c * plane + k];
            v = std::clamp(v * norm.std[c] + norm.mean[c], 0.0f, 1.0f);
        }
    return img;
}

Conv2d<float>& first_conv_layer(Module<float>& model) {
    Conv2d<float>* conv = mcnn::first_conv(model);
    if (!conv) fail("model {} has no Conv2d layer, so there is no first conv layer to draw", model.type_name());
    return *conv;
}

ImageGrid feature_map_grid(Module<float>& model, const Examples& examples, const std::string& about) {
    check_examples(examples, "feature_map_grid");
    Conv2d<float>& conv = first_conv_layer(model);
    const int batch = examples.images.dim(0), kernels = conv.weight.value.dim(0);
    Tape<float> tape(Tape<float>::Mode::inference);
    const Tensor<float> maps = conv(tape.constant(examples.images)).value();  // B x D x Ho x Wo

    ImageGrid g(batch + 1, kernels + 1);
    g.title = "Forward pass: what the first conv layer makes of the images";
    g.subtitle = about;
    g.col_labels.push_back("input");
    g.row_labels.push_back("kernels");
    for (int d = 0; d < kernels; ++d) {
        g.col_labels.push_back(fmt::format("kernel {}", d + 1));
        g.at(0, d + 1).image = part(conv.weight.value, d);  // 3 x F x F, scaled to its min/max
    }
    for (int b = 0; b < batch; ++b) {
        g.row_labels.push_back(fmt::format("test image {}\n{}", b + 1, class_name(examples, examples.labels[static_cast<std::size_t>(b)])));
        g.at(b + 1, 0).image = unnormalised(examples.images, b, examples.norm);
        g.at(b + 1, 0).range = Range{0, 1};
        for (int d = 0; d < kernels; ++d) g.at(b + 1, d + 1).image = part(maps, b, d);
    }
    g.footer = fmt::format("Top row: the {} kernels ({}x{}, RGB, each scaled to its min/max).\n"
                           "Below: conv + bias ({}x{}, before relu), each map scaled to its min (black) / max (white).",
                           kernels, conv.weight.value.dim(2), conv.weight.value.dim(3), maps.dim(2), maps.dim(3));
    return g;
}

FirstLayerGradients first_layer_gradients(Module<float>& model, const Examples& examples) {
    check_examples(examples, "first_layer_gradients");
    Conv2d<float>& conv = first_conv_layer(model);
    for (Parameter<float>* p : model.parameters()) p->zero_grad();
    const EvalModeScope<float> eval_mode(model);
    Tape<float> tape;
    const Var<float> x = tape.input(examples.images);
    const Var<float> logits = model.forward(x);
    const Var<float> loss = softmax_cross_entropy(logits, examples.labels);
    tape.backward(loss);
    FirstLayerGradients g;
    g.loss = static_cast<double>(loss.value()[0]);
    g.probabilities = softmax(logits.value());
    g.input = x.grad();
    g.weight = conv.weight.grad;
    g.bias = conv.bias.grad;
    return g;
}

ImageGrid input_gradient_grid(const Examples& examples, const FirstLayerGradients& gradients, const std::string& about) {
    check_examples(examples, "input_gradient_grid");
    require_same_shape("input_gradient_grid (images vs dL/dx)", examples.images.shape(), gradients.input.shape());
    const int batch = examples.images.dim(0), h = examples.images.dim(2), w = examples.images.dim(3);
    ImageGrid g(batch, 6);
    g.title = fmt::format("Backward pass: gradient of the loss for each input pixel (loss {:.3f})", gradients.loss);
    g.subtitle = about;
    g.col_labels = {"input", "|dL/dx|\nmax over RGB", "dL/dx\nas RGB", "dL/dx\nR channel", "dL/dx\nG channel",
                    "dL/dx\nB channel"};
    for (int b = 0; b < batch; ++b) {
        const int label = examples.labels[static_cast<std::size_t>(b)];
        const double p = gradients.probabilities.rank() == 2 ? gradients.probabilities.at({b, label}) : NAN;
        g.row_labels.push_back(fmt::format("{}\np({}) = {:.2f}", class_name(examples, label), class_name(examples, label), p));
        g.at(b, 0).image = unnormalised(examples.images, b, examples.norm);
        g.at(b, 0).range = Range{0, 1};

        const Tensor<float> grad = part(gradients.input, b);  // 3 x H x W
        const float m = max_abs(grad);
        Tensor<float> saliency(Shape{h, w});
        const std::size_t plane = static_cast<std::size_t>(h) * static_cast<std::size_t>(w);
        for (std::size_t k = 0; k < plane; ++k)
            saliency[k] = std::max({std::abs(grad[k]), std::abs(grad[plane + k]), std::abs(grad[2 * plane + k])});
        Tile& s = g.at(b, 1);
        s.image = std::move(saliency);
        s.range = Range{0, m};
        s.palette = Palette::gray;
        s.caption = "max " + g2(m);
        Tile& rgb = g.at(b, 2);
        rgb.image = grad;
        rgb.range = symmetric(m);
        rgb.caption = "±" + g2(m);
        for (int c = 0; c < 3; ++c) {
            Tile& t = g.at(b, 3 + c);
            t.image = part(grad, c);
            t.range = symmetric(m);
            t.palette = Palette::diverging;
            t.caption = "±" + g2(m);
        }
    }
    g.footer = "|dL/dx|: black 0, white the largest. As RGB: grey 0, each channel brighter where the loss grows with it.\n"
               "Channels: blue < 0, white 0, red > 0. One range per image (under each tile).";
    return g;
}

ImageGrid kernel_gradient_grid(Module<float>& model, const FirstLayerGradients& gradients, const std::string& about) {
    Conv2d<float>& conv = first_conv_layer(model);
    const Tensor<float>& k = conv.weight.value;
    require_same_shape("kernel_gradient_grid (conv1.weight vs its gradient)", k.shape(), gradients.weight.shape());
    require_same_shape("kernel_gradient_grid (conv1.bias vs its gradient)", conv.bias.value.shape(), gradients.bias.shape());
    const int kernels = k.dim(0);
    const bool untied = gradients.bias.rank() == 3;
    ImageGrid g(6, kernels);
    g.title = fmt::format("Backward pass: gradient of the loss for the first conv layer (loss {:.3f})", gradients.loss);
    g.subtitle = about;
    g.row_labels = {"kernel", "dL/dK\nas RGB", "dL/dK\nR channel", "dL/dK\nG channel", "dL/dK\nB channel",
                    untied ? fmt::format("dL/db\n(untied, {}x{})", gradients.bias.dim(1), gradients.bias.dim(2))
                           : std::string("dL/db")};
    g.palette = Palette::diverging;
    const float bias_max = max_abs(gradients.bias);
    for (int d = 0; d < kernels; ++d) {
        g.col_labels.push_back(fmt::format("kernel {}", d + 1));
        g.at(0, d).image = part(k, d);  // its own min/max
        const Tensor<float> grad = part(gradients.weight, d);
        const float m = max_abs(grad);
        g.at(1, d).image = grad;
        g.at(1, d).range = symmetric(m);
        for (int c = 0; c < 3; ++c) {
            Tile& t = g.at(2 + c, d);
            t.image = part(grad, c);
            t.range = symmetric(m);
        }
        g.at(4, d).caption = "±" + g2(m);
        Tile& b = g.at(5, d);
        if (untied) {
            b.image = part(gradients.bias, d);
            b.range = symmetric(max_abs(b.image));
            b.caption = "±" + g2(max_abs(b.image));
        } else {
            b.image = Tensor<float>(Shape{1, 1}, gradients.bias[static_cast<std::size_t>(d)]);
            b.range = symmetric(bias_max);  // one range for the row: the colours compare the kernels
            b.caption = fmt::format("{:.2g}", gradients.bias[static_cast<std::size_t>(d)]);
        }
    }
    g.footer = untied ? "Kernel: RGB scaled to its min/max. dL/dK as RGB: grey 0. Channels and dL/db: blue < 0, white 0, red > 0,\n"
                        "one range per kernel for dL/dK and one per map for dL/db (under them). Gradients summed over the batch."
                      : "Kernel: RGB scaled to its min/max. dL/dK as RGB: grey 0. Channels and dL/db: blue < 0, white 0, red > 0,\n"
                        "one range per kernel for dL/dK (under it), one for the dL/db row. Gradients summed over the batch.";
    return g;
}

ImageGrid kernel_grid(Module<float>& model, const std::string& about) {
    Conv2d<float>& conv = first_conv_layer(model);
    const Tensor<float>& k = conv.weight.value;
    const int kernels = k.dim(0);
    ImageGrid g(4, kernels);
    g.title = fmt::format("The {} kernels of the first conv layer ({}x{}x{} each)", kernels, k.dim(1), k.dim(2),
                          k.dim(3));
    g.subtitle = about;
    g.row_labels = {"RGB", "R channel", "G channel", "B channel"};
    g.palette = Palette::diverging;
    for (int d = 0; d < kernels; ++d) {
        g.col_labels.push_back(fmt::format("kernel {}", d + 1));
        const Tensor<float> kernel = part(k, d);
        g.at(0, d).image = kernel;  // its own min/max
        const float m = max_abs(kernel);
        for (int c = 0; c < 3; ++c) {
            Tile& t = g.at(1 + c, d);
            t.image = part(kernel, c);
            t.range = symmetric(m);
        }
        g.at(3, d).caption = "±" + g2(m);
    }
    g.footer = "RGB: each kernel scaled to its own min (black) / max (white).\n"
               "Channels: blue < 0, white 0, red > 0, one range per kernel (under it).";
    return g;
}

ImageGrid prediction_grid(Module<float>& model, const Examples& examples, int cols, const std::string& about) {
    check_examples(examples, "prediction_grid");
    if (cols < 1) fail("prediction_grid: {} columns; need 1 at least", cols);
    const int batch = examples.images.dim(0);
    const EvalModeScope<float> eval_mode(model);
    Tape<float> tape(Tape<float>::Mode::inference);
    const Tensor<float> p = softmax(model.forward(tape.constant(examples.images)).value());  // B x classes
    const int classes = p.dim(1);
    cols = std::min(cols, batch);
    ImageGrid g((batch + cols - 1) / cols, cols);
    int right = 0;
    for (int b = 0; b < batch; ++b) {
        int best = 0;
        for (int c = 1; c < classes; ++c)
            if (p.at({b, c}) > p.at({b, best})) best = c;
        const int label = examples.labels[static_cast<std::size_t>(b)];
        Tile& t = g.tiles[static_cast<std::size_t>(b)];
        t.image = unnormalised(examples.images, b, examples.norm);
        t.range = Range{0, 1};
        const std::string predicted = static_cast<std::size_t>(best) < examples.class_names.size()
                                          ? examples.class_names[static_cast<std::size_t>(best)]
                                          : fmt::format("class {}", best);
        t.caption = fmt::format("{} / {}\n{:.0f} %", class_name(examples, label), predicted, 100.0 * p.at({b, best}));
        t.mark = best == label ? Mark::right : Mark::wrong;
        right += best == label;
    }
    g.title = fmt::format("Predictions on the first {} test images: {} right ({:.0f} %)", batch, right,
                          100.0 * right / batch);
    g.subtitle = about;
    g.footer = "Caption: true class / predicted class, and the predicted class's probability. Green: right, red: wrong.";
    return g;
}

}  // namespace mcnn::plot
