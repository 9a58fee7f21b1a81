// vhdx: inspect, check, convert and edit VHDX images (see docs/cli.md).
#include <cstdio>
#include <exception>

#include <CLI/CLI.hpp>

#include "commands.h"

int main(int argc, char** argv) {
  // No exception may leave main: CLI11 reports parse errors by throwing, and
  // std::bad_alloc can come from any large buffer.
  try {
    CLI::App app{"Inspect, check, convert and edit VHDX virtual disk images.", "vhdx"};
    app.require_subcommand(1);
    app.set_version_flag("--version", "vhdx " VHDX_TOOL_VERSION);
    app.footer("Run 'vhdx COMMAND --help' for a command's options. Documentation: docs/cli.md");

    int exit_code = 0;
    vhdx::tool::AddInfoCommand(app, exit_code);
    vhdx::tool::AddCheckCommand(app, exit_code);
    vhdx::tool::AddMapCommand(app, exit_code);
    vhdx::tool::AddConvertCommand(app, exit_code);
    vhdx::tool::AddCreateCommand(app, exit_code);
    vhdx::tool::AddReadCommand(app, exit_code);
    vhdx::tool::AddWriteCommand(app, exit_code);
    vhdx::tool::AddResizeCommand(app, exit_code);
    vhdx::tool::AddCompactCommand(app, exit_code);
    vhdx::tool::AddDiscardCommand(app, exit_code);
    vhdx::tool::AddMergeCommand(app, exit_code);
    vhdx::tool::AddSetParentCommand(app, exit_code);

    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      return app.exit(e);
    }
    return exit_code;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vhdx: internal error: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "vhdx: internal error: unknown exception\n");
  }
  return 1;
}
