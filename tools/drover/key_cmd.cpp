// drover keygen | drover key certify | drover key rotate-root | drover key show
#include <iostream>
#include <optional>

#include "core/sign/envelope.hpp"
#include "core/sign/keys.hpp"
#include "core/sign/root.hpp"
#include "tools/drover/commands.hpp"

namespace drover::cli {
namespace {

Result<std::uint64_t> whole_number(const std::string& flag, const std::string& text) {
  bool ok = !text.empty() && text.size() < 12;
  for (char c : text) ok = ok && c >= '0' && c <= '9';
  if (!ok) {
    return make_error(Errc::invalid_argument,
                      "--" + flag + " wants a whole number, got '" + text + "'");
  }
  return std::stoull(text);
}

// --days D (1 to 36500), or fallback when absent; nullopt when malformed.
std::optional<std::uint64_t> days_of(const cxxopts::ParseResult& parsed, std::uint64_t fallback) {
  if (!parsed.count("days")) return fallback;
  auto d = whole_number("days", parsed["days"].as<std::string>());
  if (!d.ok() || *d == 0 || *d > 36500) return std::nullopt;
  return *d;
}

int certify(Context& ctx, std::vector<std::string> args) {
  const std::string verb = "key certify";
  cxxopts::Options o("drover key certify",
                     "Sign a certificate by which the root key vouches for an online key.");
  o.custom_help("--root ROOT_KEY --subject ONLINE_KEY.pub --out CERT [--version N] [--days D]");
  o.add_options()("root", "the root secret key file", cxxopts::value<std::string>())(
      "subject", "the online key's public key file", cxxopts::value<std::string>())(
      "out", "where to write the certificate", cxxopts::value<std::string>())(
      "version", "certificate version; raise it to rotate (default 1)",
      cxxopts::value<std::string>())("days", "validity in days (default 365)",
                                     cxxopts::value<std::string>())("h,help", "show this help");
  auto line = parse_verb(verb, o, args, {}, {"root", "subject", "out"});
  if (!line.parsed) return line.exit;
  const auto parsed = &*line.parsed;
  std::uint64_t version = 1;
  if (parsed->count("version")) {
    auto v = whole_number("version", (*parsed)["version"].as<std::string>());
    if (!v.ok() || *v == 0) return usage(verb, "--version wants a whole number of at least 1");
    version = *v;
  }
  const auto days = days_of(*parsed, 365);
  if (!days) return usage(verb, "--days wants 1 to 36500");
  auto root = sign::load_key_pair(ctx.fs, (*parsed)["root"].as<std::string>());
  if (!root.ok()) return report(verb, root.error());
  auto subject = sign::load_public_key(ctx.fs, (*parsed)["subject"].as<std::string>());
  if (!subject.ok()) return report(verb, subject.error());
  sign::KeyCert cert;
  cert.subject = *subject;
  cert.version = version;
  cert.issued_at = unix_seconds(ctx.clock.now());
  cert.expires_at = cert.issued_at + static_cast<std::int64_t>(*days) * 86400;
  const fs::path out = (*parsed)["out"].as<std::string>();
  if (auto st = write_file(ctx, out, sign::encode_envelope(sign::certify(*root, cert)) + "\n", 0644,
                           false);
      !st.ok()) {
    return report(verb, st.error());
  }
  std::cout << "certified online key " << subject->key_id() << "\n"
            << "  by root key " << root->key_id() << ", version " << version << ", valid " << *days
            << " days\n"
            << "  wrote " << out.string() << "\n";
  return kExitOk;
}

int rotate_root(Context& ctx, std::vector<std::string> args) {
  const std::string verb = "key rotate-root";
  cxxopts::Options o("drover key rotate-root",
                     "Sign the root document by which the current root hands over to a new one "
                     "(docs/SECURITY.md, \"Rotating the root key\").");
  o.custom_help("--root CURRENT_ROOT_KEY --new-root NEW_ROOT_KEY --version N --out DOC [--days D]");
  o.add_options()("root", "the current root's secret key file", cxxopts::value<std::string>())(
      "new-root", "the new root's secret key file", cxxopts::value<std::string>())(
      "version", "the new root's version: the current one's plus 1 (the pinned root is 1)",
      cxxopts::value<std::string>())("out", "where to write the document",
                                     cxxopts::value<std::string>())(
      "days", "how long agents may still take the document (default 3650)",
      cxxopts::value<std::string>())("h,help", "show this help");
  auto line = parse_verb(verb, o, args, {}, {"root", "new-root", "version", "out"});
  if (!line.parsed) return line.exit;
  const auto parsed = &*line.parsed;
  auto version = whole_number("version", (*parsed)["version"].as<std::string>());
  if (!version.ok() || *version < 2) {
    return usage(verb, "--version wants the new root's version, at least 2 (the pinned root is 1)");
  }
  const auto days = days_of(*parsed, 3650);
  if (!days) return usage(verb, "--days wants 1 to 36500");
  auto current = sign::load_key_pair(ctx.fs, (*parsed)["root"].as<std::string>());
  if (!current.ok()) return report(verb, current.error());
  auto next = sign::load_key_pair(ctx.fs, (*parsed)["new-root"].as<std::string>());
  if (!next.ok()) return report(verb, next.error());
  if (current->public_key() == next->public_key()) {
    return report(verb, make_error(Errc::invalid_argument, "the new root is the current root"));
  }
  sign::RootDoc doc;
  doc.key = next->public_key();
  doc.version = *version;
  doc.issued_at = unix_seconds(ctx.clock.now());
  doc.expires_at = doc.issued_at + static_cast<std::int64_t>(*days) * 86400;
  auto envelope = sign::sign_root(*current, *next, doc);
  if (!envelope.ok()) return report(verb, envelope.error());
  const fs::path out = (*parsed)["out"].as<std::string>();
  if (auto st = write_file(ctx, out, sign::encode_envelope(*envelope) + "\n", 0644, false);
      !st.ok()) {
    return report(verb, st.error());
  }
  std::cout << "root version " << *version << " is key " << next->key_id() << "\n"
            << "  handed over by root key " << current->key_id() << "\n"
            << "  wrote " << out.string() << "; add it to the coordinator's root_chain, then\n"
            << "  certify the online key with the new root (drover key certify --version N+1)\n";
  return kExitOk;
}

int show_key(Context& ctx, std::vector<std::string> args) {
  const std::string verb = "key show";
  cxxopts::Options o("drover key show", "Print a key file's key id and public key.");
  o.custom_help("KEY_FILE");
  o.add_options()("file", "key file (secret or public)", cxxopts::value<std::string>())(
      "h,help", "show this help");
  auto parsed = parse(o, args, {"file"});
  if (!parsed.ok()) return usage(verb, parsed.error().message);
  if (parsed->count("help")) {
    std::cout << o.help() << "\n";
    return kExitOk;
  }
  if (!parsed->count("file")) return usage(verb, "missing KEY_FILE");
  auto key = sign::load_public_key(ctx.fs, (*parsed)["file"].as<std::string>());
  if (!key.ok()) return report(verb, key.error());
  std::cout << "key id  " << key->key_id() << "\npublic  " << key->hex() << "\n";
  return kExitOk;
}

}  // namespace

int keygen_command(Context& ctx, std::vector<std::string> args) {
  const std::string verb = "keygen";
  cxxopts::Options o("drover keygen", "Generate an ed25519 key pair.");
  o.custom_help("--out PATH   (writes PATH, mode 0600, and PATH.pub)");
  o.add_options()("out", "secret key file to write", cxxopts::value<std::string>())(
      "h,help", "show this help");
  auto parsed = parse(o, args, {});
  if (!parsed.ok()) return usage(verb, parsed.error().message);
  if (parsed->count("help")) {
    std::cout << o.help() << "\n";
    return kExitOk;
  }
  if (!parsed->count("out")) return usage(verb, "missing --out PATH");
  const fs::path out = (*parsed)["out"].as<std::string>();
  sign::KeyPair key = sign::KeyPair::generate(ctx.random);
  if (auto st = sign::save_key_pair(ctx.fs, key, out); !st.ok()) return report(verb, st.error());
  std::cout << "key id  " << key.key_id() << "\n"
            << "secret  " << out.string() << " (mode 0600)\n"
            << "public  " << out.string() << ".pub\n";
  return kExitOk;
}

int key_command(Context& ctx, std::vector<std::string> args) {
  const std::string help =
      "usage: drover key <verb> ...\n"
      "  certify --root ROOT_KEY --subject ONLINE_KEY.pub --out CERT [--version N] [--days D]\n"
      "  rotate-root --root ROOT_KEY --new-root NEW_ROOT_KEY --version N --out DOC [--days D]\n"
      "  show KEY_FILE\n";
  if (args.empty()) {
    std::cerr << help;
    return kExitUsage;
  }
  std::string verb = args.front();
  args.erase(args.begin());
  if (verb == "certify") return certify(ctx, std::move(args));
  if (verb == "show") return show_key(ctx, std::move(args));
  if (verb == "rotate-root") return rotate_root(ctx, std::move(args));
  if (verb == "-h" || verb == "--help" || verb == "help") {
    std::cout << help;
    return kExitOk;
  }
  std::cerr << "drover key: unknown verb '" << verb << "'\n" << help;
  return kExitUsage;
}

}  // namespace drover::cli
