// The picture of a tape (nn/graph.hpp): the dot text names every entry with its shape, draws the
// forward edges and, after backward, a gradient edge into exactly the entries a gradient reached;
// render_graph writes the .dot, draws PNG/SVG with Graphviz when it is installed, says when it is
// not, and refuses bad files naming them.
#include <boost/test/unit_test.hpp>

#include <array>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "mcnn/nn/graph.hpp"
#include "mcnn/ops/activation.hpp"
#include "mcnn/ops/elementwise.hpp"
#include "mcnn/ops/linear.hpp"
#include "mcnn/ops/loss.hpp"
#include "support.hpp"

using namespace mcnn;
using namespace mcnn::test;
namespace fs = std::filesystem;

namespace {

/// A small step: x (input) + c (constant) -> linear with layer.weight, layer.bias -> loss; and
/// relu(x), recorded but not used by the loss.
struct SmallGraph {
    Rng rng{3};
    Parameter<double> weight{"layer.weight", uniform(Shape{4, 3}, rng)};
    Parameter<double> bias{"layer.bias", uniform(Shape{4}, rng)};
    Tape<double> tape;
    Var<double> x = tape.input(uniform(Shape{2, 3}, rng));
    Var<double> sum = add(x, tape.constant(uniform(Shape{2, 3}, rng)));
    Var<double> w = tape.param(weight);
    Var<double> b = tape.param(bias);
    Var<double> h = linear(sum, w, b);
    Var<double> unused = relu(x);
    Var<double> loss = softmax_cross_entropy(h, {1, 3});
};

std::string node(const Var<double>& v) { return fmt::format("n{}", v.id()); }
std::string forward_edge(const Var<double>& from, const Var<double>& to) { return node(from) + " -> " + node(to) + ";"; }
std::string gradient_edge(const Var<double>& op, const Var<double>& in) { return node(op) + " -> " + node(in) + " [style=dashed"; }

std::size_t count(const std::string& text, const std::string& part) {
    std::size_t n = 0;
    for (std::size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
    return n;
}

/// Sets PATH for the scope of the object, then puts the old value back.
struct PathOverride {
    explicit PathOverride(const std::string& path) : old(std::getenv("PATH") ? std::optional<std::string>(std::getenv("PATH")) : std::nullopt) {
        setenv("PATH", path.c_str(), 1);
    }
    ~PathOverride() {
        if (old) setenv("PATH", old->c_str(), 1);
        else unsetenv("PATH");
    }
    std::optional<std::string> old;
};

bool starts_with_png_signature(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::array<char, 8> head{};
    in.read(head.data(), head.size());
    return in.gcount() == 8 && std::string(head.data(), 8) == std::string("\x89PNG\r\n\x1a\n", 8);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(graph)

BOOST_AUTO_TEST_CASE(every_entry_is_a_node_with_its_name_and_shape) {
    SmallGraph g;
    const std::string dot = graph_dot(g.tape, g.loss, "a \"small\" step");
    BOOST_TEST(dot.starts_with("digraph tape {"));
    BOOST_TEST(dot.ends_with("}\n"));
    CHECK_MESSAGE_HAS(dot, "label=\"a \\\"small\\\" step\"");  // the title, quotes escaped
    CHECK_MESSAGE_HAS(dot, node(g.x) + " [label=\"input\\n[2, 3]\"");
    CHECK_MESSAGE_HAS(dot, node(g.sum) + " [label=\"add\\n[2, 3]\"");
    CHECK_MESSAGE_HAS(dot, node(g.w) + " [label=\"layer.weight\\n[4, 3]\"");
    CHECK_MESSAGE_HAS(dot, node(g.b) + " [label=\"layer.bias\\n[4]\"");
    CHECK_MESSAGE_HAS(dot, node(g.h) + " [label=\"linear\\n[2, 4]\"");
    CHECK_MESSAGE_HAS(dot, node(g.unused) + " [label=\"relu\\n[2, 3]\\n(not used by the loss)\"");
    CHECK_MESSAGE_HAS(dot, node(g.loss) + " [label=\"softmax_cross_entropy\\n");
    CHECK_MESSAGE_HAS(dot, fmt::format("loss = {:.6g}", g.loss.value()[0]));
    // One node per entry, numbered as the tape numbers them; the constant is a node of its own.
    for (int id = 0; id < static_cast<int>(g.tape.size()); ++id) BOOST_TEST(count(dot, fmt::format("  n{} [label=", id)) == 1u);
    BOOST_TEST(count(dot, fmt::format("  n{} [label=", g.tape.size())) == 0u);
    CHECK_MESSAGE_HAS(dot, fmt::format("c{0}_1 [label=\"constant\"", g.sum.id()));
    CHECK_MESSAGE_HAS(dot, fmt::format("c{0}_1 -> n{0} [", g.sum.id()));
}

BOOST_AUTO_TEST_CASE(forward_edges_go_from_inputs_to_ops_and_no_gradients_before_backward) {
    SmallGraph g;
    const std::string dot = graph_dot(g.tape, g.loss);
    for (const auto& [from, to] : std::vector<std::pair<Var<double>, Var<double>>>{
             {g.x, g.sum}, {g.sum, g.h}, {g.w, g.h}, {g.b, g.h}, {g.h, g.loss}, {g.x, g.unused}})
        CHECK_MESSAGE_HAS(dot, forward_edge(from, to));
    BOOST_TEST(count(dot, " -> ") == 7u);  // the six above and the constant's
    BOOST_TEST(count(dot, "style=dashed") == 0u);
}

BOOST_AUTO_TEST_CASE(gradient_edges_reach_exactly_the_entries_backward_reached) {
    SmallGraph g;
    g.tape.backward(g.loss);
    const std::string dot = graph_dot(g.tape, g.loss);
    for (const auto& [op, in] : std::vector<std::pair<Var<double>, Var<double>>>{
             {g.sum, g.x}, {g.h, g.sum}, {g.h, g.w}, {g.h, g.b}, {g.loss, g.h}})
        CHECK_MESSAGE_HAS(dot, gradient_edge(op, in));
    BOOST_TEST(count(dot, "style=dashed") == 5u);
    // Nothing for relu(x): it is off the loss's path, so backward never sent it a gradient.
    BOOST_TEST(!g.tape.has_grad(g.unused));
    BOOST_TEST(!contains(dot, gradient_edge(g.unused, g.x)));
    BOOST_TEST(!contains(dot, " -> " + node(g.unused) + " [style=dashed"));
    // A gradient edge arrives at an entry exactly when the tape holds a gradient for it.
    for (const Var<double>& v : {g.x, g.sum, g.w, g.b, g.h, g.unused})
        BOOST_TEST(contains(dot, " -> " + node(v) + " [style=dashed") == g.tape.has_grad(v), "entry " << v.id());
}

BOOST_AUTO_TEST_CASE(a_loss_that_was_not_recorded_is_refused) {
    SmallGraph g;
    Tape<double> other;
    const Var<double> constant = other.constant(Tensor<double>(Shape{1}));
    CHECK_MESSAGE_HAS(error_of([&] { graph_dot(g.tape, constant); }), "graph_dot: the loss was not recorded on this tape");
    CHECK_MESSAGE_HAS(error_of([&] { graph_dot(other, g.loss); }), "graph_dot");
}

BOOST_AUTO_TEST_CASE(render_writes_the_dot_file_and_a_png_or_svg_with_graphviz) {
    SmallGraph g;
    g.tape.backward(g.loss);
    const std::string dot = graph_dot(g.tape, g.loss, "small");
    TempDir dir("graph");
    const GraphFiles only_text = render_graph(dot, dir.path / "text.dot");
    BOOST_TEST(only_text.dot == dir.path / "text.dot");
    BOOST_TEST(only_text.picture.empty());
    BOOST_TEST(read_text(dir.path / "text.dot") == dot);
    if (find_graphviz_dot().empty()) {
        BOOST_TEST_MESSAGE("graph: Graphviz's dot is not on PATH; the PNG and SVG renders are skipped");
        return;
    }
    const GraphFiles png = render_graph(dot, dir.path / "step.png");
    BOOST_TEST(png.picture == dir.path / "step.png");
    BOOST_TEST(png.dot == dir.path / "step.dot");
    BOOST_TEST(starts_with_png_signature(png.picture));
    BOOST_TEST(read_text(png.dot) == dot);
    const GraphFiles svg = render_graph(dot, dir.path / "step.svg");
    CHECK_MESSAGE_HAS(read_text(svg.picture), "<svg");
    CHECK_MESSAGE_HAS(read_text(svg.picture), "layer.weight");
    // Nothing else is left behind (no temporary files).
    BOOST_TEST(dir.files() == (std::vector<std::string>{"step.dot", "step.png", "step.svg", "text.dot"}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(without_graphviz_the_dot_file_is_kept_and_no_picture_claimed) {
    TempDir dir("graph_nodot"), empty_path("empty_path");
    const PathOverride no_dot(empty_path.path.string());
    BOOST_TEST(find_graphviz_dot().empty());
    const GraphFiles files = render_graph("digraph g { a -> b; }\n", dir.path / "g.png");
    BOOST_TEST(files.picture.empty());
    BOOST_TEST(read_text(dir.path / "g.dot") == "digraph g { a -> b; }\n");
    BOOST_TEST(dir.files() == std::vector<std::string>{"g.dot"}, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(bad_files_and_failing_dot_are_errors_naming_the_file) {
    TempDir dir("graph_bad");
    const fs::path jpg = dir.path / "g.jpg";
    CHECK_MESSAGE_HAS(error_of([&] { render_graph("digraph g {}", jpg); }), jpg.string() + ": give a file ending in .png, .svg or .dot");
    const fs::path missing = dir.path / "no" / "such" / "folder" / "g.png";
    CHECK_MESSAGE_HAS(error_of([&] { render_graph("digraph g {}", missing); }), "cannot write " + (dir.path / "no/such/folder/g.dot").string());
    if (find_graphviz_dot().empty()) {
        BOOST_TEST_MESSAGE("graph: Graphviz's dot is not on PATH; the failing-dot check is skipped");
        return;
    }
    const fs::path png = dir.path / "broken.png";
    const std::string message = error_of([&] { render_graph("digraph g { a -> ; }", png); });
    CHECK_MESSAGE_HAS(message, "Graphviz's dot could not draw " + png.string() + " from " + (dir.path / "broken.dot").string());
    CHECK_MESSAGE_HAS(message, "syntax error");
    BOOST_TEST(!fs::exists(png));
    BOOST_TEST(dir.files() == std::vector<std::string>{"broken.dot"}, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_SUITE_END()
