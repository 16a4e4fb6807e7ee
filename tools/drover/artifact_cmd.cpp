// drover artifact push | ls | show | verify | materialize | gc | pin | unpin
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/base/hex.hpp"
#include "core/canon/canonical_json.hpp"
#include "core/format/manifest.hpp"
#include "store/artifact_store.hpp"
#include "tools/drover/client_config.hpp"
#include "tools/drover/commands.hpp"

namespace drover::cli {
namespace {

using nlohmann::json;
using store::ArtifactRecord;
using store::ArtifactStore;

void add_store_flags(cxxopts::Options& o) {
  o.add_options()(
      "store",
      "store directory (else $DROVER_STORE, else " + std::string(store::kDefaultStorePath) + ")",
      cxxopts::value<std::string>())("log-level", "debug, info, warn or error (default warn)",
                                     cxxopts::value<std::string>())("h,help", "show this help");
}

// An ID that is not an id, or an ambiguous prefix, is a command line error.
int report_resolve(const std::string& verb, const Error& e) {
  return e.code == Errc::invalid_argument ? usage(verb, e.message) : report(verb, e);
}

// The deploy command to run next: the pipelines of the artifact's service,
// or how to make one.
std::vector<std::string> next_commands(const json& pipelines, const ArtifactRecord& r) {
  const std::string short_id = r.id.hex().substr(0, 12);
  std::vector<std::string> out;
  const json* list =
      pipelines.is_object() && pipelines.contains("pipelines") ? &pipelines["pipelines"] : nullptr;
  if (list != nullptr && list->is_array()) {
    for (const auto& p : *list) {
      if (!p.is_object() || !p.contains("service") || !p.contains("id")) continue;
      const json& service = p["service"];
      const json& id = p["id"];
      if (service.is_string() && id.is_string() && service == r.service) {
        out.push_back("drover deploy " + id.get<std::string>() + " " + short_id);
      }
    }
  }
  if (out.empty()) {
    out.push_back("drover pipeline apply -f PIPELINE.yaml (no pipeline deploys service " +
                  r.service + " yet), then drover deploy PIPELINE " + short_id);
  }
  return out;
}

// Whether stderr is a terminal that can take a progress line redrawn in place.
bool shows_progress() {
  const char* term = std::getenv("TERM");
  return ::isatty(STDERR_FILENO) == 1 && term != nullptr && std::string(term) != "dumb";
}

// The push's progress on a terminal: bytes read and hashed, bytes stored
// (compressed) and the rate, redrawn at most ten times a second on stderr.
class PushMeter {
 public:
  explicit PushMeter(bool on) : on_(on), started_(std::chrono::steady_clock::now()) {}
  bool on() const { return on_; }
  store::PushProgress callback() {
    return [this](const store::PushStats& s) {
      std::lock_guard lock(mu_);
      // Calls from the packing threads may arrive out of order: never
      // draw less than was drawn.
      if (s.raw_bytes < shown_) return;
      shown_ = s.raw_bytes;
      const auto now = std::chrono::steady_clock::now();
      if (now - last_ < std::chrono::milliseconds(100) && s.raw_bytes < s.tree_bytes) return;
      last_ = now;
      const double seconds = std::max(1e-3, std::chrono::duration<double>(now - started_).count());
      const auto rate = static_cast<std::uint64_t>(static_cast<double>(s.raw_bytes) / seconds);
      std::cerr << "\r\033[K  packed " << human_bytes(s.raw_bytes) << " of "
                << human_bytes(s.tree_bytes) << ", " << human_bytes(s.stored_bytes) << " stored, "
                << s.layers << " layers, " << human_bytes(rate) << "/s" << std::flush;
      drawn_ = true;
    };
  }
  void done() {
    std::lock_guard lock(mu_);
    if (drawn_) std::cerr << "\r\033[K" << std::flush;
  }

 private:
  bool on_;
  std::chrono::steady_clock::time_point started_, last_{};
  std::mutex mu_;
  bool drawn_ = false;
  std::uint64_t shown_ = 0;
};

fs::path store_path(const cxxopts::ParseResult& parsed) {
  if (parsed.count("store")) return parsed["store"].as<std::string>();
  if (const char* env = std::getenv("DROVER_STORE"); env != nullptr && *env != '\0') return env;
  return store::kDefaultStorePath;
}

std::string utc(std::int64_t unix) {
  return format_time(SystemTime(std::chrono::seconds(unix))).substr(0, 19) + "Z";
}

json record_json(const ArtifactRecord& r) {
  json layers = json::array();
  for (const auto& l : r.layers) layers.push_back(l.str());
  return {{"artifact_id", r.id.str()},  {"service", r.service},
          {"git_sha", r.git_sha},       {"meta", r.meta},
          {"pushed_at", r.pushed_at},   {"pushed_at_utc", utc(r.pushed_at)},
          {"size_bytes", r.size_bytes}, {"tree_bytes", r.tree_bytes},
          {"files", r.files},           {"layer_ids", layers},
          {"pinned", r.pinned},         {"pin_reason", r.pin_reason}};
}

json layers_json(const format::Manifest& m) {
  json layers = json::array();
  for (const auto& l : m.layers) {
    layers.push_back({{"id", l.id.str()},
                      {"size", l.size},
                      {"raw_size", l.raw_size},
                      {"codec", format::codec_name(l.codec)},
                      {"bt_root", to_hex(l.bt_root.data(), l.bt_root.size())}});
  }
  return layers;
}

// Opens the store named by the command line; reports failures itself.
struct Opened {
  std::unique_ptr<Logger> log;
  std::unique_ptr<ArtifactStore> store;
};

Result<Opened> open_store(Context& ctx, const cxxopts::ParseResult& parsed) {
  Opened o;
  o.log = make_logger(ctx, parsed);
  DROVER_ASSIGN(o.store,
                ArtifactStore::open(store_path(parsed), ctx.fs, ctx.clock, ctx.random, *o.log));
  return o;
}

// Checks the ID argument's form before the store is opened (and created).
#define DROVER_CLI_CHECK_ID(verb, parsed)                                   \
  if (parsed.count("id")) {                                                 \
    auto digits = ArtifactStore::id_digits(parsed["id"].as<std::string>()); \
    if (!digits.ok()) return usage(verb, digits.error().message);           \
  }

#define DROVER_CLI_PARSE(verb, options, args, positional)             \
  auto parsed_or = parse(options, args, positional);                  \
  if (!parsed_or.ok()) return usage(verb, parsed_or.error().message); \
  const cxxopts::ParseResult& parsed = *parsed_or;                    \
  if (parsed.count("help")) {                                         \
    std::cout << options.help() << "\n";                              \
    return kExitOk;                                                   \
  }                                                                   \
  if (auto level_ok = check_log_level(parsed); !level_ok.ok()) {      \
    return usage(verb, level_ok.error().message);                     \
  }                                                                   \
  DROVER_CLI_CHECK_ID(verb, parsed)

int push(Context& ctx, std::vector<std::string> args) {
  const std::string verb = "artifact push";
  std::vector<std::string> meta_words = take_repeated(args, "meta");
  cxxopts::Options o("drover artifact push",
                     "Pack DIR into layers in the store and, when a coordinator is configured, "
                     "register the artifact there.");
  o.custom_help(
      "DIR --service NAME --git-sha SHA [--meta k=v ...] [--store PATH] [--json] "
      "[--no-register]");
  o.add_options()("dir", "directory to pack", cxxopts::value<std::string>())(
      "service", "service the artifact belongs to", cxxopts::value<std::string>())(
      "git-sha", "commit the artifact was built from", cxxopts::value<std::string>())(
      "json", "print the result as one JSON object")(
      "no-register", "only store it, even with a coordinator configured");
  add_client_flags(o);
  add_store_flags(o);
  DROVER_CLI_PARSE(verb, o, args, {"dir"});
  if (!parsed.count("dir")) return usage(verb, "missing DIR, the directory to pack");
  if (!parsed.count("service")) return usage(verb, "missing --service NAME");
  if (!parsed.count("git-sha")) return usage(verb, "missing --git-sha SHA");

  store::PackInput input;
  input.service = parsed["service"].as<std::string>();
  input.git_sha = parsed["git-sha"].as<std::string>();
  for (char& c : input.git_sha) c = (c >= 'A' && c <= 'F') ? static_cast<char>(c - 'A' + 'a') : c;
  for (const auto& word : meta_words) {
    auto eq = word.find('=');
    if (eq == std::string::npos || eq == 0) {
      return usage(verb, "--meta wants key=value, got '" + word + "'");
    }
    if (!input.meta.emplace(word.substr(0, eq), word.substr(eq + 1)).second) {
      return usage(verb, "--meta key '" + word.substr(0, eq) + "' given twice");
    }
  }
  for (const Status& st :
       {format::validate_service(input.service), format::validate_git_sha(input.git_sha),
        format::validate_meta(input.meta)}) {
    if (!st.ok()) return usage(verb, st.error().message);
  }
  // Where it is registered, settled before anything is packed: a command
  // line that cannot register stores nothing.
  std::optional<Api> api;
  Result<json> pipelines = json();
  if (!parsed.count("no-register")) {
    auto settings = resolve_client(ctx.fs, client_flags_of(parsed));
    if (!settings.ok()) return report_settings(verb, settings.error());
    if (!settings->coordinator.empty()) {
      if (settings->token.empty()) {
        std::cerr << "drover " << verb << ": a coordinator is configured (" << settings->coordinator
                  << ", from " << settings->coordinator_from
                  << ") but no API token to register there: give --token, set DROVER_TOKEN, "
                     "give the context a token_file, or push with --no-register\n";
        return kExitUnauthorized;
      }
      auto a = api_from(*settings);
      if (!a.ok()) return report_settings(verb, a.error());
      api = *a;
      // The token and the coordinator tried before packing: a token
      // refused, or a coordinator that does not answer, stores nothing.
      pipelines = api->call("GET", "/pipelines");
      if (!pipelines.ok()) {
        return report_api(
            verb, pipelines.error().context("nothing stored; the coordinator at " + api->url));
      }
    }
  }
  auto opened = open_store(ctx, parsed);
  if (!opened.ok()) return report(verb, opened.error());
  PushMeter meter(!parsed.count("json") && shows_progress());
  auto result = opened->store->push(parsed["dir"].as<std::string>(), input,
                                    meter.on() ? meter.callback() : store::PushProgress{});
  meter.done();
  if (!result.ok()) return report(verb, result.error());
  // Registered at the coordinator (it asks the origin, which serves this
  // store), so a deploy right after never meets "not registered".
  std::optional<Error> unregistered;
  std::vector<std::string> next;
  if (api) {
    auto registered =
        api->call("POST", "/artifacts", json{{"artifact_id", result->record.id.str()}});
    if (!registered.ok()) {
      unregistered = registered.error();
    } else {
      next = next_commands(*pipelines, result->record);
    }
  }

  const ArtifactRecord& r = result->record;
  if (parsed.count("json")) {
    json layers = json::array();
    for (const auto& l : result->manifest.layers) {
      layers.push_back({{"id", l.id.str()},
                        {"size", l.size},
                        {"raw_size", l.raw_size},
                        {"codec", format::codec_name(l.codec)}});
    }
    json out = {
        {"format", "drover.push-result.v2"},
        {"artifact_id", r.id.str()},
        {"service", r.service},
        {"git_sha", r.git_sha},
        {"size_bytes", r.size_bytes},
        {"tree_bytes", r.tree_bytes},
        {"files", r.files},
        {"layers", layers},
        {"new_bytes", result->new_bytes},
        {"already_present", result->already_present},
        {"registered", api && !unregistered ? json{{"coordinator", api->url}} : json(nullptr)}};
    if (!next.empty()) out["next"] = next;  // an array: one command per pipeline
    print_json(out);
  } else {
    std::cout << (result->already_present ? "already present " : "pushed ") << r.id.str() << "\n"
              << "  service " << r.service << " @ " << r.git_sha << "\n"
              << "  " << r.files << " files, " << human_bytes(r.tree_bytes) << " in tree, "
              << human_bytes(r.size_bytes) << " stored in " << r.layers.size() << " layers\n"
              << "  " << human_bytes(result->new_bytes) << " new in the store\n";
    if (api && !unregistered) std::cout << "registered at " << api->url << "\n";
    for (const auto& command : next) std::cout << "next: " << command << "\n";
  }
  if (unregistered) {
    const int code =
        report_api(verb, unregistered->context("stored, but not registered at " + api->url));
    std::cerr << "  register it later: drover artifact register " << r.id.str() << "\n";
    return code;
  }
  return kExitOk;
}

// drover artifact register ID: registers a pushed artifact at the
// coordinator (which fetches its manifest from the origin).
int register_artifact(Context& ctx, std::vector<std::string> args) {
  const std::string verb = "artifact register";
  cxxopts::Options o("drover artifact register",
                     "Register an artifact of the store at the coordinator.");
  o.custom_help("ID [--coordinator URL] [--token TOKEN] [--context NAME] [--json]");
  o.add_options()("id", "the artifact (full id or unique prefix)", cxxopts::value<std::string>())(
      "json", "print the coordinator's record");
  add_client_flags(o);
  add_store_flags(o);
  DROVER_CLI_PARSE(verb, o, args, {"id"});
  if (!parsed.count("id")) return usage(verb, "missing ID");
  auto a = api_of(ctx.fs, parsed);
  if (!a.ok()) return report_settings(verb, a.error());
  auto opened = open_store(ctx, parsed);
  if (!opened.ok()) return report(verb, opened.error());
  auto record = opened->store->resolve(parsed["id"].as<std::string>());
  if (!record.ok()) return report_resolve(verb, record.error());
  auto registered = a->call("POST", "/artifacts", json{{"artifact_id", record->id.str()}});
  if (!registered.ok()) return report_api(verb, registered.error());
  if (parsed.count("json")) {
    print_json(*registered);
  } else {
    std::cout << "registered " << record->id.str() << " at " << a->url << "\n";
    auto listed = a->call("GET", "/pipelines");
    for (const auto& command : next_commands(listed.ok() ? *listed : json(), *record)) {
      std::cout << "next: " << command << "\n";
    }
  }
  return kExitOk;
}

int ls(Context& ctx, std::vector<std::string> args) {
  const std::string verb = "artifact ls";
  cxxopts::Options o("drover artifact ls", "List artifacts, newest first.");
  o.add_options()("service", "only this service", cxxopts::value<std::string>())(
      "json", "print a JSON array");
  add_store_flags(o);
  DROVER_CLI_PARSE(verb, o, args, {});
  std::string service = parsed.count("service") ? parsed["service"].as<std::string>() : "";
  if (!service.empty()) {
    if (auto st = format::validate_service(service); !st.ok())
      return usage(verb, st.error().message);
  }
  auto opened = open_store(ctx, parsed);
  if (!opened.ok()) return report(verb, opened.error());
  auto records = opened->store->list(service);
  if (!records.ok()) return report(verb, records.error());
  if (parsed.count("json")) {
    json out = json::array();
    for (const auto& r : *records) out.push_back(record_json(r));
    print_json(out);
    return kExitOk;
  }
  std::printf("%-14s %-20s %-12s %-20s %10s %7s %s\n", "ARTIFACT", "SERVICE", "GIT SHA",
              "PUSHED (UTC)", "STORED", "LAYERS", "PINNED");
  for (const auto& r : *records) {
    std::printf("%-14s %-20s %-12s %-20s %10s %7zu %s\n", r.id.short_str().c_str(),
                r.service.c_str(), r.git_sha.substr(0, 12).c_str(), utc(r.pushed_at).c_str(),
                human_bytes(r.size_bytes).c_str(), r.layers.size(), r.pinned ? "yes" : "");
  }
  return kExitOk;
}

int show(Context& ctx, std::vector<std::string> args) {
  const std::string verb = "artifact show";
  cxxopts::Options o("drover artifact show", "Show one artifact and its layers.");
  o.custom_help("ID [--json] [--files]");
  o.add_options()("id", "artifact id or unique prefix", cxxopts::value<std::string>())(
      "json", "print one JSON object")("files", "also list every entry of the tree");
  add_store_flags(o);
  DROVER_CLI_PARSE(verb, o, args, {"id"});
  if (!parsed.count("id")) return usage(verb, "missing ID");
  auto opened = open_store(ctx, parsed);
  if (!opened.ok()) return report(verb, opened.error());
  auto r = opened->store->resolve(parsed["id"].as<std::string>());
  if (!r.ok()) return report_resolve(verb, r.error());
  auto m = opened->store->load_manifest(r->id);
  if (!m.ok()) return report(verb, m.error());
  const bool files = parsed.count("files") > 0;
  if (parsed.count("json")) {
    json out = record_json(*r);
    out["layers"] = layers_json(*m);
    out["dirs"] = m->count(format::EntryType::dir);
    out["symlinks"] = m->count(format::EntryType::symlink);
    out["manifest_path"] = opened->store->blob_path(r->id).string();
    if (files) {
      json entries = json::array();
      for (const auto& e : m->entries) {
        json j = {{"path", format::printable(e.path)}, {"type", format::entry_type_name(e.type)}};
        if (e.type != format::EntryType::symlink) j["mode"] = e.mode;
        if (e.type == format::EntryType::file) j["size"] = e.size;
        if (e.type == format::EntryType::symlink) j["target"] = format::printable(e.target);
        entries.push_back(j);
      }
      out["entries"] = entries;
    }
    print_json(out);
    return kExitOk;
  }
  std::cout << "artifact   " << r->id.str() << "\n"
            << "service    " << r->service << "\n"
            << "git sha    " << r->git_sha << "\n"
            << "pushed     " << utc(r->pushed_at) << "\n"
            << "tree       " << r->files << " files, " << m->count(format::EntryType::dir)
            << " dirs, " << m->count(format::EntryType::symlink) << " symlinks, "
            << human_bytes(r->tree_bytes) << "\n"
            << "stored     " << human_bytes(r->size_bytes) << " in " << m->layers.size()
            << " layers\n"
            << "manifest   " << opened->store->blob_path(r->id).string() << "\n";
  if (r->pinned) std::cout << "pinned     " << r->pin_reason << "\n";
  for (const auto& [k, v] : r->meta) std::cout << "meta       " << k << "=" << v << "\n";
  std::cout << "layers:\n";
  for (const auto& l : m->layers) {
    std::printf("  %s %10s %s (raw %s)\n", l.id.str().c_str(), human_bytes(l.size).c_str(),
                format::codec_name(l.codec), human_bytes(l.raw_size).c_str());
  }
  if (files) {
    std::cout << "entries:\n";
    for (const auto& e : m->entries) {
      char mode[16] = "";
      if (e.type != format::EntryType::symlink) std::snprintf(mode, sizeof mode, "%04o", e.mode);
      std::printf("  %-7s %4s %12s %s%s\n", format::entry_type_name(e.type), mode,
                  e.type == format::EntryType::file ? std::to_string(e.size).c_str() : "",
                  format::printable(e.path).c_str(),
                  e.type == format::EntryType::symlink
                      ? (" -> " + format::printable(e.target)).c_str()
                      : "");
    }
  }
  return kExitOk;
}

int verify(Context& ctx, std::vector<std::string> args) {
  const std::string verb = "artifact verify";
  cxxopts::Options o("drover artifact verify",
                     "Re-hash every blob of an artifact (or of all, with --all).");
  o.custom_help("ID | --all [--json]");
  o.add_options()("id", "artifact id or unique prefix", cxxopts::value<std::string>())(
      "all", "verify every artifact in the store")("json", "print one JSON object");
  add_store_flags(o);
  DROVER_CLI_PARSE(verb, o, args, {"id"});
  const bool all = parsed.count("all") > 0;
  if (all == (parsed.count("id") > 0)) return usage(verb, "give either ID or --all");
  auto opened = open_store(ctx, parsed);
  if (!opened.ok()) return report(verb, opened.error());
  Result<store::VerifyReport> rep = make_error(Errc::internal, "unreached");
  if (all) {
    rep = opened->store->verify_all();
  } else {
    auto r = opened->store->resolve(parsed["id"].as<std::string>());
    if (!r.ok()) return report_resolve(verb, r.error());
    rep = opened->store->verify(r->id);
  }
  if (!rep.ok()) return report(verb, rep.error());
  if (parsed.count("json")) {
    json out = {{"ok", rep->problems.empty()}, {"problems", rep->problems},
                {"artifacts", rep->artifacts}, {"blobs", rep->blobs},
                {"bytes", rep->bytes},         {"orphan_blobs", rep->orphan_blobs}};
    print_json(out);
  } else {
    for (const auto& p : rep->problems) std::cout << "MISMATCH " << p << "\n";
    std::cout << (rep->problems.empty() ? "ok: " : "FAILED: ") << rep->artifacts << " artifact(s), "
              << rep->blobs << " blobs, " << human_bytes(rep->bytes) << " re-hashed";
    if (all) std::cout << ", " << rep->orphan_blobs << " unreferenced blob(s) (gc removes them)";
    std::cout << "\n";
  }
  return rep->problems.empty() ? kExitOk : kExitFailed;
}

int materialize(Context& ctx, std::vector<std::string> args) {
  const std::string verb = "artifact materialize";
  cxxopts::Options o("drover artifact materialize",
                     "Write an artifact's tree into DEST, a new directory.");
  o.custom_help("ID DEST");
  o.add_options()("id", "artifact id or unique prefix", cxxopts::value<std::string>())(
      "dest", "directory to create", cxxopts::value<std::string>());
  add_store_flags(o);
  DROVER_CLI_PARSE(verb, o, args, (std::vector<std::string>{"id", "dest"}));
  if (!parsed.count("id") || !parsed.count("dest")) return usage(verb, "want ID DEST");
  auto opened = open_store(ctx, parsed);
  if (!opened.ok()) return report(verb, opened.error());
  auto r = opened->store->resolve(parsed["id"].as<std::string>());
  if (!r.ok()) return report_resolve(verb, r.error());
  const std::string dest = parsed["dest"].as<std::string>();
  auto stats = opened->store->materialize(r->id, dest);
  if (!stats.ok()) return report(verb, stats.error());
  std::cout << "materialized " << r->id.str() << " into " << dest << "\n"
            << "  " << stats->files << " files, " << stats->dirs << " dirs, " << stats->symlinks
            << " symlinks, " << human_bytes(stats->bytes) << " from " << stats->layers
            << " layers\n";
  return kExitOk;
}

int gc(Context& ctx, std::vector<std::string> args) {
  const std::string verb = "artifact gc";
  cxxopts::Options o("drover artifact gc",
                     "Keep the newest N artifacts of each service (and pinned ones); delete "
                     "the rest and every blob nothing kept uses.");
  o.custom_help("--keep N [--json]");
  o.add_options()("keep", "artifacts to keep per service", cxxopts::value<std::string>())(
      "json", "print one JSON object");
  add_store_flags(o);
  DROVER_CLI_PARSE(verb, o, args, {});
  if (!parsed.count("keep")) return usage(verb, "missing --keep N");
  const std::string keep_text = parsed["keep"].as<std::string>();
  std::size_t keep = 0;
  bool ok = !keep_text.empty() && keep_text.size() < 10;
  for (char c : keep_text) ok = ok && c >= '0' && c <= '9';
  if (ok) keep = std::stoul(keep_text);
  if (!ok || keep == 0) {
    return usage(verb, "--keep wants a whole number of at least 1, got '" + keep_text + "'");
  }
  auto opened = open_store(ctx, parsed);
  if (!opened.ok()) return report(verb, opened.error());
  auto rep = opened->store->gc(keep);
  if (!rep.ok()) return report(verb, rep.error());
  if (parsed.count("json")) {
    json removed = json::array();
    for (const auto& r : rep->removed) removed.push_back(r.id.str());
    json out = {{"removed", removed},
                {"kept", rep->kept},
                {"blobs_removed", rep->blobs_removed},
                {"bytes_freed", rep->bytes_freed}};
    print_json(out);
    return kExitOk;
  }
  for (const auto& r : rep->removed) {
    std::cout << "removed " << r.id.str() << " (" << r.service << " @ " << r.git_sha << ")\n";
  }
  std::cout << "kept " << rep->kept << " artifact(s); removed " << rep->removed.size()
            << " artifact(s) and " << rep->blobs_removed << " blob(s), freed "
            << human_bytes(rep->bytes_freed) << "\n";
  return kExitOk;
}

int pin(Context& ctx, std::vector<std::string> args, bool on) {
  const std::string verb = on ? "artifact pin" : "artifact unpin";
  cxxopts::Options o("drover " + verb, on ? "Mark an artifact in use: gc never removes it."
                                          : "Clear an artifact's in-use mark.");
  o.custom_help(on ? "ID [--reason TEXT]" : "ID");
  o.add_options()("id", "artifact id or unique prefix", cxxopts::value<std::string>());
  if (on) o.add_options()("reason", "why it is in use", cxxopts::value<std::string>());
  add_store_flags(o);
  DROVER_CLI_PARSE(verb, o, args, {"id"});
  if (!parsed.count("id")) return usage(verb, "missing ID");
  auto opened = open_store(ctx, parsed);
  if (!opened.ok()) return report(verb, opened.error());
  auto r = opened->store->resolve(parsed["id"].as<std::string>());
  if (!r.ok()) return report_resolve(verb, r.error());
  if (on) {
    std::string reason = parsed.count("reason") ? parsed["reason"].as<std::string>() : "pinned";
    if (!canon::valid_utf8(reason) || reason.size() > 1024) {
      return usage(verb, "--reason must be UTF-8 text of at most 1024 bytes");
    }
    if (auto st = opened->store->pin(r->id, reason); !st.ok()) return report(verb, st.error());
    std::cout << "pinned " << r->id.str() << "\n";
  } else {
    auto removed = opened->store->unpin(r->id);
    if (!removed.ok()) return report(verb, removed.error());
    std::cout << (*removed ? "unpinned " : "was not pinned: ") << r->id.str() << "\n";
  }
  return kExitOk;
}

}  // namespace

int artifact_command(Context& ctx, std::vector<std::string> args) {
  const std::string help =
      "usage: drover artifact <verb> ...\n"
      "  push DIR --service NAME --git-sha SHA [--meta k=v ...] [--json] [--no-register]\n"
      "  register ID                      register a pushed artifact at the coordinator\n"
      "  ls [--service NAME] [--json]\n"
      "  show ID [--json] [--files]\n"
      "  verify ID | --all [--json]\n"
      "  materialize ID DEST\n"
      "  gc --keep N [--json]\n"
      "  pin ID [--reason TEXT] | unpin ID\n"
      "every verb takes --store PATH (else $DROVER_STORE, else /var/lib/drover/store)\n";
  if (args.empty()) {
    std::cerr << help;
    return kExitUsage;
  }
  std::string verb = args.front();
  args.erase(args.begin());
  if (verb == "push") return push(ctx, std::move(args));
  if (verb == "register") return register_artifact(ctx, std::move(args));
  if (verb == "ls") return ls(ctx, std::move(args));
  if (verb == "show") return show(ctx, std::move(args));
  if (verb == "verify") return verify(ctx, std::move(args));
  if (verb == "materialize") return materialize(ctx, std::move(args));
  if (verb == "gc") return gc(ctx, std::move(args));
  if (verb == "pin") return pin(ctx, std::move(args), true);
  if (verb == "unpin") return pin(ctx, std::move(args), false);
  if (verb == "-h" || verb == "--help" || verb == "help") {
    std::cout << help;
    return kExitOk;
  }
  std::cerr << "drover artifact: unknown verb '" << verb << "'\n" << help;
  return kExitUsage;
}

}  // namespace drover::cli
