#include "coordinator/config/config.hpp"

#include <nlohmann/json.hpp>

#include "core/canon/canonical_json.hpp"
#include "core/canon/json_fields.hpp"
#include "core/mesh_token/mesh_token.hpp"
#include "core/sign/envelope.hpp"
#include "core/sign/keys.hpp"
#include "core/sign/root.hpp"

namespace drover::coordinator {

using canon::Fields;
using nlohmann::json;

Result<CoordinatorConfig> load_coordinator_config(Filesystem& fsys, const fs::path& path) {
  auto in_file = [&](const Error& e) { return e.context("config " + path.string()); };
  auto text = fsys.read_file(path, 1 << 20);
  if (!text.ok()) return in_file(text.error());
  json j = json::parse(*text, nullptr, false);
  if (j.is_discarded()) return in_file(make_error(Errc::invalid_argument, "not valid JSON"));
  auto parse = [&]() -> Result<CoordinatorConfig> {
    DROVER_ASSIGN(Fields f, Fields::of(j, ""));
    DROVER_TRY(f.only({"format", "data_dir", "online_key", "online_cert", "api", "agents",
                       "tracker", "origin_feed", "webhook_secret_file", "tick_ms", "root_chain",
                       "plan_validity_s", "sample_retention_s", "scm_wait_s", "notify_give_up_s",
                       "notify_ca_file", "metrics", "prometheus"}));
    DROVER_ASSIGN(std::string format, f.str("format", 64));
    if (format != "drover.coordinator-config.v1") {
      return make_error(Errc::unsupported,
                        "format '" + format + "' is not drover.coordinator-config.v1");
    }
    CoordinatorConfig c;
    CoordinatorOptions& o = c.coordinator;
    DROVER_ASSIGN(std::string data_dir, f.str("data_dir", 4096));
    o.data_dir = data_dir;
    DROVER_ASSIGN(std::string key_path, f.str("online_key", 4096));
    DROVER_ASSIGN(std::string cert_path, f.str("online_cert", 4096));
    auto key = sign::load_key_pair(fsys, key_path);
    if (!key.ok()) return make_error(key.error().code, "online_key: " + key.error().message);
    auto cert_text = fsys.read_file(cert_path, 64 << 10);
    if (!cert_text.ok()) {
      return make_error(cert_text.error().code, "online_cert: " + cert_text.error().message);
    }
    std::string cert_bytes = *cert_text;  // `drover key certify` ends the file with a newline
    while (!cert_bytes.empty() && (cert_bytes.back() == '\n' || cert_bytes.back() == '\r')) {
      cert_bytes.pop_back();
    }
    auto cert = sign::decode_envelope(cert_bytes);
    if (!cert.ok()) return make_error(cert.error().code, "online_cert: " + cert.error().message);
    o.online = OnlineKey{*key, *cert};
    // Root documents, oldest first: each must hand over to the next, and the
    // online key's certificate must be signed by the newest root.
    if (f.has("root_chain")) {
      DROVER_ASSIGN(auto files, f.str_list("root_chain", 64, 4096));
      std::optional<sign::Root> previous;
      for (std::size_t i = 0; i < files.size(); ++i) {
        const std::string where = "root_chain[" + std::to_string(i) + "] " + files[i];
        auto doc_text = fsys.read_file(files[i], 64 << 10);
        if (!doc_text.ok()) return doc_text.error().context(where);
        std::string doc = *doc_text;
        while (!doc.empty() && (doc.back() == '\n' || doc.back() == '\r')) doc.pop_back();
        auto envelope = sign::decode_envelope(doc);
        if (!envelope.ok()) return envelope.error().context(where);
        auto version = sign::claimed_root_version(*envelope);
        if (!version.ok()) return version.error().context(where);
        if (!previous && *version != 2) {
          return make_error(Errc::invalid_argument,
                            where + ": the chain starts at version " + std::to_string(*version) +
                                "; it must start at 2 (agents are installed with root 1)");
        }
        if (previous) {
          // Checked as an agent will: signed by the previous root and its own.
          auto next = sign::next_root(*envelope, *previous, 0);
          if (!next.ok()) return next.error().context(where);
          previous = *next;
        } else {
          // The first document's own key, read from its payload once its
          // signature by that key holds.
          auto parsed = canon::decode(envelope->payload, 4096);
          if (!parsed.ok() || !parsed->contains("key") || !(*parsed)["key"].is_string()) {
            return make_error(Errc::invalid_argument, where + ": no key in the root document");
          }
          auto k = sign::PublicKey::from_hex((*parsed)["key"].get<std::string>());
          if (!k.ok()) return k.error().context(where);
          if (!sign::open(*envelope, sign::RootDoc::kType, *k).ok()) {
            return make_error(Errc::crypto, where + ": not signed by the root key it names");
          }
          previous = sign::Root{*k, *version};
        }
        o.agents.root_chain.push_back(doc);
      }
      if (previous && !sign::verify_cert(*cert, {previous->key, 1}, 0).ok()) {
        return make_error(Errc::invalid_argument,
                          "online_cert is not signed by the newest root in root_chain (version " +
                              std::to_string(previous->version) +
                              "): certify the online key with that root");
      }
    }

    DROVER_ASSIGN(auto api, f.opt_object("api"));
    if (api) {
      DROVER_TRY(api->only({"listen", "tls_cert", "tls_key", "max_body_bytes"}));
      DROVER_ASSIGN(auto listen, api->opt_str("listen"));
      DROVER_ASSIGN(auto cert_file, api->opt_str("tls_cert", 4096));
      DROVER_ASSIGN(auto key_file, api->opt_str("tls_key", 4096));
      DROVER_ASSIGN(auto max_body, api->opt_int("max_body_bytes", 1024, 64 << 20));
      if (listen) c.api.listen = *listen;
      if (cert_file) c.api.tls_cert_file = *cert_file;
      if (key_file) {
        // The private key is OpenSSL's to read; its mode is ours to refuse.
        DROVER_TRY(sign::check_secret_file(*key_file, "api.tls_key"));
        c.api.tls_key_file = *key_file;
      }
      if (max_body) c.api.max_body_bytes = static_cast<std::size_t>(*max_body);
    }
    DROVER_ASSIGN(auto metrics, f.opt_object("metrics"));
    if (metrics) {
      DROVER_TRY(metrics->only({"listen", "api"}));
      DROVER_ASSIGN(auto listen, metrics->opt_str("listen"));
      DROVER_ASSIGN(auto on_api, metrics->opt_bool("api"));
      if (listen) {
        if (auto where = http::parse_listen(*listen); !where.ok()) {
          return where.error().context("metrics.listen");
        }
        c.metrics_listen = *listen;
      }
      if (on_api) c.api.metrics = *on_api;
    }
    DROVER_ASSIGN(auto prometheus, f.opt_object("prometheus"));
    if (prometheus) {
      DROVER_TRY(prometheus->only({"allow", "timeout_s", "ca_file"}));
      DROVER_ASSIGN(o.prometheus.allow, prometheus->str_list("allow", 16, 1024));
      for (std::size_t i = 0; i < o.prometheus.allow.size(); ++i) {
        if (auto url = http::parse_url(o.prometheus.allow[i]); !url.ok()) {
          return url.error().context("prometheus.allow[" + std::to_string(i) + "]");
        }
      }
      DROVER_ASSIGN(auto timeout, prometheus->opt_int("timeout_s", 1, 60));
      if (timeout) o.prometheus.timeout = std::chrono::seconds(*timeout);
      DROVER_ASSIGN(auto ca, prometheus->opt_str("ca_file", 4096));
      if (ca) o.prometheus.ca_file = *ca;
    }
    DROVER_ASSIGN(auto agents, f.opt_object("agents"));
    if (agents) {
      DROVER_TRY(agents->only(
          {"requests", "legacy_requests", "announcements", "workers", "tls", "allow_plaintext"}));
      // One URL or a list of them.
      auto urls = [&](const std::string& name) -> Result<std::optional<std::vector<std::string>>> {
        const json* v = agents->raw(name);
        if (!v) return std::optional<std::vector<std::string>>();
        if (v->is_string()) {
          DROVER_ASSIGN(std::string one, agents->str(name, 1024));
          return std::optional<std::vector<std::string>>({one});
        }
        DROVER_ASSIGN(auto list, agents->str_list(name, 16, 1024));
        return std::optional<std::vector<std::string>>(std::move(list));
      };
      DROVER_ASSIGN(auto req, urls("requests"));
      DROVER_ASSIGN(auto legacy, urls("legacy_requests"));
      DROVER_ASSIGN(auto ann, urls("announcements"));
      DROVER_ASSIGN(auto workers, agents->opt_int("workers", 1, 4096));
      DROVER_ASSIGN(auto plaintext, agents->opt_bool("allow_plaintext"));
      if (req) o.agents.requests = *req;
      if (legacy) o.agents.legacy_requests = *legacy;
      if (ann) o.agents.announcements = *ann;
      if (workers) o.agents.workers = static_cast<int>(*workers);
      if (plaintext) o.agents.allow_plaintext = *plaintext;
      DROVER_ASSIGN(auto tls, agents->opt_object("tls"));
      if (tls) {
        DROVER_TRY(tls->only({"cert_file", "key_file"}));
        DROVER_ASSIGN(std::string cert_file, tls->str("cert_file", 4096));
        DROVER_ASSIGN(std::string key_file, tls->str("key_file", 4096));
        auto cert_pem = fsys.read_file(cert_file, 1 << 20);
        if (!cert_pem.ok()) return cert_pem.error().context("agents.tls.cert_file");
        auto key_pem = sign::read_secret_file(fsys, key_file, 1 << 20, "agents.tls.key_file");
        if (!key_pem.ok() && key_pem.error().code == Errc::refused) return key_pem.error();
        if (!key_pem.ok()) return key_pem.error().context("agents.tls.key_file");
        o.agents.tls = nng::TlsServer{*cert_pem, *key_pem};
      }
    }
    DROVER_ASSIGN(auto tracker, f.opt_object("tracker"));
    if (tracker) {
      DROVER_TRY(tracker->only({"listen", "url", "interval_s", "sources", "token_key_file"}));
      DROVER_ASSIGN(auto token_key_file, tracker->opt_str("token_key_file", 4096));
      if (token_key_file) {
        auto mesh_key = mesh_token::load_key(fsys, *token_key_file);
        if (!mesh_key.ok()) return mesh_key.error().context("tracker.token_key_file");
        o.mesh_token_key = std::move(*mesh_key);
      }
      if (tracker->has("sources")) {
        DROVER_ASSIGN(auto grants, tracker->str_list("sources", 10'000, 300));
        std::vector<mesh::SourceGrant> sources;
        for (std::size_t i = 0; i < grants.size(); ++i) {
          auto g = mesh::parse_source_grant(grants[i]);
          if (!g.ok()) {
            return make_error(Errc::invalid_argument,
                              "tracker.sources[" + std::to_string(i) + "]: " + g.error().message);
          }
          sources.push_back(std::move(*g));
        }
        o.tracker_sources = std::move(sources);
      }
      DROVER_ASSIGN(auto interval, tracker->opt_int("interval_s", 1, 3600));
      if (interval) o.tracker_interval = std::chrono::seconds(*interval);
      DROVER_ASSIGN(auto listen, tracker->opt_str("listen"));
      DROVER_ASSIGN(auto url, tracker->opt_str("url", 1024));
      if (listen && url) {
        return make_error(Errc::invalid_argument,
                          "tracker.listen and tracker.url exclude each other");
      }
      if (listen) o.tracker_listen = *listen;
      if (url) o.tracker_url = *url;
    }
    DROVER_ASSIGN(auto feed, f.opt_str("origin_feed", 1024));
    if (feed) o.origin_feed = *feed;
    DROVER_ASSIGN(auto secret_file, f.opt_str("webhook_secret_file", 4096));
    if (secret_file) {
      auto secret = sign::read_secret_file(fsys, *secret_file, 4096, "webhook_secret_file");
      if (!secret.ok()) {
        if (secret.error().code == Errc::refused) return secret.error();
        return make_error(secret.error().code, "webhook_secret_file: " + secret.error().message);
      }
      std::string s = *secret;
      while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
      if (s.size() < 16) {
        return make_error(Errc::invalid_argument,
                          "webhook_secret_file: the secret must be at least 16 bytes");
      }
      o.webhook_secret = s;
    }
    DROVER_ASSIGN(auto tick, f.opt_int("tick_ms", 10, 60'000));
    if (tick) o.tick = std::chrono::milliseconds(*tick);
    DROVER_ASSIGN(auto validity, f.opt_int("plan_validity_s", 60, 365 * 86400));
    if (validity) o.plan_validity_s = *validity;
    DROVER_ASSIGN(auto retention, f.opt_int("sample_retention_s", 60, 365 * 86400));
    if (retention) o.sample_retention_s = *retention;
    DROVER_ASSIGN(auto scm_wait, f.opt_int("scm_wait_s", 0, 30 * 86400));
    if (scm_wait) o.scm_wait_s = *scm_wait;
    DROVER_ASSIGN(auto give_up, f.opt_int("notify_give_up_s", 60, 7 * 86400));
    if (give_up) o.notify_give_up_s = *give_up;
    DROVER_ASSIGN(auto ca_file, f.opt_str("notify_ca_file", 4096));
    if (ca_file) o.notify_ca_file = *ca_file;
    return c;
  };
  auto c = parse();
  if (!c.ok()) return in_file(c.error());
  return c;
}

}  // namespace drover::coordinator
