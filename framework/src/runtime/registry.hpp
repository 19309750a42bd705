// The component registry: every generator, encoder, kernel, normalizer and
// dataset known to this process, with the file it came from.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "drift/plugin.hpp"

namespace drift::runtime {

struct RegisteredComponent {
  ComponentInfo info;
  std::string source;  // absolute path of the plugin file, or "<built-in>"
};

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Loads one plugin file. Errors name the file: not a shared library, no
  // entry point, another ABI or LibTorch version, a component registered twice.
  // Loading a file already loaded is a no-op.
  absl::Status load_file(const std::string& path);
  // A directory loads every *.so in it (sorted, not recursive); a file loads it.
  absl::Status load_path(const std::string& path);
  // The built-in components (runtime/builtins.hpp), the plugins installed beside the executable (<exe>/../lib/drift/plugins),
  // then every entry of DRIFT_PLUGIN_PATH (colon-separated files or directories).
  absl::Status load_default_paths();

  // Registers components compiled into the framework (source "<built-in>").
  absl::Status add_builtin(ComponentInfo info);

  const RegisteredComponent* find(ComponentKind kind, const std::string& name) const;
  // Like find(), but an unknown name is an error listing the available ones.
  absl::StatusOr<const RegisteredComponent*> get(ComponentKind kind,
                                                 const std::string& name) const;
  std::vector<std::string> names(ComponentKind kind) const;
  // Every component, sorted by kind then name.
  std::vector<const RegisteredComponent*> all() const;
  std::vector<std::string> loaded_files() const { return loaded_files_; }

  // Validate parameters against the declaration, then call the factory. `where`
  // prefixes errors (for example "exp.toml: [kernel]").
  absl::StatusOr<Params> validate(ComponentKind kind, const std::string& name,
                                  const std::map<std::string, ParamValue>& given,
                                  const std::string& where) const;
  absl::StatusOr<std::unique_ptr<DriftKernel>> make_kernel(const std::string& name,
                                                           const Params& p) const;
  absl::StatusOr<std::unique_ptr<Normalizer>> make_normalizer(const std::string& name,
                                                              const Params& p) const;
  absl::StatusOr<std::shared_ptr<Generator>> make_generator(const std::string& name,
                                                            const Params& p,
                                                            const GeneratorContext& ctx) const;
  absl::StatusOr<std::shared_ptr<FeatureEncoder>> make_encoder(const std::string& name,
                                                               const Params& p,
                                                               const EncoderContext& ctx) const;
  absl::StatusOr<std::unique_ptr<Dataset>> make_dataset(const std::string& name,
                                                        const Params& p,
                                                        const DatasetContext& ctx) const;
  absl::StatusOr<std::unique_ptr<Formation>> make_formation(const std::string& name,
                                                            const Params& p,
                                                            const FormationContext& ctx) const;

 private:
  absl::Status add(ComponentInfo info, const std::string& source);
  std::map<std::pair<ComponentKind, std::string>, RegisteredComponent> components_;
  std::vector<std::string> loaded_files_;
};

// Directory of the running executable (for plugin discovery).
std::string executable_dir();
// <exe>/../lib/drift/plugins
std::string default_plugin_dir();

}  // namespace drift::runtime
