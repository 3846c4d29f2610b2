// "did you mean" suggestions for misspelled names.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace loft {

// The candidate closest to `word` by edit distance (transpositions count once), if it is close enough to be a
// plausible typo: distance <= max(1, len/3).
std::optional<std::string> closest_match(const std::string& word, const std::vector<std::string>& candidates);

// " (did you mean 'x'?)" or "".
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace loft
