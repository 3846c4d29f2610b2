// Ablation grids (`loft ablate GRID.toml`): a base recipe, recipe keys set for every variant, cartesian axes over
// recipe keys, paired axes whose values are blocks of keys that vary together, and seeds; expanded into variants
// with deterministic, folder-safe names. Parsing only: nothing here validates a variant's recipe or runs it
// (ablate.h does).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "loft/framework/recipe.h"
#include "loft/options.h"
#include "loft/status.h"

namespace loft {

// One recipe key set by the grid ("section.key" = value), located where the grid writes it.
struct GridSetting {
  std::string key;  // section.key
  OptionValue value;
  SourceLocation where;
  // The value as TOML text ("int8" quoted, 2e-4, true, ["a", "b"]): what `loft run RECIPE key=<text>` reads back
  // as the same value.
  std::string toml() const;
  // "key=<toml>": a command-line override (apply_override, `loft run`).
  std::string assignment() const { return key + "=" + toml(); }
};

// One point of the grid.
struct GridVariant {
  int64_t index = 0;                  // 0-based, in expansion order
  std::string name;                   // folder-safe and unique in the grid: "quantizer-int8,offload-zero3,seed-1"
  std::optional<int64_t> seed;        // from `seeds`, set as train.seed
  std::vector<GridSetting> overrides;  // what this variant varies: its axes' values, in the grid's axis order
  // Every recipe override of the variant, in the order they apply: [set], then the axes, then train.seed.
  std::vector<GridSetting> settings;
};

struct AblationGrid {
  std::filesystem::path path;       // the grid file
  std::filesystem::path base;       // the base recipe (made absolute against the grid's folder)
  std::string name;                 // `name`, default: the grid file's stem
  std::vector<GridSetting> set;     // [set]
  std::vector<int64_t> seeds;       // empty: no seed axis
  std::vector<GridVariant> variants;
};

// Parses a grid and expands it. Axes (cartesian [axes] keys and [paired] axes) vary in the order the file writes
// them, the first slowest; seeds vary slowest of all, so a partly run grid has every configuration at its first
// seed. Every problem is reported at once, one "file:line:column: error: ..." line each, in a kInvalidArgument
// status (kNotFound: the grid file is missing): unknown top-level keys, a key that is not `section.key`, an empty
// axis or seed list, a key set in two places ([set], an axis, a paired block; train.seed with `seeds`), [output]
// keys (loft ablate places the runs), two variants with the same overrides. Recipe keys and values are not checked
// here: validate each variant's recipe for that.
StatusOr<AblationGrid> parse_ablation_grid(const std::filesystem::path& path);
StatusOr<AblationGrid> parse_ablation_grid_text(std::string_view text, const std::filesystem::path& path);

}  // namespace loft
