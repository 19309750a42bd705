// drift SDK: the plugin entry point and component registration.
//
// A plugin library exports ONE function, `drift_plugin_entry`, returning a
// PluginInfo: the SDK ABI version, framework version and LibTorch version it was
// built with, its name, and a registration callback. The loader checks the
// versions BEFORE it calls anything else in the library, so a mismatched plugin
// is refused with an error instead of crashing the process. Write it with the
// DRIFT_PLUGIN macro:
//
//   DRIFT_PLUGIN("my_kernels", r) {
//     r.add_kernel("my_kernel", "what it computes", MyKernel::params(),
//                  [](const drift::Params& p) -> absl::StatusOr<std::unique_ptr<drift::DriftKernel>> {
//                    return std::make_unique<MyKernel>(p);
//                  });
//   }
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "drift/dataset.hpp"
#include "drift/encoder.hpp"
#include "drift/formation.hpp"
#include "drift/generator.hpp"
#include "drift/kernel.hpp"
#include "drift/normalizer.hpp"
#include "drift/params.hpp"
#include "drift/version.hpp"

namespace drift {

enum class ComponentKind { Generator, Encoder, Kernel, Normalizer, Dataset, Formation };
// "generator", "encoder", "kernel", "normalizer", "dataset", "formation"
const char* component_kind_name(ComponentKind k);

// Factories receive Params already validated against the component's
// ParamSpecs. A returned error, a thrown std::exception ("creating <kind>
// '<name>': ...") or a null pointer fails the cell with one line; check what
// needs the context (sample shape, classes) here.
using GeneratorFactory =
    std::function<absl::StatusOr<std::shared_ptr<Generator>>(const Params&, const GeneratorContext&)>;
using EncoderFactory = std::function<absl::StatusOr<std::shared_ptr<FeatureEncoder>>(
    const Params&, const EncoderContext&)>;
using KernelFactory = std::function<absl::StatusOr<std::unique_ptr<DriftKernel>>(const Params&)>;
using NormalizerFactory =
    std::function<absl::StatusOr<std::unique_ptr<Normalizer>>(const Params&)>;
using DatasetFactory =
    std::function<absl::StatusOr<std::unique_ptr<Dataset>>(const Params&, const DatasetContext&)>;

using FormationFactory =
    std::function<absl::StatusOr<std::unique_ptr<Formation>>(const Params&, const FormationContext&)>;

using AnyFactory = std::variant<GeneratorFactory, EncoderFactory, KernelFactory,
                                NormalizerFactory, DatasetFactory, FormationFactory>;

struct ComponentInfo {
  ComponentKind kind = ComponentKind::Kernel;
  std::string name;
  std::string doc;  // one line
  std::vector<ParamSpec> params;
  AnyFactory factory;
};

// Receives the components of a plugin. The framework's implementation records
// the plugin file each component came from.
class Registrar {
 public:
  virtual ~Registrar() = default;
  virtual void add(ComponentInfo info) = 0;

  void add_generator(std::string name, std::string doc, std::vector<ParamSpec> params,
                     GeneratorFactory f);
  void add_encoder(std::string name, std::string doc, std::vector<ParamSpec> params,
                   EncoderFactory f);
  void add_kernel(std::string name, std::string doc, std::vector<ParamSpec> params,
                  KernelFactory f);
  void add_normalizer(std::string name, std::string doc, std::vector<ParamSpec> params,
                      NormalizerFactory f);
  void add_dataset(std::string name, std::string doc, std::vector<ParamSpec> params,
                   DatasetFactory f);
  void add_formation(std::string name, std::string doc, std::vector<ParamSpec> params,
                     FormationFactory f);
};

// The layout of the first four fields is fixed across ABI versions: the loader
// reads them before it trusts anything else.
struct PluginInfo {
  int abi_version;
  const char* framework_version;
  const char* torch_version;
  const char* plugin_name;
  void (*register_components)(Registrar& registrar);
};

}  // namespace drift

#define DRIFT_PLUGIN_ENTRY_NAME "drift_plugin_entry"

#define DRIFT_PLUGIN(NAME, REGISTRAR)                                                 \
  static void drift_plugin_register_components_(::drift::Registrar& REGISTRAR);      \
  extern "C" __attribute__((visibility("default"))) const ::drift::PluginInfo*       \
  drift_plugin_entry() {                                                              \
    static const ::drift::PluginInfo info{DRIFT_SDK_ABI_VERSION, DRIFT_FRAMEWORK_VERSION, \
                                          DRIFT_TORCH_VERSION, NAME,                  \
                                          &drift_plugin_register_components_};        \
    return &info;                                                                     \
  }                                                                                   \
  static void drift_plugin_register_components_(::drift::Registrar& REGISTRAR)
