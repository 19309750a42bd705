// drift-train-evaluator: trains the fixed evaluator (metrics/evaluator.hpp) on
// the Fashion-MNIST training split and writes its weights; run once, the
// result is committed as framework/assets/evaluator_fmnist.pt (docs/guide/evaluator.md).
//
//   drift-train-evaluator [--out PATH] [--seed N] [--epochs N] [--batch N] [--lr X]
//                         [--threads N] [--data-dir DIR]
//
// Prints one line per epoch and, at the end, the test accuracy, the training
// time and the SHA-256 of the written file. Exit status 1 on any error (one
// line on stderr), or when the test accuracy is below 90 %.
#include <torch/torch.h>

#include <cstdlib>
#include <iostream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "data/fashion_mnist.hpp"
#include "data/images.hpp"
#include "metrics/evaluator.hpp"
#include "runtime/allocator.hpp"
#include "runtime/threads.hpp"

namespace {

constexpr const char* kUsage =
    "usage: drift-train-evaluator [--out PATH] [--seed N] [--epochs N] [--batch N] [--lr X]\n"
    "                             [--threads N] [--data-dir DIR]\n"
    "Trains the fixed Fashion-MNIST evaluator and writes its weights (default\n"
    "framework/assets/evaluator_fmnist.pt) and PATH.sha256. Defaults: --seed 0 --epochs 4\n"
    "--batch 128 --lr 0.002, threads from DRIFT_NUM_THREADS or the number of cores,\n"
    "--data-dir /usr/share/datasets/fashion-mnist.\n";

int fail(const std::string& msg, int code = 1) {
  std::cerr << "drift-train-evaluator: " << msg << "\n";
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  drift::runtime::init_allocator();
  std::string out = "framework/assets/evaluator_fmnist.pt", dir = drift::data::kFashionMnistDir;
  drift::metrics::EvaluatorTraining opt;
  int threads = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      return 0;
    }
    if (i + 1 >= argc) return fail(absl::StrCat("unknown option or missing value: '", a, "'\n", kUsage), 2);
    const std::string v = argv[++i];
    int64_t n;
    double x;
    if (a == "--out") out = v;
    else if (a == "--data-dir") dir = v;
    else if (a == "--seed" && absl::SimpleAtoi(v, &n) && n >= 0) opt.seed = static_cast<uint64_t>(n);
    else if (a == "--epochs" && absl::SimpleAtoi(v, &n) && n >= 1) opt.epochs = n;
    else if (a == "--batch" && absl::SimpleAtoi(v, &n) && n >= 1) opt.batch = n;
    else if (a == "--threads" && absl::SimpleAtoi(v, &n) && n >= 1) threads = static_cast<int>(n);
    else if (a == "--lr" && absl::SimpleAtod(v, &x) && x > 0) opt.lr = x;
    else return fail(absl::StrCat("bad option '", a, " ", v, "' (drift-train-evaluator --help)"), 2);
  }
  const int used_threads = drift::runtime::init_threads(threads);
  try {
    auto train = drift::data::load_fashion_mnist("train", dir);
    if (!train.ok()) return fail(std::string(train.status().message()));
    auto test = drift::data::load_fashion_mnist("test", dir);
    if (!test.ok()) return fail(std::string(test.status().message()));
    auto ev = drift::metrics::Evaluator::untrained(opt.seed);
    std::cout << absl::StrFormat("training the evaluator: %d train / %d test images, seed %d, %d epochs, "
                                 "batch %d, lr %g, %d threads\n",
                                 train->images.size(0), test->images.size(0), opt.seed, opt.epochs,
                                 opt.batch, opt.lr, used_threads);
    auto rep = drift::metrics::train_evaluator(
        ev, drift::data::pixels_to_float(train->images), train->labels,
        drift::data::pixels_to_float(test->images), test->labels, opt, &std::cout);
    if (!rep.ok()) return fail(std::string(rep.status().message()));
    auto sha = ev.save(out);
    if (!sha.ok()) return fail(std::string(sha.status().message()));
    std::cout << absl::StrFormat("test accuracy %.4f, training time %.1f s (%d steps)\nwrote %s\nSHA-256 %s\n",
                                 rep->test_accuracy, rep->train_seconds, rep->steps, out, *sha);
    if (*sha != drift::metrics::kEvaluatorSha256)
      std::cout << "(differs from the SHA-256 compiled in (metrics/evaluator.cpp kEvaluatorSha256 = "
                << drift::metrics::kEvaluatorSha256
                << "): to make these weights the evaluator, commit them and update that value)\n";
    if (rep->test_accuracy < 0.9)
      return fail(absl::StrFormat("test accuracy %.4f is below 0.90", rep->test_accuracy));
    return 0;
  } catch (const std::exception& e) {
    return fail(e.what());
  }
}
