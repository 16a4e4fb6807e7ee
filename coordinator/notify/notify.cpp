#include "coordinator/notify/notify.hpp"

#include <algorithm>
#include <cctype>
#include <ctime>

#include <nlohmann/json.hpp>

#include "core/base/hex.hpp"
#include "core/base/name.hpp"
#include "core/canon/canonical_json.hpp"
#include "core/hash/sha256.hpp"
#include "core/sign/secret_box.hpp"

namespace drover::coordinator::notify {
namespace {

using json = nlohmann::json;

struct Parts {
  bool tls = false;
  std::string host;  // lowercased
  std::uint16_t port = 0;
  std::string path;  // from the first '/' before any '?', "" when none
};

// http[s]://HOST[:PORT][/PATH][?QUERY]: strict, so a URL reads the same to
// the allow-list as it does to the client that sends to it.
Result<Parts> split_url(std::string_view text, bool allow_query) {
  Parts p;
  if (text.size() > kMaxUrlBytes) {
    return make_error(Errc::invalid_argument,
                      "url is longer than " + std::to_string(kMaxUrlBytes) + " bytes");
  }
  for (unsigned char c : text) {
    if (c <= 0x20 || c >= 0x7f) {
      return make_error(Errc::invalid_argument, "url holds a space or a non-ASCII byte");
    }
  }
  if (text.starts_with("https://")) {
    p.tls = true;
    text.remove_prefix(8);
  } else if (text.starts_with("http://")) {
    text.remove_prefix(7);
  } else {
    return make_error(Errc::invalid_argument, "url must begin with http:// or https://");
  }
  if (text.find('#') != std::string_view::npos) {
    return make_error(Errc::invalid_argument, "url must not have a fragment ('#')");
  }
  const std::size_t end = std::min(text.find('/'), text.find('?'));
  std::string_view authority = text.substr(0, end);
  std::string_view rest = end == std::string_view::npos ? "" : text.substr(end);
  if (authority.find('@') != std::string_view::npos) {
    return make_error(Errc::invalid_argument, "url must not have a user part ('@')");
  }
  std::string_view host = authority;
  std::string_view port;
  if (authority.starts_with('[')) {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return make_error(Errc::invalid_argument, "url's IPv6 host lacks its ']'");
    }
    host = authority.substr(0, close + 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return make_error(Errc::invalid_argument, "url's host is malformed");
      port = after.substr(1);
    }
  } else if (const std::size_t colon = authority.find(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) return make_error(Errc::invalid_argument, "url has no host");
  for (char c : host) {
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' ||
                    c == '[' || c == ']' || c == ':' || c == '_';
    if (!ok) {
      return make_error(Errc::invalid_argument,
                        std::string("url's host holds '") + c + "', which no host name holds");
    }
  }
  p.host.reserve(host.size());
  for (char c : host)
    p.host.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  p.port = p.tls ? 443 : 80;
  if (!port.empty() || authority.ends_with(':')) {
    if (port.empty() || port.size() > 5 ||
        !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return make_error(Errc::invalid_argument, "url's port is not a number");
    }
    const unsigned long n = std::stoul(std::string(port));
    if (n == 0 || n > 65535)
      return make_error(Errc::invalid_argument, "url's port is out of range");
    p.port = static_cast<std::uint16_t>(n);
  }
  const std::size_t q = rest.find('?');
  if (q != std::string_view::npos && !allow_query) {
    return make_error(Errc::invalid_argument, "an allow-list entry has no query ('?')");
  }
  p.path = std::string(rest.substr(0, q));
  // "/hooks/../admin" would pass a prefix check and reach another path.
  // ';' too: some servers read "/hooks/..;/admin" as "/admin".
  if (p.path.find_first_of("%\\;") != std::string::npos) {
    return make_error(Errc::invalid_argument, "url's path holds a '%' escape, a '\\' or a ';'");
  }
  for (std::size_t at = 0; at < p.path.size();) {
    const std::size_t next = std::min(p.path.find('/', at + 1), p.path.size());
    const std::string_view segment = std::string_view(p.path).substr(at + 1, next - at - 1);
    if (segment == "." || segment == "..") {
      return make_error(Errc::invalid_argument, "url's path holds a '.' or '..' step");
    }
    at = next;
  }
  return p;
}

std::string utc_text(std::int64_t ms) {
  const std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string list_text(const std::vector<std::string>& v) {
  std::string out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i > 0) out += ", ";
    out += v[i];
  }
  return out;
}

}  // namespace

const std::vector<std::string>& kinds() {
  static const std::vector<std::string> k = {
      "gate.waiting",     "gate.approved",  "gate.rejected", "gate.expired",     "wave.started",
      "rollback.started", "rollback.done",  "deploy.failed", "deploy.succeeded", "scm.waiting",
      "scm.started",      "scm.superseded", "scm.expired",   "scm.ambiguous"};
  return k;
}

bool notifiable(std::string_view what) {
  const auto& k = kinds();
  return std::find(k.begin(), k.end(), what) != k.end();
}

Result<AllowEntry> parse_allow_entry(std::string_view text) {
  auto p = split_url(text, false);
  if (!p.ok()) return p.error().context("allow-list entry '" + std::string(text) + "'");
  return AllowEntry{p->tls, p->host, p->port, p->path, std::string(text)};
}

Status check_url(std::string_view url) {
  auto p = split_url(url, true);
  if (!p.ok()) return p.error();
  return {};
}

bool allowed(std::string_view url, const std::vector<AllowEntry>& allow) {
  auto p = split_url(url, true);
  if (!p.ok()) return false;
  for (const auto& e : allow) {
    if (e.tls != p->tls || e.host != p->host || e.port != p->port) continue;
    if (e.path.empty() || p->path == e.path) return true;
    if (e.path.ends_with('/') && p->path.starts_with(e.path)) return true;
  }
  return false;
}

std::string origin_of(std::string_view url) {
  auto p = split_url(url, true);
  if (!p.ok()) return "";
  std::string out = (p->tls ? "https://" : "http://") + p->host;
  if (p->port != (p->tls ? 443 : 80)) out += ":" + std::to_string(p->port);
  return out;
}

bool Destination::wants(std::string_view kind) const {
  return std::find(events.begin(), events.end(), kind) != events.end();
}

Status check_destination(const Destination& d) {
  DROVER_TRY(validate_name(d.name, "name"));
  if (auto st = check_url(d.url); !st.ok()) return st.error().context("url");
  if (d.format != "drover" && d.format != "slack") {
    return make_error(Errc::invalid_argument,
                      "format must be \"drover\" or \"slack\", not \"" + d.format + "\"");
  }
  if (d.secret.empty() && d.format == "drover") {
    return make_error(Errc::invalid_argument, "secret is required for format \"drover\"");
  }
  if (!d.secret.empty() && (d.secret.size() < 16 || d.secret.size() > 256)) {
    return make_error(Errc::invalid_argument, "secret must be 16-256 bytes");
  }
  if (d.events.empty()) return make_error(Errc::invalid_argument, "events is empty");
  for (const auto& e : d.events) {
    if (!notifiable(e)) {
      return make_error(Errc::invalid_argument, "events: '" + e + "' is not a notification kind (" +
                                                    list_text(kinds()) + ")");
    }
  }
  return {};
}

std::string encode_destination(const Destination& d) {
  const json j = {{"url", d.url},       {"secret", d.secret},         {"format", d.format},
                  {"events", d.events}, {"created_ms", d.created_ms}, {"created_by", d.created_by}};
  return *canon::encode(j);
}

Result<Destination> decode_destination(std::string_view bytes, const std::string& pipeline,
                                       const std::string& name) {
  const json j = json::parse(bytes, nullptr, false);
  Destination d;
  d.pipeline = pipeline;
  d.name = name;
  try {
    d.url = j.at("url").get<std::string>();
    d.secret = j.at("secret").get<std::string>();
    d.format = j.at("format").get<std::string>();
    d.events = j.at("events").get<std::vector<std::string>>();
    d.created_ms = j.at("created_ms").get<std::int64_t>();
    d.created_by = j.at("created_by").get<std::string>();
  } catch (const json::exception& e) {
    return make_error(Errc::corrupt,
                      "notification destination " + pipeline + "/" + name + ": " + e.what());
  }
  return d;
}

std::string event_id(const AuditRecord& r) {
  return ContentId::of(encode_audit_record(r)).str();
}

std::string text_of(const AuditRecord& r, const EventContext& c) {
  const json detail = json::parse(r.detail, nullptr, false);
  auto field = [&](const char* key) -> std::string {
    if (!detail.is_object() || !detail.contains(key)) return "";
    const json& v = detail[key];
    return v.is_string() ? v.get<std::string>() : v.dump();
  };
  const std::string sha = r.git_sha.substr(0, 12);
  std::string run = r.deploy_id.empty() ? c.pipeline : r.deploy_id;
  run += " (" + (r.service.empty() ? field("service") : r.service);
  if (!sha.empty()) run += " " + sha;
  run += ")";
  const std::string in = r.env.empty() ? "" : " in " + r.env;
  if (r.what == "gate.waiting") {
    std::string s =
        run + " waits at the gate of " + r.env + ": " + field("approvals") + " approval(s)";
    if (c.may_approve) {
      s += c.may_approve->empty() ? " and no one else holds an approver token"
                                  : " from " + list_text(*c.may_approve);
    }
    const std::string deadline = field("deadline_ms");
    if (!deadline.empty() && deadline != "0") {
      try {
        s += " by " + utc_text(std::stoll(deadline));
      } catch (const std::exception&) {
      }
    }
    return s;
  }
  if (r.what == "gate.approved") {
    return run + ": " + field("person") + " approved" + in + " (" + field("approvals") + " of " +
           field("required") + ")";
  }
  if (r.what == "gate.rejected") {
    return run + ": " + field("person") + " rejected" + in + ": " + field("reason");
  }
  if (r.what == "gate.expired") return run + ": the gate" + in + " expired unapproved";
  if (r.what == "wave.started") return run + ": wave " + field("wave") + in + " started";
  if (r.what == "rollback.started") return run + " is rolling back" + in + ": " + field("reason");
  if (r.what == "rollback.done") return run + " rolled back" + in;
  if (r.what == "deploy.failed") return run + " failed" + in + ": " + field("reason");
  if (r.what == "deploy.succeeded") return run + " succeeded";
  const std::string commit = field("commit").substr(0, 12);
  const std::string pipeline = field("pipeline");
  if (r.what == "scm.waiting") {
    return "push of " + commit + " to pipeline " + pipeline + " waits for its artifact";
  }
  if (r.what == "scm.started") {
    return "push of " + commit + " started " + field("deploy_id") + " of pipeline " + pipeline;
  }
  if (r.what == "scm.superseded") {
    return "push of " + commit + " to pipeline " + pipeline + " replaced the waiting " +
           field("superseded_commit").substr(0, 12);
  }
  if (r.what == "scm.expired") {
    return "push of " + commit + " to pipeline " + pipeline + " ended: no artifact in time";
  }
  if (r.what == "scm.ambiguous") {
    return "push of " + commit + " to pipeline " + pipeline + " matches several artifacts";
  }
  return run + ": " + r.what;
}

std::string render(const AuditRecord& r, const EventContext& c, std::string_view format) {
  const std::string text = text_of(r, c);
  if (format == "slack") return json{{"text", text}}.dump();
  json detail = json::parse(r.detail, nullptr, false);
  if (!detail.is_object()) detail = json::object();
  json j = {{"format", kBodyFormat},    {"event_id", event_id(r)},
            {"kind", r.what},           {"at_ms", r.at_ms},
            {"audit_seq", r.seq},       {"pipeline_id", c.pipeline},
            {"service", r.service},     {"env", r.env},
            {"deploy_id", r.deploy_id}, {"artifact_id", r.artifact},
            {"git_sha", r.git_sha},     {"who", r.who},
            {"detail", detail},         {"text", text}};
  if (c.may_approve) j["may_approve"] = *c.may_approve;
  return *canon::encode(j);
}

std::string signature(std::string_view secret, std::string_view timestamp,
                      std::string_view event_id, std::string_view body) {
  std::string message = "drover-notification-v1\n";
  message.append(timestamp).append("\n").append(event_id).append("\n").append(body);
  return "sha256=" + to_hex(sign::hmac_sha256(secret, message));
}

std::int64_t retry_after_ms(std::uint32_t attempts) {
  std::int64_t wait = kFirstRetryMs;
  for (std::uint32_t i = 1; i < attempts && wait < kMaxRetryMs; ++i) wait *= 2;
  return std::min(wait, kMaxRetryMs);
}

}  // namespace drover::coordinator::notify
