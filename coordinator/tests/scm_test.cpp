// Push events (issue 14): the body read into what drover acts on, refusals
// naming the field, the signature under the repository's secret (constant
// time, a wrong secret or a changed byte refused), and which pipelines and
// artifacts a push names (a prefix of at least 7 hex digits; several is
// ambiguous and left to the caller to refuse).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "coordinator/scm/scm.hpp"
#include "core/base/hex.hpp"
#include "core/sign/secret_box.hpp"

namespace drover::coordinator::scm {
namespace {

using nlohmann::json;

constexpr const char* kAfter = "3f2a9c0d1e2b3a4c5d6e7f8091a2b3c4d5e6f708";

json push() {
  return {{"ref", "refs/heads/main"},
          {"before", "0000000000000000000000000000000000000000"},
          {"after", kAfter},
          {"repository",
           {{"full_name", "org/web"},
            {"clone_url", "https://git.example/org/web.git"},
            {"ssh_url", "git@git.example:org/web.git"}}},
          {"pusher", {{"name", "octo-cat"}, {"email", "octo@example"}}},
          {"deleted", false}};
}

std::string signature(const std::string& secret, const std::string& body) {
  return "sha256=" + to_hex(sign::hmac_sha256(secret, body));
}

TEST(Scm, APushReadsIntoWhatDroverActsOn) {
  auto e = parse_push(push().dump());
  ASSERT_TRUE(e.ok()) << e.error().message;
  EXPECT_EQ(e->repository, "org/web");
  EXPECT_EQ(e->branch, "main");
  EXPECT_EQ(e->after, kAfter);
  EXPECT_EQ(e->pusher, "octo-cat");
  EXPECT_FALSE(e->deleted);
  EXPECT_TRUE(names_repository("org/web", *e));
  EXPECT_TRUE(names_repository("git@git.example:org/web.git", *e));
  EXPECT_TRUE(names_repository("https://git.example/org/web.git", *e));
  EXPECT_TRUE(names_repository("https://git.example/org/web/", *e));
  EXPECT_FALSE(names_repository("org/web2", *e));
  EXPECT_FALSE(names_repository("other/web", *e));
  EXPECT_FALSE(names_repository("", *e));
  // The body's URLs are the sender's to write: signed with team-a/tool's
  // secret, an event naming org/web's clone URL is still team-a/tool's.
  json forged = push();
  forged["repository"]["full_name"] = "team-a/tool";
  forged["repository"]["clone_url"] = "https://git.example/org/web.git";
  forged["repository"]["ssh_url"] = "git@git.example:org/web.git";
  auto f = parse_push(forged.dump());
  ASSERT_TRUE(f.ok());
  EXPECT_FALSE(names_repository("https://git.example/org/web.git", *f));
  EXPECT_FALSE(names_repository("git@git.example:org/web.git", *f));
  EXPECT_FALSE(names_repository("org/web", *f));
  // A tag is no branch; upper-case hex is read as lower case.
  json tag = push();
  tag["ref"] = "refs/tags/v1";
  tag["after"] = "3F2A9C0D1E2B3A4C5D6E7F8091A2B3C4D5E6F708";
  auto t = parse_push(tag.dump());
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->branch, "");
  EXPECT_EQ(t->after, kAfter);
}

TEST(Scm, ABadBodyIsRefusedNamingTheField) {
  auto refused = [](const std::string& body, const std::string& why) {
    auto e = parse_push(body);
    ASSERT_FALSE(e.ok()) << body.substr(0, 80);
    EXPECT_NE(e.error().message.find(why), std::string::npos) << e.error().message;
  };
  refused("[]", "not a JSON object");
  refused("{not json", "not a JSON object");
  refused(std::string(kMaxEventBytes + 1, ' '), "at most");
  json j = push();
  j.erase("after");
  refused(j.dump(), "after is missing");
  j = push();
  j["after"] = "3f2a9c0d";
  refused(j.dump(), "after must be 40 hex digits");
  j["after"] = std::string(40, 'g');
  refused(j.dump(), "after must be 40 hex digits");
  j = push();
  j["repository"]["full_name"] = "../../etc";
  refused(j.dump(), "repository.full_name must be OWNER/NAME");
  j["repository"]["full_name"] = 5;
  refused(j.dump(), "repository.full_name must be a string");
  j = push();
  j["repository"] = "org/web";
  refused(j.dump(), "repository.full_name is missing");
  j = push();
  j["pusher"].erase("name");
  refused(j.dump(), "pusher.name is missing");
  j = push();
  j["deleted"] = "yes";
  refused(j.dump(), "deleted must be true or false");
  EXPECT_EQ(repository_of(push().dump()).value(), "org/web");
}

TEST(Scm, OnlyTheRepositorysSecretOverTheExactBodySigns) {
  const std::string body = push().dump();
  EXPECT_TRUE(
      check_signature("a-secret-of-16-bytes", body, signature("a-secret-of-16-bytes", body)).ok());
  std::string upper = signature("a-secret-of-16-bytes", body);
  for (std::size_t i = 7; i < upper.size(); ++i)
    upper[i] = static_cast<char>(std::toupper(upper[i]));
  EXPECT_TRUE(check_signature("a-secret-of-16-bytes", body, upper).ok());
  for (const std::string& header :
       {signature("another-secret-16", body), signature("a-secret-of-16-bytes", body + " "),
        std::string("sha256=") + std::string(64, '0'), std::string("sha1=abc"), std::string(""),
        signature("a-secret-of-16-bytes", body).substr(0, 70)}) {
    Status st = check_signature("a-secret-of-16-bytes", body, header);
    ASSERT_FALSE(st.ok()) << header;
    EXPECT_EQ(st.error().code, Errc::crypto);
    EXPECT_NE(st.error().message.find("X-Hub-Signature-256"), std::string::npos);
  }
}

TEST(Scm, ACommitNamesTheArtifactsWhoseShaIsAPrefixOfIt) {
  const std::vector<ArtifactSha> artifacts = {{"a-short", "3f2a9c0"},     // 7 digits: enough
                                              {"a-full", kAfter},         // all 40
                                              {"a-upper", "3F2A9C0D1E"},  // case ignored
                                              {"too-short", "3f2a9c"},    // 6 digits: never
                                              {"other", "3f2a9c0e"},      // another commit
                                              {"not-hex", "3f2a9c0-zz"},  // not a SHA
                                              {"longer", std::string(kAfter) + "00"}};
  auto m = matching_artifacts(artifacts, kAfter);
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[0].first, "a-short");
  EXPECT_EQ(m[1].first, "a-full");
  EXPECT_EQ(m[2].first, "a-upper");
  EXPECT_TRUE(matching_artifacts(artifacts, std::string(40, '1')).empty());
}

}  // namespace
}  // namespace drover::coordinator::scm
