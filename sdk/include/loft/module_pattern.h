// One entry of a recipe's list of modules (peft.targets, quantizer.skip), matched as PEFT matches target_modules.
#pragma once

#include <optional>
#include <regex>
#include <string>

namespace loft {

// A module name ("model.layers.0.mlp.down_proj"), a dotted suffix of one ("down_proj", "mlp.down_proj": every
// layer's), or "re:<regex>" (ECMAScript) matched against the whole module name. Host-side string work only: no
// CUDA, never blocks. Immutable after construction; const methods are thread-safe.
class ModulePattern {
 public:
  // Takes its own copy of `entry`. Throws std::invalid_argument with the regex error when a "re:" entry does not
  // compile.
  explicit ModulePattern(std::string entry);
  // Never throw (matches() may throw std::regex_error only on regex complexity limits, as std::regex_match does).
  const std::string& entry() const { return entry_; }
  bool is_regex() const { return regex_.has_value(); }
  bool matches(const std::string& module) const;

 private:
  std::string entry_;
  std::optional<std::regex> regex_;
};

}  // namespace loft
