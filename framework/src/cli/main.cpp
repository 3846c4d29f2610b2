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
  data RECIPE [--limit N]                  print the recipe's dataset samples as JSON lines
  eval RECIPE [--run RUN_DIR] [--limit N]  generate answers to the dataset's problems and grade them
  merge RUN_DIR --out DIR                  base + trained adaptation -> a Hugging Face model folder

`loft <command> --help` describes a command's options.
exit codes: 0 ok, 1 runtime failure, 2 usage or recipe error, 130/143 run stopped by SIGINT/SIGTERM.
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
    if (command == "merge") return loft::cli::cmd_merge(args);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "loft %s: error: %s\n", command.c_str(), loft::error_message(e).c_str());
    return loft::cli::kExitFailure;
  }
  std::fprintf(stderr, "loft: unknown command '%s'; see `loft --help`\n", command.c_str());
  return loft::cli::kExitUsage;
}
