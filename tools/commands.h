// The `vhdx` tool's subcommands. Each Add*Command registers one subcommand
// on `app`; when the user selects it, its callback runs the command after
// parsing and stores the process exit status in `exit_code`.
#ifndef VHDX_TOOLS_COMMANDS_H_
#define VHDX_TOOLS_COMMANDS_H_

#include <CLI/CLI.hpp>

namespace vhdx::tool {

void AddInfoCommand(CLI::App& app, int& exit_code);     // cmd_info.cc
void AddCheckCommand(CLI::App& app, int& exit_code);    // cmd_check.cc
void AddMapCommand(CLI::App& app, int& exit_code);      // cmd_map.cc
void AddConvertCommand(CLI::App& app, int& exit_code);  // cmd_convert.cc
void AddCreateCommand(CLI::App& app, int& exit_code);   // cmd_create.cc
void AddReadCommand(CLI::App& app, int& exit_code);     // cmd_io.cc
void AddWriteCommand(CLI::App& app, int& exit_code);    // cmd_io.cc
void AddResizeCommand(CLI::App& app, int& exit_code);     // cmd_edit.cc
void AddCompactCommand(CLI::App& app, int& exit_code);    // cmd_edit.cc
void AddDiscardCommand(CLI::App& app, int& exit_code);    // cmd_edit.cc
void AddMergeCommand(CLI::App& app, int& exit_code);      // cmd_edit.cc
void AddSetParentCommand(CLI::App& app, int& exit_code);  // cmd_edit.cc

}  // namespace vhdx::tool

#endif  // VHDX_TOOLS_COMMANDS_H_
