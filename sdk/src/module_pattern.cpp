// ModulePattern: PEFT's check_target_module_exists rule (equal or dotted suffix; a regex full-matches).
#include "loft/module_pattern.h"

#include <stdexcept>

namespace loft {

ModulePattern::ModulePattern(std::string entry) : entry_(std::move(entry)) {
  if (entry_.rfind("re:", 0) != 0) return;
  try {
    regex_.emplace(entry_.substr(3), std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    throw std::invalid_argument(e.what());
  }
}

bool ModulePattern::matches(const std::string& module) const {
  if (regex_) return std::regex_match(module, *regex_);
  return module == entry_ || (module.size() > entry_.size() &&
                              module.compare(module.size() - entry_.size(), entry_.size(), entry_) == 0 &&
                              module[module.size() - entry_.size() - 1] == '.');
}

}  // namespace loft
