// plugin.toml parsing: identity, library file and the declared option schema.
#include "loft/framework/files.h"
#include "loft/framework/manifest.h"

#include <algorithm>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include <toml++/toml.h>

#include "recipe/toml_values.h"

namespace loft {

bool is_plugin_kind(const std::string& kind) {
  for (const char* k : kPluginKinds) {
    if (kind == k) return true;
  }
  return false;
}

std::string plugin_kind_list() {
  std::string out;
  for (const char* k : kPluginKinds) out += (out.empty() ? "" : ", ") + std::string(k);
  return out;
}

namespace {

std::string where(const std::filesystem::path& file, const toml::source_region& src) {
  return fmt::format("{}:{}", file.string(), src.begin.line);
}

StatusOr<OptionType> parse_type(const std::string& text) {
  for (auto t : {OptionType::kBool, OptionType::kInt, OptionType::kFloat, OptionType::kString, OptionType::kStringList}) {
    if (text == option_type_name(t)) return t;
  }
  return Status::InvalidArgument("unknown option type '" + text + "' (use bool, int, float, string or string_list)");
}

StatusOr<OptionSpec> parse_option(const std::filesystem::path& file, const std::string& name, const toml::table& t,
                                  std::vector<OptionRequirement>& requirements) {
  OptionSpec spec;
  spec.name = name;
  auto fail = [&](const toml::node& n, const std::string& what) {
    return Status::InvalidArgument(fmt::format("{}: option '{}': {}", where(file, n.source()), name, what));
  };
  static const char* kKeys[] = {"type", "default", "min", "max", "choices", "doc", "requires"};
  for (const auto& [key, node] : t) {
    bool known = false;
    for (const char* k : kKeys) known = known || key.str() == k;
    if (!known) return fail(node, fmt::format("unknown field '{}' (fields: type, default, min, max, choices, doc, requires)", key.str()));
  }
  const auto* type_node = t.get_as<std::string>("type");
  if (!type_node) return fail(t, "needs `type = \"bool\"|\"int\"|\"float\"|\"string\"|\"string_list\"`");
  auto type = parse_type(type_node->get());
  if (!type.ok()) return fail(*type_node, type.status().message());
  spec.type = type.value();
  if (const auto* d = t.get("default")) {
    auto value = option_value_from_toml(*d, spec.type);
    if (!value.ok()) return fail(*d, "default: " + value.status().message());
    spec.default_value = value.value();
  }
  for (const char* bound : {"min", "max"}) {
    if (const auto* b = t.get(bound)) {
      auto v = b->value<double>();
      if (!v) return fail(*b, std::string(bound) + " must be a number");
      (std::string(bound) == "min" ? spec.min : spec.max) = *v;
    }
  }
  if (const auto* c = t.get("choices")) {
    if (spec.type == OptionType::kInt) {
      // Integer choices (block sizes, say) are kept in their decimal spelling, which is how values are matched.
      const auto* list = c->as_array();
      if (!list || list->empty()) return fail(*c, "choices of an int option must be a non-empty list of integers");
      for (const auto& item : *list) {
        const auto* n = item.as_integer();
        if (!n) return fail(*c, "choices of an int option must be a list of integers");
        spec.choices.push_back(std::to_string(n->get()));
      }
    } else {
      auto v = option_value_from_toml(*c, OptionType::kStringList);
      if (!v.ok()) return fail(*c, "choices must be a list of strings (or of integers for an int option)");
      spec.choices = std::get<std::vector<std::string>>(v.value());
    }
  }
  if (const auto* doc = t.get_as<std::string>("doc")) spec.doc = doc->get();
  if (const auto* r = t.get("requires")) {
    const auto* table = r->as_table();
    if (spec.type != OptionType::kBool || !table || table->empty()) {
      return fail(*r, "requires must be a table of \"section.key\" = value, on a bool option");
    }
    for (const auto& [key, value] : *table) {
      const std::string k(key.str());
      const size_t dot = k.find('.');
      auto v = value.is_value() ? natural_option_value(value) : StatusOr<OptionValue>(Status::InvalidArgument(""));
      if (dot == std::string::npos || dot == 0 || dot + 1 == k.size() || !v.ok() ||
          std::holds_alternative<std::vector<std::string>>(v.value())) {
        return fail(*r, fmt::format("requires: '{}' must be \"section.key\" = a string, number or bool", k));
      }
      const auto* text = std::get_if<std::string>(&v.value());
      requirements.push_back({name, k, text ? *text : format_option_value(v.value())});
    }
  }
  return spec;
}

// `library` must name a file in the manifest's folder or below it: a manifest describes the plugin beside it and
// must not make loft load code from elsewhere. Refused: an absolute path, a `..` component, and a path that a
// symlink (the library itself or a folder on the way) resolves outside the folder.
Status check_library_inside_folder(const std::filesystem::path& manifest_path, const toml::node& node,
                                   const std::string& library) {
  auto refuse = [&](const std::string& why) {
    return Status::InvalidArgument(fmt::format(
        "{}: library = \"{}\" {}; a manifest may only name a library in its own folder: put the .so beside "
        "plugin.toml and write its file name (library = \"libloft_<kind>_<name>.so\")",
        where(manifest_path, node.source()), library, why));
  };
  const std::filesystem::path relative(library);
  if (library.empty()) return refuse("is empty");
  if (relative.has_root_name() || relative.has_root_directory()) return refuse("is an absolute path");
  for (const auto& part : relative) {
    if (part == "..") return refuse("leaves the manifest's folder through `..`");
  }
  const std::filesystem::path folder = fs::weakly_canonical(fs::absolute(manifest_path).parent_path());
  const std::filesystem::path resolved = fs::weakly_canonical(folder / relative);
  auto [in_folder, in_resolved] = std::mismatch(folder.begin(), folder.end(), resolved.begin(), resolved.end());
  if (in_folder != folder.end() || in_resolved == resolved.end()) {
    return refuse(fmt::format("resolves through a symlink to {}, outside {}", resolved.string(), folder.string()));
  }
  return Status::Ok();
}

}  // namespace

StatusOr<PluginManifest> read_manifest(const std::filesystem::path& manifest_path) {
  toml::table root;
  try {
    root = toml::parse_file(manifest_path.string());
  } catch (const toml::parse_error& e) {
    return Status::InvalidArgument(fmt::format("{}:{}:{}: invalid TOML: {}", manifest_path.string(),
                                               e.source().begin.line, e.source().begin.column, e.description()));
  }
  PluginManifest m;
  m.manifest_path = manifest_path;
  auto required = [&](const char* key, std::string& out) -> Status {
    const auto* s = root.get_as<std::string>(key);
    if (!s) return Status::InvalidArgument(fmt::format("{}: missing string `{}`", manifest_path.string(), key));
    out = s->get();
    return Status::Ok();
  };
  std::string library;
  for (auto [key, out] : {std::pair<const char*, std::string*>{"kind", &m.kind}, {"name", &m.name},
                          {"version", &m.version}, {"library", &library}}) {
    if (auto st = required(key, *out); !st.ok()) return st;
  }
  if (const auto* s = root.get_as<std::string>("summary")) m.summary = s->get();
  if (!is_plugin_kind(m.kind) && m.kind != "testing") {
    return Status::InvalidArgument(fmt::format("{}: unknown kind '{}' (kinds: {})", manifest_path.string(),
                                               m.kind, plugin_kind_list()));
  }
  const auto* abi = root.get_as<int64_t>("sdk_abi");
  if (!abi) return Status::InvalidArgument(fmt::format("{}: missing integer `sdk_abi`", manifest_path.string()));
  m.sdk_abi = static_cast<uint32_t>(abi->get());
  if (auto st = check_library_inside_folder(manifest_path, *root.get("library"), library); !st.ok()) return st;
  m.library_path = fs::absolute(manifest_path.parent_path() / library);
  if (const auto* renamed = root.get("renamed")) {
    const auto* table = renamed->as_table();
    if (!table) {
      return Status::InvalidArgument(fmt::format("{}: `renamed` must be a table of old = \"new\" option names",
                                                 where(manifest_path, renamed->source())));
    }
    for (const auto& [old_name, node] : *table) {
      const auto* now = node.as_string();
      if (!now) {
        return Status::InvalidArgument(fmt::format("{}: renamed.{} must be a string: the option's current name",
                                                   where(manifest_path, node.source()), old_name.str()));
      }
      m.renamed_options[std::string(old_name.str())] = now->get();
    }
  }
  if (const auto* options = root.get_as<toml::table>("options")) {
    // toml::table iterates its keys sorted; the schema keeps the manifest's order (what `loft plugins describe`
    // prints), so the options are taken in the order of their source positions.
    std::vector<std::pair<const toml::key*, const toml::node*>> in_order;
    for (const auto& [key, node] : *options) in_order.emplace_back(&key, &node);
    std::stable_sort(in_order.begin(), in_order.end(), [](const auto& a, const auto& b) {
      const auto& x = a.first->source().begin;
      const auto& y = b.first->source().begin;
      return x.line != y.line ? x.line < y.line : x.column < y.column;
    });
    for (const auto& [key_ptr, node_ptr] : in_order) {
      const toml::key& key = *key_ptr;
      const toml::node& node = *node_ptr;
      const auto* t = node.as_table();
      if (!t) {
        return Status::InvalidArgument(fmt::format("{}: [options.{}] must be a table", where(manifest_path, node.source()),
                                                   key.str()));
      }
      auto spec = parse_option(manifest_path, std::string(key.str()), *t, m.requirements);
      if (!spec.ok()) return spec.status();
      m.options.push_back(std::move(spec).value());
    }
  }
  return m;
}

}  // namespace loft
