// The one table of plugin kinds. Adding a kind means: a line here, the kind's SDK header (its interface) and its
// plugins. The registrar, the registry, manifests, recipe sections, `loft plugins list` and the run's components
// all follow this list.
#pragma once

// X(Interface, kind, default plugin ("" = the recipe must name one), what the kind's recipe section picks).
// The order is the order recipes and `loft plugins list` show the kinds in.
#define LOFT_PLUGIN_KINDS(X)                                                                            \
  X(Quantizer, quantizer, "none", "quantizer plugin for frozen linear weights")                         \
  X(PeftMethod, peft, "", "PEFT plugin: which parameters train and how")                                \
  X(OffloadStrategy, offload, "none", "offload plugin: residency and block execution")                  \
  X(Dataset, dataset, "", "dataset plugin that provides the training samples")                          \
  X(Optimizer, optimizer, "adamw", "optimizer plugin: how the parameter groups are updated from their gradients")

namespace loft {

#define LOFT_KIND_DECLARE_INTERFACE(Interface, kind, default_type, doc) class Interface;
LOFT_PLUGIN_KINDS(LOFT_KIND_DECLARE_INTERFACE)
#undef LOFT_KIND_DECLARE_INTERFACE

// KindTraits<Interface>::name is the kind's name ("quantizer"); defined for the interfaces of the table only, so a
// factory of any other type does not compile.
template <typename Interface>
struct KindTraits;

#define LOFT_KIND_TRAITS(Interface, kind_name, default_type, doc_text) \
  template <>                                                          \
  struct KindTraits<Interface> {                                       \
    static constexpr const char* name = #kind_name;                    \
    static constexpr const char* default_plugin = default_type;        \
    static constexpr const char* doc = doc_text;                       \
  };
LOFT_PLUGIN_KINDS(LOFT_KIND_TRAITS)
#undef LOFT_KIND_TRAITS

struct PluginKindInfo {
  const char* name;
  const char* default_plugin;  // "" when the recipe must name one
  const char* doc;
};

// Every kind, in table order.
#define LOFT_KIND_INFO(Interface, kind_name, default_type, doc_text) PluginKindInfo{#kind_name, default_type, doc_text},
inline constexpr PluginKindInfo kPluginKindTable[] = {LOFT_PLUGIN_KINDS(LOFT_KIND_INFO)};
#undef LOFT_KIND_INFO

}  // namespace loft
