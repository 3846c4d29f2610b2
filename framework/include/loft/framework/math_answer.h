// MATH answers: extraction of the final \boxed{} answer and normalisation so that equal answers compare equal
// ("\dfrac{1}{2}", "\frac12", "0.5" and "1/2"; "\text{ cm}" units; spaces; "x = 3").
#pragma once

#include <optional>
#include <string>

namespace loft {

// The content of the last \boxed{...} (or \fbox{...}) in `text`, braces balanced; nullopt when there is none.
std::optional<std::string> extract_boxed_answer(const std::string& text);

// A canonical spelling of an answer (the MATH benchmark's normalisation, extended with numeric forms).
std::string normalize_math_answer(const std::string& answer);

// True when the two answers are the same after normalisation, or denote the same number.
bool math_answers_match(const std::string& predicted, const std::string& reference);

}  // namespace loft
