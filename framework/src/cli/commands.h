// The `loft` subcommands. Each returns the process exit code: 0 ok, 1 runtime failure, 2 bad input (usage, the
// recipe, or the files and plugins it names).
#pragma once

#include <string>
#include <vector>

namespace loft::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

int cmd_validate(const std::vector<std::string>& args);
int cmd_plugins(const std::vector<std::string>& args);
int cmd_run(const std::vector<std::string>& args);
int cmd_data(const std::vector<std::string>& args);
int cmd_eval(const std::vector<std::string>& args);
int cmd_generate(const std::vector<std::string>& args);
int cmd_merge(const std::vector<std::string>& args);
int cmd_plan(const std::vector<std::string>& args);
int cmd_report(const std::vector<std::string>& args);  // report_command.cpp
int cmd_ablate(const std::vector<std::string>& args);

}  // namespace loft::cli
