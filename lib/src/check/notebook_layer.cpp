#include "mcnn/check/notebook_layer.hpp"

#include "mcnn/nn/init.hpp"
#include "mcnn/ops/correlate2d.hpp"
#include "mcnn/ops/elementwise.hpp"

namespace mcnn {
namespace {

// Plane [a, c] of a 4-D tensor, as a 2-D tensor (a copy).
Tensor<double> plane(const Tensor<double>& t, int a, int c) {
    const int h = t.dim(2), w = t.dim(3);
    const double* src = t.data() + (static_cast<std::size_t>(a) * t.dim(1) + c) * h * w;
    return Tensor<double>(Shape{h, w}, std::vector<double>(src, src + static_cast<std::size_t>(h) * w));
}

// t[a, c] += p (t 4-D, p 2-D of the plane's shape); with a 3-D t, t[a] += p.
void add_plane(Tensor<double>& t, int a, int c, const Tensor<double>& p) {
    const std::size_t n = p.numel();
    double* dst = t.data() + (t.rank() == 4 ? (static_cast<std::size_t>(a) * t.dim(1) + c) * n : static_cast<std::size_t>(a) * n);
    for (std::size_t k = 0; k < n; ++k) dst[k] += p[k];
}

}  // namespace

Var<double> notebook_conv(const Var<double>& x, const Var<double>& kernels, const Var<double>& bias, NotebookFault fault) {
    const Tensor<double>& X = x.value();
    const Tensor<double>& K = kernels.value();
    const Shape ys = conv::output_shape(X.shape(), K.shape(), {0, 1, ConvPath::correlate2d});
    require_same_shape("notebook_conv bias (D x Ho x Wo)", bias.shape(), Shape{ys[1], ys[2], ys[3]});
    const int B = ys[0], D = ys[1], N = X.dim(1);
    Tensor<double> Y(ys);
    for (int b = 0; b < B; ++b)
        for (int i = 0; i < D; ++i) {
            for (int j = 0; j < N; ++j) add_plane(Y, b, i, correlate2d(plane(X, b, j), plane(K, i, j), CorrelateMode::valid));
            add_plane(Y, b, i, Tensor<double>(Shape{ys[2], ys[3]}, std::vector<double>(bias.value().data() + i * ys[2] * ys[3],
                                                                                      bias.value().data() + (i + 1) * ys[2] * ys[3])));
        }
    return record<double>("notebook_conv", std::move(Y), {x, kernels, bias},
                          [xv = x.value_ptr(), kv = kernels.value_ptr(), B, D, N, fault](const Tensor<double>&,
                                                                                         const Tensor<double>& gy, auto g) {
                              for (int b = 0; b < B; ++b)
                                  for (int i = 0; i < D; ++i) {
                                      const Tensor<double> dy = plane(gy, b, i);
                                      for (int j = 0; j < N; ++j) {
                                          if (g[0]) add_plane(*g[0], b, j, convolve2d(dy, plane(*kv, i, j), CorrelateMode::full));
                                          if (g[1])
                                              add_plane(*g[1], i, j,
                                                        fault == NotebookFault::kernel_convolve
                                                            ? convolve2d(plane(*xv, b, j), dy, CorrelateMode::valid)
                                                            : correlate2d(plane(*xv, b, j), dy, CorrelateMode::valid));
                                          if (g[2] && fault == NotebookFault::bias_inside_channel_loop) add_plane(*g[2], i, 0, dy);
                                      }
                                      if (g[2] && fault != NotebookFault::bias_inside_channel_loop) add_plane(*g[2], i, 0, dy);
                                  }
                          });
}

NodeCase notebook_case(NotebookFault fault) {
    const char* name = fault == NotebookFault::none            ? "notebook_layer"
                       : fault == NotebookFault::kernel_convolve ? "notebook_fault_kernel_grad"
                                                                 : "notebook_fault_bias_grad";
    const char* what = fault == NotebookFault::none ? "correct backward"
                       : fault == NotebookFault::kernel_convolve
                           ? "FAULTY: dK by convolve2d(x, dY, valid), the notebook's mistake"
                           : "FAULTY: bias gradient summed inside the input-channel loop (N times too large), the notebook's mistake";
    return {.name = name,
            .node = "notebook_conv",
            .description = fmt::format("the notebook's hand-made layer, valid correlation + untied bias: {}", what),
            .inputs = {{"x", {2, 3, 8, 9}, uniform_values(-1, 1)}},
            .params = {{"kernels", {4, 3, 3, 3}, uniform_values(-0.5, 0.5)}, {"bias", {4, 6, 7}, uniform_values(-0.5, 0.5)}},
            .forward = [fault](const NodeArgs& a) { return notebook_conv(a.inputs[0], a.params[0], a.params[1], fault); }};
}

const std::vector<NodeCase>& notebook_fault_cases() {
    static const std::vector<NodeCase> cases{notebook_case(NotebookFault::kernel_convolve),
                                             notebook_case(NotebookFault::bias_inside_channel_loop)};
    return cases;
}

}  // namespace mcnn
