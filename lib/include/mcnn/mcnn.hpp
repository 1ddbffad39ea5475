#pragma once
// ManualCNN in one include: every public header of the library. A program that uses it writes
//   #include <mcnn/mcnn.hpp>
// and links mcnn::mcnn (find_package(ManualCNN CONFIG REQUIRED), or add_subdirectory).
// When a public header is added under lib/include/mcnn, add it here too.

// Core: tensors, errors, the autodiff tape, thread counts.
#include "mcnn/error.hpp"
#include "mcnn/tensor.hpp"
#include "mcnn/tape.hpp"
#include "mcnn/threads.hpp"
#include "mcnn/distributed.hpp"

// Ops: one header per node family.
#include "mcnn/ops/activation.hpp"
#include "mcnn/ops/bias.hpp"
#include "mcnn/ops/correlate2d.hpp"
#include "mcnn/ops/dropout.hpp"
#include "mcnn/ops/elementwise.hpp"
#include "mcnn/ops/linear.hpp"
#include "mcnn/ops/loss.hpp"
#include "mcnn/ops/norm.hpp"
#include "mcnn/ops/pool.hpp"
#include "mcnn/ops/shape.hpp"

// Networks: initialisers, modules, layers, the built-in models and their registry, summaries, graphs.
#include "mcnn/nn/init.hpp"
#include "mcnn/nn/layers.hpp"
#include "mcnn/nn/models.hpp"
#include "mcnn/nn/module.hpp"
#include "mcnn/nn/registry.hpp"
#include "mcnn/nn/summary.hpp"
#include "mcnn/nn/graph.hpp"

// Optimisers.
#include "mcnn/optim/adam.hpp"
#include "mcnn/optim/lookahead.hpp"
#include "mcnn/optim/optimizer.hpp"
#include "mcnn/optim/schedule.hpp"
#include "mcnn/optim/sgd.hpp"

// Gradient checks.
#include "mcnn/check/gradcheck.hpp"
#include "mcnn/check/node_cases.hpp"
#include "mcnn/check/notebook_layer.hpp"

// Data, training, pictures.
#include "mcnn/data/augment.hpp"
#include "mcnn/data/cifar10.hpp"
#include "mcnn/data/dataset.hpp"
#include "mcnn/train/checkpoint.hpp"
#include "mcnn/train/config.hpp"
#include "mcnn/train/metrics.hpp"
#include "mcnn/train/progress.hpp"
#include "mcnn/train/trainer.hpp"
#include "mcnn/train/tune.hpp"
#include "mcnn/plot/curves.hpp"
#include "mcnn/plot/images.hpp"

// The command-line tools (train, gradcheck, summary, visualize, bench) for any registered model.
#include "mcnn/cli.hpp"
