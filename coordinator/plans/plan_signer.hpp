// Signing plan revisions (docs/FORMATS.md, "Plans"): PlanSigner is the seam
// the plan issuer signs through; OnlineKeySigner signs with the coordinator's
// online key, which the root certifies, and holds that key for the rest of
// the coordinator (the gateway unseals enrollments with it and hands out its
// certificate). A rotation changes it for every user at once.
//
// Thread-safe.
#pragma once

#include <mutex>

#include "core/proto/plan.hpp"
#include "core/sign/envelope.hpp"
#include "core/sign/keys.hpp"

namespace drover::coordinator {

// The online signing key and the root's certificate for it.
struct OnlineKey {
  sign::KeyPair key;
  sign::Envelope cert;
};

class PlanSigner {
 public:
  virtual ~PlanSigner() = default;
  // The signed bundle of plan (seq and all set), carrying the certificate.
  virtual Result<proto::PlanBundle> sign(const proto::Plan& plan) = 0;
};

class OnlineKeySigner final : public PlanSigner {
 public:
  explicit OnlineKeySigner(OnlineKey key) : key_(std::move(key)) {}
  Result<proto::PlanBundle> sign(const proto::Plan& plan) override;
  // A rotation: later plans are signed, and later enrollments sealed, with
  // the new key; certificate pulls answer its certificate.
  void rotate(OnlineKey key);
  OnlineKey current() const;

 private:
  mutable std::mutex mu_;  // guards key_
  OnlineKey key_;
};

}  // namespace drover::coordinator
