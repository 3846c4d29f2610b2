// Ablation grid files: parsed with toml++ (source positions kept for every message), checked for shape, expanded
// into variants with readable, deterministic names.
#include "loft/framework/ablation_grid.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <utility>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "loft/framework/files.h"
#include "recipe/suggest.h"
#include "recipe/toml_values.h"

namespace loft {

namespace {

std::string toml_string(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned>(static_cast<unsigned char>(c)));
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

// A value as a variant's name shows it: strings bare, numbers shortest, lists joined with '+'.
std::string name_text(const OptionValue& v) {
  struct Visitor {
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(int64_t i) const { return std::to_string(i); }
    std::string operator()(double d) const { return fmt::format("{}", d); }
    std::string operator()(const std::string& s) const { return s; }
    std::string operator()(const std::vector<std::string>& list) const {
      std::string out;
      for (const auto& s : list) out += (out.empty() ? "" : "+") + s;
      return out;
    }
  };
  return std::visit(Visitor{}, v);
}

// Characters a folder name keeps (shell-safe, no '=' that `loft run` would read as an override); others become '-'.
std::string folder_safe(const std::string& text) {
  std::string out;
  for (const char c : text) {
    const bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                      c == '_' || c == '+' || c == '-' || c == ',';
    out += keep ? c : '-';
  }
  return out;
}

// FNV-1a: a short, stable tag that tells apart names that would otherwise collide or are cut short.
std::string short_hash(const std::string& text) {
  uint64_t h = 1469598103934665603ull;
  for (const char c : text) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return fmt::format("{:08x}", static_cast<uint32_t>(h ^ (h >> 32)));
}

SourceLocation locate(const std::string& file, const toml::source_region& region) {
  return SourceLocation{file, static_cast<int>(region.begin.line), static_cast<int>(region.begin.column)};
}

bool before(const toml::source_region& a, const toml::source_region& b) {
  return std::pair(a.begin.line, a.begin.column) < std::pair(b.begin.line, b.begin.column);
}

// A table's entries in the order the file writes them (toml++ keeps them sorted by key).
std::vector<std::pair<const toml::key*, const toml::node*>> in_file_order(const toml::table& t) {
  std::vector<std::pair<const toml::key*, const toml::node*>> out;
  for (const auto& [k, v] : t) out.emplace_back(&k, &v);
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return before(a.first->source(), b.first->source()); });
  return out;
}

struct Leaf {
  std::string key;  // dotted path below the table
  const toml::node* node;
  SourceLocation where;
};

// The non-table nodes below `t`, keys joined with '.' ("quantizer.type" written dotted, quoted or as a sub-table),
// in file order.
void flatten(const toml::table& t, const std::string& prefix, const std::string& file, std::vector<Leaf>& out) {
  for (const auto& [k, v] : in_file_order(t)) {
    const std::string key = prefix.empty() ? std::string(k->str()) : prefix + "." + std::string(k->str());
    if (const auto* sub = v->as_table()) {
      flatten(*sub, key, file, out);
    } else {
      out.push_back({key, v, locate(file, k->source())});
    }
  }
}

class GridParser {
 public:
  GridParser(const toml::table& root, const fs::path& path) : root_(root), path_(path), file_(path.string()) {}

  StatusOr<AblationGrid> parse() {
    grid_.path = path_;
    grid_.name = path_.stem().string();
    static const std::vector<std::string> kTopLevel = {"base", "name", "seeds", "set", "axes", "paired"};
    for (const auto& [k, v] : in_file_order(root_)) {
      const std::string key(k->str());
      if (std::find(kTopLevel.begin(), kTopLevel.end(), key) == kTopLevel.end()) {
        error(locate(file_, k->source()),
              fmt::format("unknown key '{}' in an ablation grid{}; a grid has base, name, seeds, [set], [axes] and "
                          "[paired]", key, did_you_mean(key, kTopLevel)));
      }
    }
    parse_header();
    if (const auto* set = table_at("set")) {
      std::vector<Leaf> leaves;
      flatten(*set, "", file_, leaves);
      for (const auto& leaf : leaves) {
        if (auto s = setting(leaf); s && claim(s->key, s->where, "[set]")) grid_.set.push_back(*s);
      }
    }
    parse_axes();
    parse_paired();
    std::sort(axes_.begin(), axes_.end(), [](const Axis& a, const Axis& b) {
      return std::pair(a.where.line, a.where.column) < std::pair(b.where.line, b.where.column);
    });
    if (!grid_.seeds.empty() && claimed_.count("train.seed")) {
      error(claimed_.at("train.seed").first, "train.seed is set here and by `seeds`; keep one of them");
    }
    if (!errors_.empty()) return Status::InvalidArgument(joined_errors());
    expand();
    if (!errors_.empty()) return Status::InvalidArgument(joined_errors());
    return std::move(grid_);
  }

 private:
  struct AxisValue {
    std::vector<GridSetting> settings;  // one for a cartesian axis, a block's keys for a paired one
    std::string label;                  // how the variant's name shows it
    SourceLocation where;
  };
  struct Axis {
    std::string label;  // the name's "label-value"; a cartesian axis's is set once every axis is known
    std::string key;    // cartesian axis: its recipe key; paired: empty
    SourceLocation where;
    std::vector<AxisValue> values;
  };

  void error(const SourceLocation& where, std::string message) { errors_.push_back(Diagnostic{where, std::move(message)}); }

  std::string joined_errors() const {
    std::string out;
    for (const auto& d : errors_) out += (out.empty() ? "" : "\n") + d.str();
    if (errors_.size() > 1) out += fmt::format("\n{}: {} errors", file_, errors_.size());
    return out;
  }

  SourceLocation where_of(const char* key) const {
    for (const auto& [k, v] : root_) {
      if (k.str() == key) return locate(file_, k.source());
    }
    return SourceLocation{file_, 0, 0};
  }

  const toml::table* table_at(const char* key) {
    const toml::node* node = root_.get(key);
    if (!node) return nullptr;
    if (const auto* t = node->as_table()) return t;
    error(where_of(key), fmt::format("`{}` must be a table ([{}] with section.key entries), not {}", key, key,
                                     describe_toml_node(*node)));
    return nullptr;
  }

  void parse_header() {
    const toml::node* base = root_.get("base");
    if (!base) {
      error(SourceLocation{file_, 1, 1}, "the grid names no base recipe: add base = \"path/to/recipe.toml\" "
                                          "(relative to the grid file's folder)");
    } else if (const auto* s = base->as_string()) {
      fs::path p = s->get();
      if (p.is_relative()) p = fs::absolute(path_).parent_path() / p;
      grid_.base = p.lexically_normal();
      if (!fs::is_regular_file(grid_.base)) {
        error(where_of("base"), fmt::format("base recipe {} does not exist (base is relative to the grid file's "
                                            "folder)", grid_.base.string()));
      }
    } else {
      error(where_of("base"), "base must be a string: the base recipe's path, relative to the grid file's folder");
    }
    if (const toml::node* name = root_.get("name")) {
      const auto* s = name->as_string();
      if (!s || s->get().empty() || folder_safe(s->get()) != s->get() || s->get()[0] == '.') {
        error(where_of("name"), "name must be a non-empty string of letters, digits and . _ + - , (the grid's "
                                "folder name), not starting with '.'");
      } else {
        grid_.name = s->get();
      }
    }
    if (const toml::node* seeds = root_.get("seeds")) {
      const auto* list = seeds->as_array();
      if (!list || list->empty()) {
        error(where_of("seeds"), "seeds must be a non-empty list of integers (each sets train.seed), e.g. seeds = [1, 2, 3]");
        return;
      }
      for (const auto& item : *list) {
        const auto* i = item.as_integer();
        if (!i || i->get() < 0) {
          error(locate(file_, item.source()), "seeds must be integers >= 0 (each sets train.seed)");
          continue;
        }
        if (std::find(grid_.seeds.begin(), grid_.seeds.end(), i->get()) != grid_.seeds.end()) {
          error(locate(file_, item.source()), fmt::format("seed {} is listed twice: two variants would be the same", i->get()));
          continue;
        }
        grid_.seeds.push_back(i->get());
      }
    }
  }

  // A leaf as a recipe setting; nullopt (after an error) when its key or value cannot be one.
  std::optional<GridSetting> setting(const Leaf& leaf) {
    const size_t dot = leaf.key.find('.');
    if (dot == std::string::npos || dot == 0 || dot + 1 == leaf.key.size() || leaf.key.find('.', dot + 1) != std::string::npos) {
      error(leaf.where, fmt::format("'{}' is not a recipe key: write section.key (e.g. quantizer.type, train.lr)", leaf.key));
      return std::nullopt;
    }
    if (leaf.key.compare(0, dot, "output") == 0) {
      error(leaf.where, fmt::format("{} cannot be set in a grid: loft ablate runs each variant in <grid folder>/runs/"
                                    "<variant>; choose the grid folder with --out", leaf.key));
      return std::nullopt;
    }
    auto value = natural_option_value(*leaf.node);
    if (!value.ok()) {
      error(leaf.where, fmt::format("{}: {}", leaf.key, value.status().message()));
      return std::nullopt;
    }
    return GridSetting{leaf.key, value.value(), leaf.where};
  }

  // Records that `key` is set at `where` by `owner`; false (after an error) when something else set it already.
  bool claim(const std::string& key, const SourceLocation& where, const std::string& owner) {
    auto [it, fresh] = claimed_.emplace(key, std::pair(where, owner));
    if (fresh) return true;
    error(where, fmt::format("{} is set in {} and in {} (at {}); a key may vary in one axis only, or be set in [set]"
                             "{}", key, owner, it->second.second, it->second.first.str(),
                             owner.rfind("axis", 0) == 0 && it->second.second.rfind("axis", 0) == 0
                                 ? "; keys that vary together belong in one [paired] axis"
                                 : ""));
    return false;
  }

  void parse_axes() {
    const auto* axes = table_at("axes");
    if (!axes) return;
    std::vector<Leaf> leaves;
    flatten(*axes, "", file_, leaves);
    for (const auto& leaf : leaves) {
      const auto* list = leaf.node->as_array();
      if (!list || list->empty()) {
        error(leaf.where, fmt::format("axis {} must be a non-empty list of the values it takes, e.g. {} = [a, b]{}",
                                      leaf.key, leaf.key, list ? " (it is empty)" : ""));
        continue;
      }
      Axis axis;
      axis.key = leaf.key;
      axis.where = leaf.where;
      bool ok = true;
      for (const auto& item : *list) {
        auto s = setting(Leaf{leaf.key, &item, locate(file_, item.source())});
        if (!s) {
          ok = false;
          continue;
        }
        add_value(axis, AxisValue{{*s}, name_text(s->value), s->where});
      }
      if (ok && claim(leaf.key, leaf.where, "axis " + leaf.key)) axes_.push_back(std::move(axis));
    }
  }

  void parse_paired() {
    const auto* paired = table_at("paired");
    if (!paired) return;
    for (const auto& [k, v] : in_file_order(*paired)) {
      const std::string axis_name(k->str());
      const SourceLocation where = locate(file_, k->source());
      const auto* blocks = v->as_array();
      if (!blocks || blocks->empty() || !blocks->is_array_of_tables()) {
        error(where, fmt::format("paired axis '{}' must be a non-empty list of blocks of keys that vary together: "
                                 "{} = [{{peft.type = \"lora\", peft.r = 16}}, {{peft.type = \"dora\", peft.r = 8}}] "
                                 "or [[paired.{}]] tables", axis_name, axis_name, axis_name));
        continue;
      }
      if (folder_safe(axis_name) != axis_name || axis_name.find(',') != std::string::npos) {
        error(where, fmt::format("paired axis name '{}' may hold only letters, digits and . _ + - (it names "
                                 "variants' folders)", axis_name));
        continue;
      }
      Axis axis;
      axis.label = axis_name;
      axis.where = where;
      std::set<std::string> keys;
      for (const auto& item : *blocks) {
        const toml::table& block = *item.as_table();
        AxisValue value;
        value.where = locate(file_, item.source());
        std::vector<Leaf> leaves;
        flatten(block, "", file_, leaves);
        std::string label;
        for (const auto& leaf : leaves) {
          if (leaf.key == "name") {
            const auto* s = leaf.node->as_string();
            if (!s || s->get().empty()) {
              error(leaf.where, "a block's name must be a non-empty string (it names the variants' folders)");
            } else {
              label = s->get();
            }
            continue;
          }
          if (auto s = setting(leaf)) {
            value.settings.push_back(*s);
            keys.insert(s->key);
          }
        }
        if (value.settings.empty()) {
          error(value.where, fmt::format("a block of paired axis '{}' sets no recipe key", axis_name));
          continue;
        }
        if (label.empty()) {
          for (const auto& s : value.settings) label += (label.empty() ? "" : "-") + name_text(s.value);
        }
        value.label = label;
        add_value(axis, std::move(value));
      }
      bool ok = true;
      for (const auto& key : keys) ok = claim(key, where, "axis " + axis_name) && ok;
      if (ok) axes_.push_back(std::move(axis));
    }
  }

  // Appends a value to an axis unless it repeats one (two variants would be the same).
  void add_value(Axis& axis, AxisValue value) {
    auto canonical = [](const AxisValue& v) {
      std::vector<std::string> parts;
      for (const auto& s : v.settings) parts.push_back(s.assignment());
      std::sort(parts.begin(), parts.end());
      std::string out;
      for (const auto& p : parts) out += p + "\n";
      return out;
    };
    const std::string mine = canonical(value);
    for (const auto& other : axis.values) {
      if (canonical(other) == mine) {
        error(value.where, fmt::format("this value repeats the one at {}: two variants would be the same",
                                       other.where.str()));
        return;
      }
      if (!axis.key.empty() || other.label != value.label) continue;
      error(value.where, fmt::format("block name '{}' is used twice in paired axis '{}' (also at {})", value.label,
                                     axis.label, other.where.str()));
      return;
    }
    axis.values.push_back(std::move(value));
  }

  // The label of each cartesian axis: the section for `type` keys, else the key's name; the whole key where two
  // axes (or `seed`, or a paired axis) would show the same label.
  void label_axes() {
    auto short_label = [](const std::string& key) {
      const size_t dot = key.find('.');
      const std::string name = key.substr(dot + 1);
      return name == "type" ? key.substr(0, dot) : name;
    };
    std::map<std::string, int> uses;
    if (!grid_.seeds.empty()) ++uses["seed"];
    for (const auto& a : axes_) ++uses[a.key.empty() ? a.label : short_label(a.key)];
    for (auto& a : axes_) {
      if (a.key.empty()) continue;
      a.label = uses[short_label(a.key)] > 1 ? a.key : short_label(a.key);
    }
  }

  void expand() {
    label_axes();
    const std::vector<std::optional<int64_t>> seeds =
        grid_.seeds.empty() ? std::vector<std::optional<int64_t>>{std::nullopt}
                            : std::vector<std::optional<int64_t>>(grid_.seeds.begin(), grid_.seeds.end());
    size_t points = 1;
    for (const auto& a : axes_) points *= a.values.size();
    std::vector<size_t> choice(axes_.size(), 0);
    for (const auto& seed : seeds) {
      for (size_t p = 0; p < points; ++p) {
        // p in mixed radix, the first axis the most significant digit (it varies slowest).
        size_t rest = p;
        for (size_t i = axes_.size(); i-- > 0;) {
          choice[i] = rest % axes_[i].values.size();
          rest /= axes_[i].values.size();
        }
        GridVariant v;
        v.index = static_cast<int64_t>(grid_.variants.size());
        v.seed = seed;
        v.settings = grid_.set;
        std::vector<std::string> segments;
        for (size_t i = 0; i < axes_.size(); ++i) {
          const AxisValue& value = axes_[i].values[choice[i]];
          for (const auto& s : value.settings) v.overrides.push_back(s);
          segments.push_back(axes_[i].label + "-" + value.label);
        }
        v.settings.insert(v.settings.end(), v.overrides.begin(), v.overrides.end());
        if (seed) {
          v.settings.push_back(GridSetting{"train.seed", *seed, where_of("seeds")});
          segments.push_back("seed-" + std::to_string(*seed));
        }
        std::string name;
        for (const auto& s : segments) name += (name.empty() ? "" : ",") + s;
        v.name = name.empty() ? "base" : name;
        grid_.variants.push_back(std::move(v));
      }
    }
    finish_names();
  }

  // Folder-safe, at most 120 characters, unique: a cut or colliding name gets a tag of what it stands for.
  void finish_names() {
    constexpr size_t kMaxName = 120;
    std::map<std::string, std::vector<GridVariant*>> by_name;
    for (auto& v : grid_.variants) {
      const std::string full = v.name;
      v.name = folder_safe(full);
      if (v.name.size() > kMaxName) v.name = v.name.substr(0, kMaxName - 9) + "~" + short_hash(full);
      by_name[v.name].push_back(&v);
    }
    for (auto& [name, variants] : by_name) {
      if (variants.size() < 2) continue;
      for (GridVariant* v : variants) {
        std::string all;
        for (const auto& s : v->settings) all += s.assignment() + "\n";
        v->name = name.substr(0, std::min(name.size(), kMaxName - 9)) + "~" + short_hash(all);
      }
    }
    std::set<std::string> seen;
    for (const auto& v : grid_.variants) {
      if (!seen.insert(v.name).second) {
        error(SourceLocation{file_, 0, 0}, fmt::format("two variants are both named '{}'; give paired blocks distinct "
                                                       "`name`s", v.name));
      }
    }
  }

  const toml::table& root_;
  fs::path path_;
  std::string file_;
  AblationGrid grid_;
  std::vector<Axis> axes_;
  std::map<std::string, std::pair<SourceLocation, std::string>> claimed_;  // key -> where, by what
  std::vector<Diagnostic> errors_;
};

}  // namespace

std::string GridSetting::toml() const {
  struct Visitor {
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(int64_t i) const { return std::to_string(i); }
    std::string operator()(double d) const {
      if (std::isnan(d)) return "nan";
      if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
      std::string s = fmt::format("{}", d);  // shortest text that reads back as d
      if (s.find_first_of(".eE") == std::string::npos) s += ".0";  // stays a float
      return s;
    }
    std::string operator()(const std::string& s) const { return toml_string(s); }
    std::string operator()(const std::vector<std::string>& list) const {
      std::string out = "[";
      for (size_t i = 0; i < list.size(); ++i) out += (i ? ", " : "") + toml_string(list[i]);
      return out + "]";
    }
  };
  return std::visit(Visitor{}, value);
}

StatusOr<AblationGrid> parse_ablation_grid_text(std::string_view text, const fs::path& path) {
  toml::table root;
  try {
    root = toml::parse(text, path.string());
  } catch (const toml::parse_error& e) {
    return Status::InvalidArgument(fmt::format("{}:{}:{}: invalid TOML: {}", path.string(), e.source().begin.line,
                                               e.source().begin.column, e.description()));
  }
  return GridParser(root, path).parse();
}

StatusOr<AblationGrid> parse_ablation_grid(const fs::path& path) {
  if (!fs::is_regular_file(path)) return Status::NotFound(fmt::format("{}: no such grid file", path.string()));
  std::ifstream in(path, std::ios::binary);
  if (!in.is_open()) return Status::NotFound(fmt::format("{}: cannot read the grid file", path.string()));
  std::stringstream text;
  text << in.rdbuf();
  return parse_ablation_grid_text(text.str(), path);
}

}  // namespace loft
