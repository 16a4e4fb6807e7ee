// drover mesh token-key | drover mesh token: the key trackers check mesh
// tokens with, and tokens for the nodes the coordinator does not issue them
// to (regional seeds, the origin). docs/FORMATS.md, "Mesh tokens (`dmt1`)".
#include <iostream>

#include "core/mesh_token/mesh_token.hpp"
#include "tools/drover/commands.hpp"

namespace drover::cli {
namespace {

int token_key(Context& ctx, std::vector<std::string> args) {
  const std::string verb = "mesh token-key";
  cxxopts::Options o("drover mesh token-key",
                     "Generate the key (32 random bytes, 64 hex digits) that the coordinator "
                     "issues mesh tokens under and trackers check them with.");
  o.custom_help("--out FILE");
  o.add_options()("out", "where to write the key (mode 0600; never overwritten)",
                  cxxopts::value<std::string>())("h,help", "show this help");
  auto line = parse_verb(verb, o, args, {}, {"out"});
  if (!line.parsed) return line.exit;
  const auto parsed = &*line.parsed;
  const fs::path out = (*parsed)["out"].as<std::string>();
  const std::string key = ctx.random.bytes(mesh_token::kKeySize);
  if (auto st = write_file(ctx, out, mesh_token::key_file_text(key), 0600, false); !st.ok())
    return report(verb, st.error());
  std::cout << "wrote mesh token key " << out.string() << "\n";
  return kExitOk;
}

int token(Context& ctx, std::vector<std::string> args) {
  const std::string verb = "mesh token";
  cxxopts::Options o("drover mesh token",
                     "Issue a mesh token (for a regional seed or the origin; the coordinator "
                     "issues the agents' own).");
  o.custom_help(
      "--key-file F --role seed|origin|peer --region R --host H [--ttl-s N] [--out FILE]");
  o.add_options()("key-file", "the mesh token key (64 hex digits, mode 0600)",
                  cxxopts::value<std::string>())("role", "seed, origin or peer",
                                                 cxxopts::value<std::string>())(
      "region", "the node's region (none for the origin)",
      cxxopts::value<std::string>()->default_value(""))("host", "the node's host name",
                                                        cxxopts::value<std::string>())(
      "ttl-s", "seconds the token is valid (default 30 days)",
      cxxopts::value<std::string>()->default_value("2592000"))(
      "out", "write the token here (mode 0600) instead of to standard output",
      cxxopts::value<std::string>())("h,help", "show this help");
  auto line = parse_verb(verb, o, args, {}, {"key-file", "role", "host"});
  if (!line.parsed) return line.exit;
  const auto parsed = &*line.parsed;
  const std::string ttl_text = (*parsed)["ttl-s"].as<std::string>();
  bool digits = !ttl_text.empty() && ttl_text.size() <= 10;
  for (char c : ttl_text) digits = digits && c >= '0' && c <= '9';
  const std::int64_t ttl = digits ? std::stoll(ttl_text) : 0;
  if (ttl < 1 || ttl > 366 * 86400) return usage(verb, "--ttl-s wants 1 to 31622400 seconds");
  auto key = mesh_token::load_key(ctx.fs, (*parsed)["key-file"].as<std::string>());
  if (!key.ok()) return report(verb, key.error());
  mesh_token::Claims claims;
  claims.role = (*parsed)["role"].as<std::string>();
  claims.region = (*parsed)["region"].as<std::string>();
  claims.host = (*parsed)["host"].as<std::string>();
  claims.expires_at = unix_seconds(ctx.clock.now()) + ttl;
  auto issued = mesh_token::issue(*key, claims);
  if (!issued.ok()) return usage(verb, issued.error().message);
  if (parsed->count("out")) {
    const fs::path out = (*parsed)["out"].as<std::string>();
    if (auto st = write_file(ctx, out, *issued + "\n", 0600, true); !st.ok())
      return report(verb, st.error());
    std::cerr << "wrote a mesh token for " << claims.role << " '" << claims.host << "' (region '"
              << claims.region << "', expires at " << claims.expires_at << ") to " << out.string()
              << "\n";
  } else {
    std::cout << *issued << "\n";
  }
  return kExitOk;
}

}  // namespace

int mesh_command(Context& ctx, std::vector<std::string> args) {
  if (args.empty()) return usage("mesh", "want 'token' or 'token-key'");
  const std::string sub = args.front();
  args.erase(args.begin());
  if (sub == "token") return token(ctx, std::move(args));
  if (sub == "token-key") return token_key(ctx, std::move(args));
  return usage("mesh", "unknown subcommand '" + sub + "' (want 'token' or 'token-key')");
}

}  // namespace drover::cli
