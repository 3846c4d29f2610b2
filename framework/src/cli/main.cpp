// `loft`: the command-line front end. Dispatches to a subcommand; each parses its own options.
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "commands.h"
#include "loft/error_message.h"
#include "loft/framework/host.h"

namespace {

constexpr const char* kUsage = R"(loft: fine-tune large language models when memory is tight

usage: loft [--version] [--help] <command> [<args>]

commands:
  run RECIPE [section.key=value ...]       load the recipe's plugins and run it
  validate RECIPE... [section.key=value]   check recipes against every schema; all errors at once
  plugins list | describe KIND/NAME        what plugins are installed, read from their manifests
  plugins describe SECTION                 a recipe section's keys: type, default and help (train, model, ...)
  data RECIPE [--limit N]                  print the recipe's dataset samples as JSON lines
  eval RECIPE [--run RUN_DIR] [--limit N]  generate answers to the dataset's problems and grade them
  generate RECIPE --prompt TEXT            the model's reply to one chat message (--run RUN_DIR: what it trained)
  merge RUN_DIR --out DIR                  base + trained adaptation -> a Hugging Face model folder
  plan RECIPE [--json] [--fit]             predicted peak GPU and host memory by category; --fit: fit [budget]
  report GRID_OR_RUN_DIR... [--out FILE]   loss curves, throughput, memory and the results table as one HTML file
  ablate GRID [--out DIR] [--dry-run]      run every variant of an ablation grid, each in its own process

`loft <command> --help` describes a command's options.
exit codes: 0 ok, 1 runtime failure, 2 bad input (usage, the recipe, or the files and plugins it names),
130/143 run or ablate stopped by SIGINT/SIGTERM.
)";

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << kUsage;
    return args.empty() ? loft::cli::kExitUsage : loft::cli::kExitOk;
  }
  if (args[0] == "--version") {
    std::cout << "loft " << LOFT_VERSION_STRING << "\n";
    return loft::cli::kExitOk;
  }
  const std::string command = args[0];
  args.erase(args.begin());
  try {
    if (command == "run") return loft::cli::cmd_run(args);
    if (command == "validate") return loft::cli::cmd_validate(args);
    if (command == "plugins") return loft::cli::cmd_plugins(args);
    if (command == "data") return loft::cli::cmd_data(args);
    if (command == "eval") return loft::cli::cmd_eval(args);
    if (command == "generate") return loft::cli::cmd_generate(args);
    if (command == "merge") return loft::cli::cmd_merge(args);
    if (command == "plan") return loft::cli::cmd_plan(args);
    if (command == "report") return loft::cli::cmd_report(args);
    if (command == "ablate") return loft::cli::cmd_ablate(args);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "loft %s: error: %s\n", command.c_str(), loft::error_message(e).c_str());
    return loft::cli::kExitFailure;
  }
  std::fprintf(stderr, "loft: unknown command '%s'; see `loft --help`\n", command.c_str());
  return loft::cli::kExitUsage;
}
