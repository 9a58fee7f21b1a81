// `vhdx check [--json] [--repair] FILE`: consistency check and repair.
//
// Exit status: 0 no errors (warnings allowed); 1 errors were found and all of
// them were repaired (--repair); 2 errors remain; 3 the check could not run.
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "common.h"
#include "vhdx/check.h"
#include "vhdx/file.h"

namespace vhdx::tool {
namespace {

using Json = nlohmann::ordered_json;

constexpr int kCheckClean = 0;
constexpr int kCheckRepaired = 1;
constexpr int kCheckCorrupt = 2;
constexpr int kCheckFailed = 3;

struct CheckCmdOptions {
  std::string file;
  bool json = false;
  bool repair = false;
};

const char* SeverityName(CheckProblem::Severity s) {
  return s == CheckProblem::Severity::kError ? "error" : "warning";
}

struct Tally {
  uint64_t errors = 0;       // every error found
  uint64_t warnings = 0;
  uint64_t repaired = 0;     // problems (of any severity) fixed
  uint64_t remaining = 0;    // errors not fixed
};

Tally Count(const CheckReport& report) {
  Tally t;
  for (const CheckProblem& p : report.problems) {
    if (p.severity == CheckProblem::Severity::kError) {
      ++t.errors;
      if (!p.repaired) ++t.remaining;
    } else {
      ++t.warnings;
    }
    if (p.repaired) ++t.repaired;
  }
  return t;
}

// The message without a leading "<structure> at file offset <hex>: ", which
// the human output prints already.
std::string MessageDetail(const CheckProblem& p) {
  const std::string prefix = p.structure + " at file offset " + Hex(p.file_offset) + ": ";
  if (p.message.size() > prefix.size() && p.message.compare(0, prefix.size(), prefix) == 0) {
    return p.message.substr(prefix.size());
  }
  return p.message;
}

int ExitCode(const Tally& t, const CheckReport& report, bool repair) {
  if (t.remaining > 0) return kCheckCorrupt;
  if (repair && (t.repaired > 0 || report.log_was_dirty)) return kCheckRepaired;
  return kCheckClean;
}

// Exit status 3 is for files that are not VHDX at all; CheckImage would
// report a missing signature as corruption.
Status CheckSignature(const std::string& path) {
  auto file = OpenPosixFile(path, FileMode::kReadOnly);
  if (!file.ok()) return file.status();
  uint8_t signature[8] = {};
  Status s = (*file)->ReadAt(0, signature);
  if (!s.ok()) return s;
  if (std::memcmp(signature, "vhdxfile", sizeof signature) != 0) {
    return Status::Corruption("not a VHDX file (no \"vhdxfile\" signature at offset 0)");
  }
  return Status::OK();
}

int RunCheck(const CheckCmdOptions& o) {
  if (Status s = CheckSignature(o.file); !s.ok()) {
    Fail("check", o.file, s);
    return kCheckFailed;
  }
  CheckOptions options;
  options.repair = o.repair;
  auto result = CheckImage(o.file, options);
  if (!result.ok()) {
    Fail("check", o.file, result.status());
    return kCheckFailed;
  }
  const CheckReport& report = *result;
  const Tally t = Count(report);
  const int code = ExitCode(t, report, o.repair);

  if (o.json) {
    Json problems = Json::array();
    for (const CheckProblem& p : report.problems) {
      problems.push_back(Json{{"severity", SeverityName(p.severity)},
                              {"structure", p.structure},
                              {"file_offset", p.file_offset},
                              {"message", p.message},
                              {"repaired", p.repaired}});
    }
    Json lost = Json::array();
    for (const auto& [offset, length] : report.lost_ranges) lost.push_back(Json{{"offset", offset}, {"length", length}});
    Json j;
    j["path"] = o.file;
    j["repair"] = o.repair;
    j["clean"] = t.remaining == 0;
    j["errors"] = t.errors;
    j["warnings"] = t.warnings;
    j["repaired"] = t.repaired;
    j["remaining_errors"] = t.remaining;
    j["log_was_dirty"] = report.log_was_dirty;
    j["problems"] = std::move(problems);
    j["lost_ranges"] = std::move(lost);
    j["exit_code"] = code;
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    for (const CheckProblem& p : report.problems) {
      std::printf("%s: %s at %s: %s%s\n", p.severity == CheckProblem::Severity::kError ? "ERROR" : "Warning",
                  p.structure.c_str(), Hex(p.file_offset).c_str(), MessageDetail(p).c_str(),
                  p.repaired ? " (repaired)" : "");
    }
    for (const auto& [offset, length] : report.lost_ranges) {
      std::printf("Data lost by the repair: virtual %s, length %s\n", Hex(offset).c_str(),
                  HumanSizeWithBytes(length).c_str());
    }
    if (report.log_was_dirty) {
      std::printf(o.repair ? "The log was dirty and has been replayed.\n"
                           : "The log is dirty; it was replayed in memory for this check (use --repair to "
                             "replay it to the file).\n");
    }
    if (report.problems.empty()) {
      std::printf("No errors were found on the image.\n");
    } else {
      std::printf("%llu errors and %llu warnings were found on the image", static_cast<unsigned long long>(t.errors),
                  static_cast<unsigned long long>(t.warnings));
      if (o.repair) {
        std::printf("; %llu problems were repaired, %llu errors remain",
                    static_cast<unsigned long long>(t.repaired), static_cast<unsigned long long>(t.remaining));
      }
      std::printf(".\n");
    }
  }
  if (std::fflush(stdout) != 0) return kCheckFailed;
  return code;
}

}  // namespace

void AddCheckCommand(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<CheckCmdOptions>();
  CLI::App* cmd = app.add_subcommand(
      "check", "Check an image's consistency. Exit status: 0 clean, 1 all errors repaired, 2 errors remain, "
               "3 the check could not run");
  cmd->add_flag("--json", o->json, "Machine-readable output (keys in docs/cli.md)");
  cmd->add_flag("-r,--repair", o->repair, "Repair what can be repaired without guessing (opens read-write)");
  cmd->add_option("FILE", o->file, "VHDX image")->required();
  cmd->callback([o, &exit_code] {
    try {
      exit_code = RunCheck(*o);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "vhdx: check: %s: internal error: %s\n", o->file.c_str(), e.what());
      exit_code = kCheckFailed;
    }
  });
}

}  // namespace vhdx::tool
