#include "runtime/registry.hpp"

#include "runtime/builtins.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <boost/dll/shared_library.hpp>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace drift::runtime {
namespace fs = std::filesystem;

namespace {

// Plugin libraries are never unloaded: components created from them (and their
// vtables) may outlive any registry.
std::vector<boost::dll::shared_library>& loaded_libraries() {
  static auto* libs = new std::vector<boost::dll::shared_library>();
  return *libs;
}

class CollectingRegistrar : public Registrar {
 public:
  void add(ComponentInfo info) override { infos.push_back(std::move(info)); }
  std::vector<ComponentInfo> infos;
};

bool is_elf_shared_object(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  char magic[4] = {0, 0, 0, 0};
  f.read(magic, 4);
  return f.gcount() == 4 && magic[0] == 0x7f && magic[1] == 'E' && magic[2] == 'L' &&
         magic[3] == 'F';
}

}  // namespace

Registry::Registry() = default;
Registry::~Registry() = default;

absl::Status Registry::add(ComponentInfo info, const std::string& source) {
  auto key = std::make_pair(info.kind, info.name);
  auto it = components_.find(key);
  if (it != components_.end())
    return absl::AlreadyExistsError(absl::StrCat(
        component_kind_name(info.kind), " '", info.name, "' is registered twice: by ",
        it->second.source, " and by ", source));
  if (info.name.empty())
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": a ", component_kind_name(info.kind), " has an empty name"));
  components_.emplace(key, RegisteredComponent{std::move(info), source});
  return absl::OkStatus();
}

absl::Status Registry::add_builtin(ComponentInfo info) { return add(std::move(info), "<built-in>"); }

absl::Status Registry::load_file(const std::string& path_in) {
  std::error_code ec;
  fs::path path = fs::weakly_canonical(fs::absolute(path_in), ec);
  if (ec) path = fs::absolute(path_in);
  const std::string file = path.string();
  if (std::find(loaded_files_.begin(), loaded_files_.end(), file) != loaded_files_.end())
    return absl::OkStatus();
  if (!fs::exists(path)) return absl::NotFoundError(absl::StrCat("plugin ", file, ": no such file"));
  if (!fs::is_regular_file(path))
    return absl::InvalidArgumentError(absl::StrCat("plugin ", file, ": not a regular file"));
  if (!is_elf_shared_object(path))
    return absl::InvalidArgumentError(
        absl::StrCat("plugin ", file, ": not a shared library (no ELF header)"));

  boost::dll::shared_library lib;
  boost::system::error_code bec;
  lib.load(boost::dll::fs::path(file), boost::dll::load_mode::rtld_lazy | boost::dll::load_mode::rtld_local, bec);
  if (bec || !lib.is_loaded()) {
    // Boost.DLL clears dlerror(); ask the loader once more for the reason.
    void* h = ::dlopen(file.c_str(), RTLD_LAZY | RTLD_LOCAL);
    const char* why = h ? nullptr : ::dlerror();
    if (h) ::dlclose(h);
    return absl::InvalidArgumentError(absl::StrCat("plugin ", file, ": cannot be loaded as a shared library: ",
                                                   why ? why : bec.message()));
  }
  if (!lib.has(DRIFT_PLUGIN_ENTRY_NAME))
    return absl::InvalidArgumentError(absl::StrCat(
        "plugin ", file, ": no entry point '", DRIFT_PLUGIN_ENTRY_NAME,
        "' (is it a drift plugin? define one with DRIFT_PLUGIN from <drift/plugin.hpp>)"));
  auto entry = lib.get<const PluginInfo*()>(DRIFT_PLUGIN_ENTRY_NAME);
  const PluginInfo* info = entry();
  if (info == nullptr)
    return absl::InvalidArgumentError(absl::StrCat("plugin ", file, ": entry point returned null"));

  auto str = [](const char* s) { return std::string(s ? s : "?"); };
  if (info->abi_version != DRIFT_SDK_ABI_VERSION)
    return absl::FailedPreconditionError(absl::StrCat(
        "plugin ", file, " was built for drift SDK ABI version ", info->abi_version,
        " (framework ", str(info->framework_version), "), but this drift has ABI version ",
        DRIFT_SDK_ABI_VERSION, " (framework ", DRIFT_FRAMEWORK_VERSION,
        "): rebuild the plugin against this SDK"));
  if (str(info->torch_version) != DRIFT_TORCH_VERSION)
    return absl::FailedPreconditionError(absl::StrCat(
        "plugin ", file, " was built against LibTorch ", str(info->torch_version),
        ", but this drift uses LibTorch ", DRIFT_TORCH_VERSION,
        ": rebuild the plugin against the same LibTorch"));
  if (info->register_components == nullptr)
    return absl::InvalidArgumentError(absl::StrCat("plugin ", file, ": no registration callback"));

  CollectingRegistrar reg;
  try {
    info->register_components(reg);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("plugin ", file, ": registration failed: ", e.what()));
  }
  // All or nothing: check every name before adding any.
  for (size_t i = 0; i < reg.infos.size(); ++i) {
    const auto& c = reg.infos[i];
    auto it = components_.find({c.kind, c.name});
    if (it != components_.end())
      return absl::AlreadyExistsError(absl::StrCat(component_kind_name(c.kind), " '", c.name,
                                                   "' is registered twice: by ", it->second.source,
                                                   " and by ", file));
    for (size_t j = 0; j < i; ++j)
      if (reg.infos[j].kind == c.kind && reg.infos[j].name == c.name)
        return absl::AlreadyExistsError(absl::StrCat(component_kind_name(c.kind), " '", c.name,
                                                     "' is registered twice by ", file));
  }
  for (auto& c : reg.infos) {
    auto st = add(std::move(c), file);
    if (!st.ok()) return st;
  }
  loaded_libraries().push_back(std::move(lib));
  loaded_files_.push_back(file);
  return absl::OkStatus();
}

absl::Status Registry::load_path(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(path, ec))
      if (e.is_regular_file() && e.path().extension() == ".so") files.push_back(e.path().string());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      auto st = load_file(f);
      if (!st.ok()) return st;
    }
    return absl::OkStatus();
  }
  return load_file(path);
}

std::string executable_dir() {
  std::error_code ec;
  auto p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : p.parent_path().string();
}

std::string default_plugin_dir() {
  return (fs::path(executable_dir()) / ".." / "lib" / "drift" / "plugins").lexically_normal().string();
}

absl::Status Registry::load_default_paths() {
  if (auto st = register_builtins(*this); !st.ok()) return st;
  std::string dir = default_plugin_dir();
  if (fs::is_directory(dir)) {
    auto st = load_path(dir);
    if (!st.ok()) return st;
  }
  if (const char* env = std::getenv("DRIFT_PLUGIN_PATH")) {
    for (absl::string_view part : absl::StrSplit(env, ':', absl::SkipEmpty())) {
      std::string p(part);
      if (!fs::exists(p))
        return absl::NotFoundError(absl::StrCat("DRIFT_PLUGIN_PATH entry ", p, ": no such file or directory"));
      auto st = load_path(p);
      if (!st.ok()) return st;
    }
  }
  return absl::OkStatus();
}

const RegisteredComponent* Registry::find(ComponentKind kind, const std::string& name) const {
  auto it = components_.find({kind, name});
  return it == components_.end() ? nullptr : &it->second;
}

std::vector<std::string> Registry::names(ComponentKind kind) const {
  std::vector<std::string> out;
  for (const auto& [key, c] : components_)
    if (key.first == kind) out.push_back(key.second);
  return out;
}

absl::StatusOr<const RegisteredComponent*> Registry::get(ComponentKind kind,
                                                         const std::string& name) const {
  if (const auto* c = find(kind, name)) return c;
  auto avail = names(kind);
  // Escaped: a name from a file may hold a newline, and errors are one line.
  std::string msg = absl::StrCat("unknown ", component_kind_name(kind), " '", absl::CHexEscape(name), "'");
  std::string near = closest_match(name, avail);
  if (!near.empty()) absl::StrAppend(&msg, " (did you mean '", near, "'?)");
  absl::StrAppend(&msg, "; available: ", avail.empty() ? "none" : absl::StrJoin(avail, ", "));
  return absl::NotFoundError(msg);
}

std::vector<const RegisteredComponent*> Registry::all() const {
  std::vector<const RegisteredComponent*> out;
  for (const auto& [key, c] : components_) out.push_back(&c);
  return out;
}

absl::StatusOr<Params> Registry::validate(ComponentKind kind, const std::string& name,
                                          const std::map<std::string, ParamValue>& given,
                                          const std::string& where) const {
  auto c = get(kind, name);
  if (!c.ok()) return absl::Status(c.status().code(), absl::StrCat(where, ": ", c.status().message()));
  return validate_params((*c)->info.params, given, absl::StrCat(where, " (", name, ")"));
}

namespace {
template <class Factory, class... Args>
auto call_factory(const Registry& r, ComponentKind kind, const std::string& name, Args&&... args)
    -> decltype(std::declval<Factory>()(std::forward<Args>(args)...)) {
  auto c = r.get(kind, name);
  if (!c.ok()) return c.status();
  const auto* f = std::get_if<Factory>(&(*c)->info.factory);
  if (f == nullptr || !*f)
    return absl::InternalError(absl::StrCat(component_kind_name(kind), " '", name, "' from ",
                                            (*c)->source, " has no factory of its kind"));
  try {
    auto out = (*f)(std::forward<Args>(args)...);
    if (out.ok() && *out == nullptr)
      return absl::InternalError(absl::StrCat(component_kind_name(kind), " '", name, "' from ",
                                              (*c)->source, ": factory returned null"));
    return out;
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("creating ", component_kind_name(kind), " '", name, "': ", e.what()));
  }
}
}  // namespace

absl::StatusOr<std::unique_ptr<DriftKernel>> Registry::make_kernel(const std::string& name,
                                                                   const Params& p) const {
  return call_factory<KernelFactory>(*this, ComponentKind::Kernel, name, p);
}
absl::StatusOr<std::unique_ptr<Normalizer>> Registry::make_normalizer(const std::string& name,
                                                                      const Params& p) const {
  return call_factory<NormalizerFactory>(*this, ComponentKind::Normalizer, name, p);
}
absl::StatusOr<std::shared_ptr<Generator>> Registry::make_generator(
    const std::string& name, const Params& p, const GeneratorContext& ctx) const {
  return call_factory<GeneratorFactory>(*this, ComponentKind::Generator, name, p, ctx);
}
absl::StatusOr<std::shared_ptr<FeatureEncoder>> Registry::make_encoder(
    const std::string& name, const Params& p, const EncoderContext& ctx) const {
  return call_factory<EncoderFactory>(*this, ComponentKind::Encoder, name, p, ctx);
}
absl::StatusOr<std::unique_ptr<Dataset>> Registry::make_dataset(const std::string& name,
                                                                const Params& p,
                                                                const DatasetContext& ctx) const {
  return call_factory<DatasetFactory>(*this, ComponentKind::Dataset, name, p, ctx);
}
absl::StatusOr<std::unique_ptr<Formation>> Registry::make_formation(const std::string& name,
                                                                    const Params& p,
                                                                    const FormationContext& ctx) const {
  return call_factory<FormationFactory>(*this, ComponentKind::Formation, name, p, ctx);
}

}  // namespace drift::runtime
