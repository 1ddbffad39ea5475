#pragma once
// A picture of the autodiff graph: the entries of a tape as a Graphviz graph, forward edges and,
// after backward(), the gradient edges the backward pass walked.
//
//   Tape<float> tape;
//   const Var<float> loss = softmax_cross_entropy(model(tape.input(images)), labels);
//   tape.backward(loss);
//   render_graph(graph_dot(tape, loss, "one step"), "step.png");   // step.dot, and step.png with Graphviz
#include <filesystem>
#include <string>

#include "mcnn/tape.hpp"

namespace mcnn {

/// The tape's entries as Graphviz dot text (top to bottom, in recording order), one node per entry:
///   input leaves (Tape::input)  blue ellipse: "input", the shape
///   parameters (Tape::param)    green box: the parameter's name ("conv1.weight") and shape
///   ops                         orange box: the op's name and its output's shape; the loss, a
///                               double border and its value
///   constants (Tape::constant)  grey dotted box "constant" per op input that was not recorded
/// Entries that `loss` does not depend on are drawn grey. Solid edges go forward, input -> op.
/// When backward(loss) has run, dashed red edges op -> input show each gradient it sent back,
/// only to entries a gradient reached. A legend and `title` (when not empty) sit on top.
/// Throws when `loss` was not recorded on `tape`.
template <class T>
std::string graph_dot(const Tape<T>& tape, const Var<T>& loss, const std::string& title = "");

/// What render_graph wrote.
struct GraphFiles {
    std::filesystem::path dot;      // the dot text (always)
    std::filesystem::path picture;  // the PNG or SVG; empty when Graphviz's dot is not installed
};

/// Writes `dot_text` to `path` with the extension .dot, and when Graphviz's `dot` is on PATH renders
/// it to `path` as PNG or SVG by its extension (.png, .svg; a .dot path gets the text only). Each
/// file goes to a temporary name first and is renamed into place. Throws naming the file when the
/// extension is none of these, a file cannot be written, or dot fails (its messages go to stderr).
GraphFiles render_graph(const std::string& dot_text, const std::filesystem::path& path);

/// Graphviz's `dot` program found on PATH, or an empty path when it is not installed.
std::filesystem::path find_graphviz_dot();

}  // namespace mcnn
