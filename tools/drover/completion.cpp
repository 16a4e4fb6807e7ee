// drover completion bash, and the hidden `drover completion __complete` it calls: the
// candidates for the word being typed, computed by drover itself (verbs,
// sub-verbs, and each verb's flags read from its own --help), so the
// completion never falls behind the command line.
#include <iostream>
#include <set>
#include <sstream>

#include "tools/drover/commands.hpp"

namespace drover::cli {
namespace {

// The sub-verbs of the verbs that have them.
const std::map<std::string, std::vector<std::string>>& subverbs() {
  static const std::map<std::string, std::vector<std::string>> kSub = {
      {"artifact",
       {"push", "register", "ls", "show", "verify", "materialize", "gc", "pin", "unpin"}},
      {"key", {"certify", "rotate-root", "show"}},
      {"mesh", {"token-key", "token"}},
      {"pipeline", {"apply", "ls", "show", "runs"}},
      {"token", {"create", "revoke", "list"}},
      {"join-token", {"create", "ls", "revoke"}},
      {"scm", {"source", "sources", "login"}},
      {"notify", {"allow", "allowed", "add", "ls", "rm", "outbox", "receive"}},
      {"flag", {"set", "kill", "ls"}},
      {"release", {"create", "ls", "status", "approve", "reject"}},
      {"audit", {"verify", "show"}},
      {"config",
       {"set-context", "use-context", "get-contexts", "current-context", "delete-context"}},
      {"completion", {"bash"}},
  };
  return kSub;
}

// Runs a command line with its output captured (its --help, here).
std::string captured(const std::function<int(std::vector<std::string>)>& run,
                     std::vector<std::string> line) {
  std::ostringstream out, err;
  // Put back on every path, a throw included.
  struct Restore {
    std::streambuf* out;
    std::streambuf* err;
    ~Restore() {
      std::cout.rdbuf(out);
      std::cerr.rdbuf(err);
    }
  } restore{std::cout.rdbuf(out.rdbuf()), std::cerr.rdbuf(err.rdbuf())};
  try {
    (void)run(std::move(line));
  } catch (const std::exception&) {
    return "";  // no flags rather than a broken shell line
  }
  return out.str();
}

// Every "--flag" the options part of a help text names (its Examples may
// show flags of other verbs).
std::set<std::string> flags_in(std::string help) {
  if (const auto examples = help.find("Examples:"); examples != std::string::npos) {
    help.resize(examples);
  }
  std::set<std::string> out;
  for (std::size_t i = help.find("--"); i != std::string::npos; i = help.find("--", i + 2)) {
    std::size_t end = i + 2;
    while (end < help.size() &&
           (std::isalnum(static_cast<unsigned char>(help[end])) || help[end] == '-')) {
      ++end;
    }
    if (end > i + 2) out.insert(help.substr(i, end - i));
  }
  return out;
}

constexpr const char* kBashScript =
    R"SH(# drover's bash completion: eval "$(drover completion bash)"
_drover() {
  local IFS=$'\n'
  COMPREPLY=($(drover completion __complete "${COMP_CWORD}" "${COMP_WORDS[@]:1}" 2>/dev/null))
}
complete -o default -o bashdefault -F _drover drover
)SH";

}  // namespace

int completion_command(const std::vector<std::string>& verbs,
                       const std::function<int(std::vector<std::string>)>& run,
                       std::vector<std::string> args) {
  if (args.size() == 1 && args[0] == "bash") {
    std::cout << kBashScript;
    return kExitOk;
  }
  if (args.empty() || args[0] != "__complete") {
    if (!args.empty() && (args[0] == "--help" || args[0] == "-h")) {
      std::cout << "usage: drover completion bash\n"
                   "Prints a bash completion script for drover.\n\n"
                   "Examples:\n"
                   "  eval \"$(drover completion bash)\"                       # this shell\n"
                   "  drover completion bash > /etc/bash_completion.d/drover  # every shell\n";
      return kExitOk;
    }
    return usage("completion", "give 'bash' (drover completion bash)");
  }
  // __complete CWORD WORD...: WORDs are the words after "drover"; CWORD
  // counts from "drover" (1: the first word after it).
  if (args.size() < 2) return kExitOk;
  const long cword = std::strtol(args[1].c_str(), nullptr, 10);
  std::vector<std::string> words(args.begin() + 2, args.end());
  if (cword < 1 || static_cast<std::size_t>(cword) > words.size() + 1) return kExitOk;
  const std::string current =
      static_cast<std::size_t>(cword) <= words.size() ? words[cword - 1] : "";
  auto emit = [&](const std::vector<std::string>& candidates) {
    for (const auto& c : candidates) {
      if (c.rfind(current, 0) == 0) std::cout << c << "\n";
    }
    return kExitOk;
  };
  if (cword == 1) {
    std::vector<std::string> all = verbs;
    return emit(all);
  }
  const std::string& verb = words[0];
  auto sub = subverbs().find(verb);
  if (cword == 2 && sub != subverbs().end() && (current.empty() || current[0] != '-')) {
    return emit(sub->second);
  }
  if (current.rfind("-", 0) != 0) return kExitOk;  // a value or an argument: the shell's files
  std::vector<std::string> line = {verb};
  if (sub != subverbs().end() && words.size() >= 2 && words[1].rfind("-", 0) != 0) {
    line.push_back(words[1]);
  }
  line.push_back("--help");
  const auto flags = flags_in(captured(run, line));
  return emit(std::vector<std::string>(flags.begin(), flags.end()));
}

}  // namespace drover::cli
