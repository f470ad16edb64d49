// Who sent a message. Broker's TLS checks that a peer's certificate chains to the CA, but not
// which agent it names, whether it was revoked, or which peer published a given message; so
// every message an agent sends carries its certificate and a signature, made with the
// enrolled key, over the message's canonical digest. The collector verifies the certificate
// (chain, validity, revocation list) and the signature, and takes the agent id from the
// certificate's common name, never from the message. All cryptography is OpenSSL's.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "senningen/common/result.h"
#include "senningen/common/wire.h"

namespace senningen::common {

using Digest = std::array<std::uint8_t, 32>;  // SHA-256

// SHA-256 over a canonical encoding of every field but the credentials: each string
// length-prefixed, each number as 8 big-endian bytes, absent contexts marked. Independent of
// the transport's encoding, so a message re-encoded on the way still verifies.
Digest digest_of(const AlertBatch& batch);
Digest digest_of(const Heartbeat& heartbeat);
Digest digest_of(const MetadataBatch& batch);

// "SHA256 fingerprint" of a PEM certificate, lowercase hex; kParse when it is not one.
Result<std::string> certificate_fingerprint(const std::string& pem);
// The subject's common name of a PEM certificate; kParse when it is not one or has none.
Result<std::string> certificate_common_name(const std::string& pem);

// The agent's side: its enrolled key and certificate.
class Signer {
public:
    ~Signer();
    Signer(const Signer&) = delete;
    Signer& operator=(const Signer&) = delete;

    // Reads a PEM certificate and its PEM private key; kNotFound / kParse naming the file, and
    // kInvalidArgument when the key does not belong to the certificate.
    static Result<std::unique_ptr<Signer>> load(const std::string& certificate_file,
                                                const std::string& key_file);

    const std::string& certificate() const { return certificate_pem_; }
    const std::string& common_name() const { return common_name_; }

    // Fills the message's credentials: this certificate and a signature over its digest.
    Result<void> sign(AlertBatch& batch) const;
    Result<void> sign(Heartbeat& heartbeat) const;
    Result<void> sign(MetadataBatch& batch) const;

private:
    struct Key;
    Signer(std::unique_ptr<Key> key, std::string certificate_pem, std::string common_name);
    Result<std::string> sign_digest(const Digest& digest) const;

    std::unique_ptr<Key> key_;
    std::string certificate_pem_;
    std::string common_name_;
};

// The collector's side. Verified certificates are cached by fingerprint (a batch costs one
// signature check, not a chain walk); the revocation list is re-read when its file changes,
// which empties the cache, so a revocation takes effect at the next message.
class PeerVerifier {
public:
    ~PeerVerifier();
    PeerVerifier(const PeerVerifier&) = delete;
    PeerVerifier& operator=(const PeerVerifier&) = delete;

    // CA_FILE: PEM CA certificate(s). CRL_FILE: a PEM revocation list, or empty for none.
    // kNotFound / kParse naming the file.
    static Result<std::unique_ptr<PeerVerifier>> create(const std::string& ca_file,
                                                        const std::string& crl_file);

    // The agent id the credentials prove, or kDenied with the reason ("certificate revoked",
    // "certificate has expired", "unable to get local issuer certificate", "bad signature",
    // ...). Safe to call from several threads.
    Result<std::string> verify(const AlertBatch& batch);
    Result<std::string> verify(const Heartbeat& heartbeat);
    Result<std::string> verify(const MetadataBatch& batch);

private:
    struct State;
    explicit PeerVerifier(std::unique_ptr<State> state);
    Result<std::string> verify(const Credentials& credentials, const Digest& digest);

    std::unique_ptr<State> state_;
};

}  // namespace senningen::common
