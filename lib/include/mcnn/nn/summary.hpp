#pragma once
// A model summary like torchsummary: every node of the forward graph with its output shape and
// the parameters it reads, then the totals.
#include <string>

#include "mcnn/nn/models.hpp"

namespace mcnn {

/// Records one forward pass of a 1 x 3 x 32 x 32 zero image and describes the graph:
///   node, output shape (batch shown as -1), parameters read (names), their element count;
/// then total parameters and their size in memory.
template <class T>
std::string summary(Model<T>& model);

}  // namespace mcnn
