// MATH answers: extraction of the final \boxed{} answer, normalisation to a canonical spelling and an exact
// equivalence test, following the MATH benchmark's grader (Hendrycks et al.'s strip_string / is_equiv) and the
// Minerva / PRM800K normalisations, without a computer algebra system.
//
// Conventions (tests/unit/math_answer_cases.tsv holds one case or more for each):
//  - Numbers compare exactly, as rationals: integers, decimals, "a/b", "\frac{a}{b}" (also \dfrac, \tfrac, "\frac12"),
//    mixed numbers ("2\frac{1}{4}" = 9/4, as MATH writes them), scientific notation ("1.5\times10^{3}", "1.5e3").
//    "0.5" = "1/2" = "\frac{1}{2}"; "1000000000" != "1000000001"; "0.3333333333" != "1/3"; "10.0" = "10".
//  - Nothing else is evaluated: "\pi", "\sqrt{2}", "2^{10}" stay symbolic ("3.14" != "\pi"); only spellings differ
//    ("2 \sqrt3" = "2\sqrt{3}").
//  - Dropped: white space and LaTeX spacing, $ and \$, \left/\right, \displaystyle, degrees (^\circ, °), percent
//    ("50\%" = "50", and so "50\%" != "0.5": MATH's references write the percentage), thousands separators
//    ("1,000", "1{,}000", "1\,000"), a trailing period, units after a value ("5 \text{ cm}" = "5", "4 square units",
//    "18.90 dollars"), a variable's left-hand side ("x = 3" = "3", "x \in [1,2]" = "[1,2]").
//  - \text{}, \textbf{}, \mbox{}, \mathrm{} are unwrapped ("\text{(B)}" = "(B)"); a choice letter "(B)" = "B".
//  - Structure: tuples and intervals compare element by element with the same brackets ("(1,2)" != "(2,1)",
//    "[1,2)" != "[1,2]"); sets "\{...\}" and bare lists "1, 3" are unordered; matrices (pmatrix, bmatrix, matrix, ...)
//    compare cell by cell.
//  - An answer longer than 1000 bytes (no MATH answer is) is only stripped of white space and compared as written.
#pragma once

#include <optional>
#include <string>

namespace loft {

// The argument of the last \boxed{...} or \fbox{...} in `text` (braces balanced; "\boxed {5}" and "\boxed 5" too);
// nullopt when there is none or it is unbalanced. The innermost of nested boxes is the last one.
std::optional<std::string> extract_boxed_answer(const std::string& text);

// A canonical spelling of an answer (the conventions above); a number becomes "n", "\frac{p}{q}" or "-\frac{p}{q}".
std::string normalize_math_answer(const std::string& answer);

// True when the two answers are equivalent under the conventions above. An empty answer matches nothing.
bool math_answers_match(const std::string& predicted, const std::string& reference);

}  // namespace loft
