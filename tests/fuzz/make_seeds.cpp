// Writes the seed inputs of every fuzz family into tests/fuzz/corpus/<family>/
// (seed-*): valid examples of each format, made with drover's own encoders,
// from which the fuzzers mutate. Run once when a format changes:
//   build/bin/fuzz_make_seeds tests/fuzz/corpus
// The corpora the fuzzers grew are kept beside the seeds.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "core/proto/messages.hpp"
#include "core/proto/plan.hpp"
#include "core/sign/envelope.hpp"
#include "core/world/random.hpp"
#include "tests/support/small_manifest.hpp"

namespace {

using namespace drover;
namespace fs = std::filesystem;

void write(const fs::path& dir, const std::string& name, const std::string& bytes) {
  fs::create_directories(dir);
  std::ofstream(dir / ("seed-" + name), std::ios::binary) << bytes;
}

std::string tagged(char tag, const std::string& bytes) {
  return std::string(1, tag) + bytes;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_make_seeds CORPUS_DIR\n");
    return 2;
  }
  const fs::path root = argv[1];
  SeededRandom rnd(7);
  const sign::KeyPair root_key = sign::KeyPair::generate(rnd);
  const sign::KeyPair online = sign::KeyPair::generate(rnd);
  const sign::Envelope cert =
      sign::certify(root_key, {"online", online.public_key(), 1, 1'800'000'000, 1'900'000'000});
  const std::string manifest = testing::small_manifest_bytes("web", "v1");
  proto::Plan plan;
  plan.service = "web";
  plan.seq = 7;
  plan.deploy_id = "web-3";
  plan.artifact = ContentId::of(manifest);
  plan.manifest_size = manifest.size();
  plan.hosts = {"web-1", "web-2"};
  plan.tracker = "http://127.0.0.1:7070";
  plan.issued_at = 1'800'000'000;
  plan.expires_at = 1'800'086'400;
  plan.flags["dark_mode"] = proto::FlagValue{true, false, 25};
  const std::string plan_bytes = proto::encode_plan(plan).value();
  proto::PlanBundle bundle = proto::sign_plan(plan, online, cert).value();
  bundle.manifest = manifest;

  const fs::path canon = root / "canonical_json";
  write(canon, "object", R"({"a":1,"b":[true,false,null,"x"],"c":{"d":-7}})");
  write(canon, "plan", plan_bytes);
  write(canon, "name", "caf%E9/menu.txt");
  write(canon, "unicode", "\"caf\xc3\xa9 \\u0001\"");

  const fs::path signed_formats = root / "signed_formats";
  write(signed_formats, "envelope", tagged(0, sign::encode_envelope(bundle.plan)));
  write(signed_formats, "bundle", tagged(1, proto::encode_bundle(bundle)));
  write(signed_formats, "plan", tagged(2, plan_bytes));
  write(signed_formats, "manifest", tagged(3, manifest));

  const fs::path messages = root / "agent_messages";
  proto::Request pull{std::string(proto::kPlanPull), "web-1",
                      nlohmann::json{{"service", "web"}, {"have_seq", 6}}.dump(), "", ""};
  proto::mac_request(pull, std::string(32, 'k'));
  write(messages, "request", tagged(0, proto::encode_request(pull)));
  write(messages, "reply", tagged(1, proto::encode_reply("ack", {{"seq", 12}})));
  write(messages, "error", tagged(1, proto::encode_error_reply(make_error(Errc::refused, "no"))));
  write(messages, "announcement", tagged(2, proto::encode_announcement({"web", 7})));
  proto::ReportBody report;
  report.seq = 12;
  report.sent_at_ms = 1'800'000'000'000;
  proto::HealthItem h;
  h.service = "web";
  h.release = plan.artifact.str();
  h.at_ms = report.sent_at_ms;
  h.ok = true;
  h.error_rate = 0.01;
  h.custom["queue_depth"] = 3;
  report.items.push_back({h, std::nullopt});
  report.items.push_back(
      {std::nullopt, proto::EventItem{"web", report.sent_at_ms, "replay_refused", 5, "below 7",
                                      proto::encode_bundle({bundle.plan, bundle.cert, {}})}});
  write(messages, "report", tagged(3, proto::to_json(report).dump()));
  proto::EnrollBody enroll;
  enroll.host = "web-1";
  enroll.region = "eu-west-1";
  enroll.cluster = "c1";
  enroll.services = {"web", "payments"};
  enroll.public_key = online.public_key();
  enroll.mesh_peer = "10.0.0.5:6881";
  enroll.join_token = "drj_token";
  enroll.sealed_mac_key = std::string(80, 's');
  enroll.at = 1'800'000'000;
  write(messages, "enroll", tagged(4, proto::to_json(enroll).dump()));

  const fs::path tracker = root / "tracker_announce";
  const std::string hash = "%12%34Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A";
  write(tracker, "announce",
        "/announce?info_hash=" + hash + "&peer_id=-DR0001-abcdefghijkl&port=6881&left=0" +
            "&event=started&role=seed&region=eu&cluster=c1&host=seed-1&numwant=50\n" +
            "/announce?info_hash=" + hash + "&peer_id=-DR0001-mnopqrstuvwx&port=6882&left=100" +
            "&region=eu&cluster=c2\n/swarm?info_hash=" + std::string(40, 'a'));

  const fs::path http_request = root / "http_request";
  write(http_request, "get", "GET /v1/status?x=1&y=%FF HTTP/1.1\r\nHost: a\r\n\r\n");
  write(http_request, "post",
        "POST /deploys HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer drv_x\r\n"
        "Content-Length: 13\r\n\r\n{\"a\":\"b\",\"c\"}");
  write(http_request, "chunked",
        "POST /v1/plans HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        "4\r\nabcd\r\n0\r\n\r\n");
  return 0;
}
