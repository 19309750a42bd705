#include "drift/plugin.hpp"

namespace drift {

const char* component_kind_name(ComponentKind k) {
  switch (k) {
    case ComponentKind::Generator: return "generator";
    case ComponentKind::Encoder: return "encoder";
    case ComponentKind::Kernel: return "kernel";
    case ComponentKind::Normalizer: return "normalizer";
    case ComponentKind::Dataset: return "dataset";
    case ComponentKind::Formation: return "formation";
  }
  return "?";
}

namespace {
ComponentInfo make(ComponentKind kind, std::string name, std::string doc,
                   std::vector<ParamSpec> params, AnyFactory f) {
  ComponentInfo info;
  info.kind = kind;
  info.name = std::move(name);
  info.doc = std::move(doc);
  info.params = std::move(params);
  info.factory = std::move(f);
  return info;
}
}  // namespace

void Registrar::add_generator(std::string name, std::string doc, std::vector<ParamSpec> params,
                              GeneratorFactory f) {
  add(make(ComponentKind::Generator, std::move(name), std::move(doc), std::move(params), std::move(f)));
}
void Registrar::add_encoder(std::string name, std::string doc, std::vector<ParamSpec> params,
                            EncoderFactory f) {
  add(make(ComponentKind::Encoder, std::move(name), std::move(doc), std::move(params), std::move(f)));
}
void Registrar::add_kernel(std::string name, std::string doc, std::vector<ParamSpec> params,
                           KernelFactory f) {
  add(make(ComponentKind::Kernel, std::move(name), std::move(doc), std::move(params), std::move(f)));
}
void Registrar::add_normalizer(std::string name, std::string doc, std::vector<ParamSpec> params,
                               NormalizerFactory f) {
  add(make(ComponentKind::Normalizer, std::move(name), std::move(doc), std::move(params), std::move(f)));
}
void Registrar::add_dataset(std::string name, std::string doc, std::vector<ParamSpec> params,
                            DatasetFactory f) {
  add(make(ComponentKind::Dataset, std::move(name), std::move(doc), std::move(params), std::move(f)));
}
void Registrar::add_formation(std::string name, std::string doc, std::vector<ParamSpec> params,
                              FormationFactory f) {
  add(make(ComponentKind::Formation, std::move(name), std::move(doc), std::move(params), std::move(f)));
}

}  // namespace drift
