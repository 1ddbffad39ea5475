#pragma once
// A model summary like torchsummary: every node of the forward graph with its output shape and
// the parameters it reads, then the totals.
#include <string>

#include "mcnn/nn/module.hpp"

namespace mcnn {

/// Records one forward pass of zeros of shape `input` (a batch: B x ...) and describes the graph:
///   node, output shape (batch shown as -1), parameters read (names), their element count;
/// then total parameters and their size in memory. `name` titles it (e.g. the registry name).
/// Throws naming the model and the input shape when the forward pass fails.
template <class T>
std::string summary(Module<T>& model, const Shape& input, const std::string& name);

}  // namespace mcnn
