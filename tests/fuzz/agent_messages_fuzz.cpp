// Fuzz family: every agent-protocol message (docs/FORMATS.md, "Agent
// protocol", versions 1 and 2), as the coordinator and the agent read them. The first byte
// picks the reader. Properties: no input crashes a reader; an accepted
// message keeps every bound (names by the name rule, seqs below 2^53); what
// is written back for it is valid UTF-8; the envelopes' fast readers answer
// as the full ones.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/base/name.hpp"
#include "core/canon/canonical_json.hpp"
#include "core/proto/messages.hpp"
#include "tests/fuzz/fuzz.hpp"

namespace {

void check_report(const drover::proto::ReportBody& r) {
  using namespace drover;
  if (r.seq > proto::kMaxSeq || r.items.empty() || r.items.size() > proto::kMaxReportItems) {
    std::abort();
  }
  for (const auto& item : r.items) {
    const std::string& service = item.health ? item.health->service : item.event->service;
    if (!is_valid_name(service)) std::abort();
    if (item.event && item.event->seq > proto::kMaxSeq) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace drover;
  if (size == 0) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 6) {
    case 0: {
      auto r = proto::decode_request(in);
      // The fast reader answers as the full one (the same fields or error).
      auto full = proto::detail::decode_request_full(in);
      if (r.ok() != full.ok()) std::abort();
      if (r.ok() && (r->v != full->v || r->type != full->type || r->host != full->host ||
                     r->body != full->body || r->mac != full->mac || r->sig != full->sig)) {
        std::abort();
      }
      if (!r.ok() && r.error().message != full.error().message) std::abort();
      if (r.ok()) {
        if (!is_valid_name(r->host)) std::abort();
        if (!canon::valid_utf8(proto::encode_request(*r))) std::abort();
      }
      break;
    }
    case 1: {
      auto r = proto::decode_reply(in);
      if (!r.ok() && !canon::valid_utf8(proto::encode_error_reply(r.error()))) std::abort();
      break;
    }
    case 2: {
      auto a = proto::decode_announcement(in);
      if (a.ok() && (!is_valid_name(a->service) || a->seq > proto::kMaxSeq)) std::abort();
      break;
    }
    case 3: {
      auto fast = proto::read_report_fast(in);
      auto body = proto::parse_body(in);
      if (!body.ok()) {
        if (fast) std::abort();  // the fast reader read what the full one refuses
        break;
      }
      auto report = proto::report_body(*body);
      if (fast &&
          (!report.ok() || fast->seq != report->seq || fast->sent_at_ms != report->sent_at_ms ||
           fast->items.size() != report->items.size() ||
           proto::to_json(*fast) != proto::to_json(*report))) {
        std::abort();  // the fast reader read otherwise than the full one
      }
      if (report.ok()) check_report(*report);
      break;
    }
    case 4: {
      // A version-2 answer as the agent reads it: decoded, checked, opened.
      auto r = proto::decode_sealed_reply(in);
      auto full = proto::detail::decode_sealed_reply_full(in);
      if (r.ok() != full.ok()) std::abort();
      if (r.ok() && (r->type != full->type || r->body != full->body || r->mac != full->mac ||
                     r->sig != full->sig || r->key_id != full->key_id)) {
        std::abort();
      }
      if (!r.ok() && r.error().message != full.error().message) std::abort();
      if (r.ok()) {
        if (r->mac.empty() == r->sig.empty()) std::abort();
        (void)proto::check_reply_mac(*r, "web-1", proto::request_hash(in), std::string(32, 'k'));
        auto opened = proto::open_reply(*r);
        if (!opened.ok() && !canon::valid_utf8(proto::encode_error_reply(opened.error()))) {
          std::abort();
        }
      }
      (void)proto::claimed_version(in);
      break;
    }
    default: {
      auto body = proto::parse_body(in);
      if (!body.ok()) break;
      auto e = proto::enroll_body(*body);
      if (e.ok()) {
        if (!is_valid_name(e->host)) std::abort();
        for (const auto& s : e->services) {
          if (!is_valid_name(s)) std::abort();
        }
      }
      break;
    }
  }
  return 0;
}
